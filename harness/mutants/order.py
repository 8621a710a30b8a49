"""A pytest plugin for the fast tier's runs (`-p harness.mutants.order`): the tests that killed
most mutants of the same kind so far in this mutation run go first.

A run stops at its first failed test (`-x`), so a mutant is judged sooner when the test likely to
fail it runs first; the order of the others is kept, and every test still runs when none fails.
CRM_MUTANTS_FIRST holds the test names (node ids without parameters), most kills first.
"""

from __future__ import annotations

import json
import os

import pytest

FIRST_ENV = "CRM_MUTANTS_FIRST"


def base(nodeid: str) -> str:
    """A node id without its parameters: `file::test[case]` -> `file::test`."""
    return nodeid.split("[", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    first = json.loads(os.environ.get(FIRST_ENV) or "[]")
    if not first:
        return
    rank = {name: i for i, name in enumerate(first)}
    items.sort(key=lambda item: rank.get(base(item.nodeid), len(rank)))

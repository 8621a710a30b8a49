"""harness/timeline.py's Episode below the live stack: a background watch keeps observing while
the test waits on something else, and moments stay in time order."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from harness.timeline import JOURNAL, Episode
from harness.waits import wait_until

pytestmark = pytest.mark.claim("harness.self_test")


class Probe:
    def __init__(self) -> None:
        self.calls = 0

    def ready(self) -> Any:
        self.calls += 1
        return SimpleNamespace(status_code=200, failed_messages=[])


def episode() -> Episode:
    stack = SimpleNamespace(group_members=lambda: 2, probe_ttl_s=0.25)
    made = Episode("unit: background watch", stack, Probe())  # type: ignore[arg-type]
    JOURNAL.remove(made)  # not a live episode: kept out of any report
    return made


def test_a_background_watch_observes_while_the_block_waits_on_something_else() -> None:
    watched = episode()
    with watched.watching():
        wait_until("three background observations", lambda: len(watched.moments) >= 3, timeout=10)
        watched.observe()  # the foreground observes too, at the same time
    count = len(watched.moments)
    assert count >= 4
    times = [m.t for m in watched.moments]
    assert times == sorted(times)
    watched.assert_ready_throughout(0, watched.now())
    assert len(watched.moments) == count  # the watch stopped with its block

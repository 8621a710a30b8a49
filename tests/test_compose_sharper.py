"""Sharper compose tests: the consumers' healthcheck is the one the probe integration guide gives
operators (found by mutation testing, harness/mutants).

tests/test_compose.py bounds the healthcheck (its target, a timeout above the probe's worst case,
retries, a start period of at least one interval); within those bounds its interval, timeout,
retries and start period are what docs/HEALTH_PROBE_INTEGRATION.md tells operators to expect
("A consumer turns `unhealthy` after N failed checks"), so a change to them must change the guide.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from harness.contract import CHECKLIST, load
from tests.tools import REPO

pytestmark = [pytest.mark.claim("docker.consumer_healthcheck")]

GUIDE = REPO / "docs" / "HEALTH_PROBE_INTEGRATION.md"
_YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def guide_healthcheck() -> dict[str, Any]:
    """The guide's YAML block of the consumers' healthcheck (the one calling /ready)."""
    found = []
    for block in _YAML_BLOCK.findall(GUIDE.read_text()):
        document = yaml.safe_load(block)
        if isinstance(document, dict) and set(document) == {"healthcheck"}:
            check = document["healthcheck"]
            if CHECKLIST.consumer_healthcheck_url in check.get("test", []):
                found.append(check)
    assert len(found) == 1, f"{GUIDE.name}: {len(found)} consumer healthcheck blocks"
    return found[0]


def test_each_consumers_healthcheck_is_the_one_the_guide_gives() -> None:
    contract = load()
    for service in contract.consumer_services:
        assert contract.service(service)["healthcheck"] == guide_healthcheck(), service


def test_the_guide_says_after_how_many_failed_checks_a_consumer_turns_unhealthy() -> None:
    said = re.findall(r"turns `unhealthy` after (\d+) failed checks", GUIDE.read_text())
    assert said, f"{GUIDE.name} does not say when a consumer turns unhealthy"
    retries = {load().service(name)["healthcheck"]["retries"] for name in load().consumer_services}
    assert {int(n) for n in said} == retries

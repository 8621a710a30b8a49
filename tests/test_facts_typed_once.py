"""Each production fact lives in one place: the deployable files, read by harness.contract.

The suites, the report and the harness take the group, topic and durations from the contract; a
copy typed elsewhere would go on passing after the deployable files change. This test reads the
project's Python outside the artifacts (stack/, probe/) and the contract module for the facts
themselves, as the deployable files write them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness.contract import load

pytestmark = [pytest.mark.claim("harness.self_test")]

REPO = Path(__file__).resolve().parents[1]
# Where the facts are written: the deployable artifacts and the one module that reads them.
SOURCES = ("stack/", "probe/", "harness/contract.py")
# A line that types a fact on purpose says so (a mistake a test applies to a scratch copy).
ALLOWED = "fact-ok"


def python_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in listed if not name.startswith(SOURCES)]


def facts() -> dict[str, re.Pattern[str]]:
    contract = load()
    found = {
        "consumer group": re.compile(re.escape(contract.group) + r"(?![\w.-])"),
        "topic": re.compile(r"[\"']" + re.escape(contract.topic) + r"[\"']"),
    }
    # Each alert's for: and the window, as the arithmetic a suite would type (minutes * 60).
    durations = {f"{name}'s for:": alert.for_s for name, alert in contract.alerts.items()}
    durations["the probe's window"] = contract.window_s
    for what, seconds in durations.items():
        minutes, rest = divmod(round(seconds), 60)
        if not rest and minutes > 1:
            found[what] = re.compile(rf"\b{minutes} ?\* ?60\b")
    return found


def test_no_production_fact_is_typed_outside_the_deployable_files_and_the_contract() -> None:
    patterns = facts()
    typed = [
        f"{path.relative_to(REPO)}:{number}: {what}: {line.strip()}"
        for path in python_files()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if ALLOWED not in line
        for what, pattern in patterns.items()
        if pattern.search(line)
    ]
    assert typed == [], "facts typed outside stack/, probe/ and harness/contract.py:\n" + "\n".join(
        typed
    )


def test_the_search_finds_each_fact_as_a_suite_would_type_it() -> None:
    patterns = facts()
    contract = load()
    assert patterns["consumer group"].search(f'group = "{contract.group}"')
    assert not patterns["consumer group"].search(f'group = "{contract.group}-other"')
    assert patterns["topic"].search(f"topic = '{contract.topic}'")
    window_minutes = round(contract.window_s) // 60
    assert patterns["the probe's window"].search(f"timeout={window_minutes} * 60")
    for name, alert in contract.alerts.items():
        if f"{name}'s for:" in patterns:
            assert patterns[f"{name}'s for:"].search(f"wait({round(alert.for_s) // 60}*60)")

"""The engines the rules and routes are proven on: the pinned current releases (built from the Go
module proxy) and Debian's, each reporting the version the claim names."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import engines
from harness.engines import ALERTMANAGER, CURRENT, DEBIAN, DEBIAN_RELEASES, PROMETHEUS
from tests.tools import check_tool

pytestmark = [pytest.mark.claim("deploy.engines")]

# What each engine's tools must report: the pinned release, or Debian bookworm's packages.
EXPECTED = {
    ("promtool", CURRENT): PROMETHEUS.version,
    ("amtool", CURRENT): ALERTMANAGER.version,
    ("promtool", DEBIAN): DEBIAN_RELEASES["prometheus"] + ".",
    ("amtool", DEBIAN): DEBIAN_RELEASES["alertmanager"] + ".",
}


@pytest.mark.parametrize(("tool", "engine"), EXPECTED, ids=lambda value: value)
def test_each_engines_tools_report_its_version(tool: str, engine: str):
    output = check_tool(tool, "--version", engine=engine)
    version = re.search(r"version (\S+)", output)
    assert version, output
    assert version.group(1).startswith(EXPECTED[tool, engine]), output


def test_one_build_of_a_release_at_a_time_and_the_waiter_takes_its_binaries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run's image build and its unit tier (a process of its own) may both need an engine not
    built yet: the second caller waits for the first build instead of starting its own."""
    monkeypatch.setattr(engines, "TOOLS_DIR", tmp_path)
    builds: list[str] = []
    started = threading.Event()

    def build(release: engines.Release, target: Path, run: object) -> Path:
        builds.append(release.name)
        started.set()
        time.sleep(0.3)  # wait-ok: a build long enough for the second caller to arrive
        target.mkdir(parents=True)
        for command in release.commands:
            (target / command).write_text("binary")
        return target

    monkeypatch.setattr(engines, "_build", build)
    with ThreadPoolExecutor(2) as callers:
        first = callers.submit(engines.ensure, PROMETHEUS)
        assert started.wait(10), "the first build never started"
        second = callers.submit(engines.ensure, PROMETHEUS)
        assert first.result(10) == second.result(10) == engines.binaries_dir(PROMETHEUS)
    assert builds == ["prometheus"]

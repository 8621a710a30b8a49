"""The engines the rules and routes are proven on: the pinned current releases (built from the Go
module proxy) and Debian's, each reporting the version the claim names."""

from __future__ import annotations

import re

import pytest

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

"""The installed package is the certification: the wheel carries the plugin (pytest11 entry
point), the suites as the plugin's subpackages, the harness, and the project's stack/ whole (the
deployable files and the offline images' specs), so `pip install .` certifies without a checkout.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from harness.paths import PROJECT

pytestmark = pytest.mark.claim("harness.self_test")

PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _checkout_packages() -> set[str]:
    """Every directory of the checkout with an __init__.py, named as it installs."""
    renames = {directory: package for package, directory in SETUPTOOLS["package-dir"].items()}
    found = set()
    for top_dir in PROJECT.iterdir():
        # The unit tier, build output and benchmarks stay in the checkout. They are left out
        # before the walk: .build holds image root filesystems, built (with a /proc whose
        # entries come and go) while the unit tier runs beside the image build.
        if top_dir.name in ("tests", "build", "benchmarks") or top_dir.name.startswith("."):
            continue
        if not top_dir.is_dir():
            continue
        for init in top_dir.glob("**/__init__.py"):
            parts = init.parent.relative_to(PROJECT).parts
            top = renames.get(parts[0], parts[0])
            found.add(".".join((top, *parts[1:])))
    return found


def test_every_package_of_the_checkout_is_installed():
    assert set(SETUPTOOLS["packages"]) == _checkout_packages()


def test_the_plugin_is_a_pytest11_entry_point():
    assert PYPROJECT["project"]["entry-points"]["pytest11"] == {
        "crm_events_cert": "crm_events_cert"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--disable-pip-version-check", "-q", "--wheel-dir", str(out), str(PROJECT)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("crm_events_cert-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_carries_the_stack_and_the_images_specs(wheel: zipfile.ZipFile):
    tracked = subprocess.run(
        ["git", "ls-files", "stack"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked, "no tracked files under stack/"
    missing = sorted(set(tracked) - set(wheel.namelist()))
    assert not missing, f"not in the wheel: {missing}"


def test_the_wheel_keeps_the_executable_bits_the_image_hashes_read(wheel: zipfile.ZipFile):
    for name in ("stack/images/kafka/run", "stack/images/kafka/bin/kafka-cli"):
        assert (PROJECT / name).stat().st_mode & 0o111, f"{name} is not executable here"
        mode = wheel.getinfo(name).external_attr >> 16
        assert mode & 0o111, f"{name} lost its executable bit in the wheel"


def test_the_wheel_carries_the_suites_under_the_plugin(wheel: zipfile.ZipFile):
    names = set(wheel.namelist())
    for suite in ("acceptance", "drills"):
        tests = sorted(p.name for p in (PROJECT / suite).glob("test_*.py"))
        assert tests
        for test in tests:
            assert f"crm_events_cert/{suite}/{test}" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "[pytest11]\ncrm_events_cert = crm_events_cert" in wheel.read(entry_points).decode()


def test_the_wheel_leaves_the_checkout_s_own_files_out(wheel: zipfile.ZipFile):
    names = wheel.namelist()
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


def test_given_no_path_the_plugin_collects_its_own_suites(tmp_path: Path) -> None:
    """`pytest -p crm_events_cert -m smoke` from a directory that is not the checkout."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "crm_events_cert", "-m", "smoke"),
            *("--collect-only", "-q", "-p", "no:cacheprovider"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected and all("test_smoke.py::" in line for line in collected), result.stdout

"""--stack-dir points the whole run at another copy of the deployable files (a user's own
stack/): the contract and the unit tier read that copy; a directory the contract cannot read is
a usage error that names the option."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.contract import CHECKLIST
from tests.tools import STACK, run_sample

pytestmark = pytest.mark.claim("harness.self_test")


def run(tmp_path: Path, stack_dir: Path) -> subprocess.CompletedProcess[str]:
    """A run with --stack-dir whose one test prints the stack directory the contract reads."""
    source = """
        from harness.contract import load

        def test_where():
            print("contract reads", load().stack_dir, "window", load().window_s)
        """
    return run_sample(tmp_path, source, f"--stack-dir={stack_dir}", "-s")


def test_the_contract_reads_the_given_directory(tmp_path: Path) -> None:
    copy = tmp_path / "my-stack"
    shutil.copytree(STACK, copy, ignore=shutil.ignore_patterns("images", "__pycache__"))
    compose = copy / "compose.yaml"
    text = compose.read_text()
    deployed = f'WINDOW_MINUTES: "{CHECKLIST.window_s / 60:g}"'
    assert text.count(deployed) == 1
    compose.write_text(text.replace(deployed, 'WINDOW_MINUTES: "10"'))  # fact-ok: the copy's own
    result = run(tmp_path, copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"contract reads {copy.resolve()} window 600" in result.stdout, result.stdout


def test_a_directory_without_the_deployable_files_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    result = run(tmp_path, empty)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"--stack-dir={empty}" in result.stderr, result.stderr


def test_published_ports_are_below_the_ephemeral_range_and_never_handed_out_twice() -> None:
    from harness.services import ephemeral_ports_start, free_port

    ports = [free_port() for _ in range(100)]
    assert len(set(ports)) == len(ports), "a port was handed out twice"
    assert all(port < ephemeral_ports_start() for port in ports), ports

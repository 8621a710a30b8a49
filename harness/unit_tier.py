"""The unit tier of a certify run, in a pytest process of its own beside the live suites.

The unit tier waits for nothing; the live suites mostly wait (windows and `for:` durations on the
compressed clock). One after the other, the unit tier's whole time (about 2.5 minutes on 2 cores)
adds to every certify run; beside the image build, the stack's start-up and the first episodes it
adds nothing. A certify run that collects both hands its in-scope unit tests to a child pytest
(`--unit-part`) and takes the child's results into its report before the verdict. The child runs
at a lower CPU priority: the stack keeps the CPU its timings are measured on, and the unit tier
takes what the waiting leaves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.settings import environment_of

PART_OPTION = "--unit-part"
NICENESS = 10
# Far above the unit tier's 2.5 minutes; a child that runs longer is hung, and the run says so.
WAIT_S = 1800
SELECTED = "nodeids.txt"
RESULTS = "results.json"
# The harness options given on the command line reach the child as their variables, except
# these: passed as options of their own, not through the environment, which the child's own
# children (the certificate-catches runs) would inherit.
NOT_FORWARDED = frozenset({"certify", "reports_dir"})


class UnitTierFailed(RuntimeError):
    """The child pytest ended without results (crashed, killed, or hung past WAIT_S)."""


@dataclass
class BackgroundUnitTier:
    """A running child pytest over the delegated unit tests, and where its output goes."""

    process: subprocess.Popen[bytes]
    directory: Path
    log: Path
    nodeids: list[str]
    duration_s: float = 0.0  # the child's own run time, from its results

    @classmethod
    def start(
        cls, config: pytest.Config, items: list[pytest.Item], reports: Path
    ) -> BackgroundUnitTier:
        directory = reports / "unit-tier"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / RESULTS).unlink(missing_ok=True)
        nodeids = [item.nodeid for item in items]
        (directory / SELECTED).write_text("\n".join(nodeids) + "\n")
        paths = sorted({str(item.path) for item in items})
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "crm_events_cert",
            *paths,
            "--certify",
            f"{PART_OPTION}={directory}",
            f"--reports-dir={directory}",
            f"--junitxml={reports / 'junit-unit.xml'}",
            f"--rootdir={config.rootpath}",
            "-p",
            "no:cacheprovider",
            "-q",
        ]
        if config.inipath:
            command += ["-c", str(config.inipath)]
        log = reports / "unit-tier.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=config.invocation_params.dir,
                env=os.environ | environment_of(config.getoption, NOT_FORWARDED),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.nice(NICENESS),
            )
        return cls(process, directory, log, nodeids)

    def results(self, timeout_s: float = WAIT_S) -> dict[str, dict[str, Any]]:
        """Each delegated test's result (outcome, duration_s, detail, evidence), once the child
        has ended; raises UnitTierFailed when it ended without them."""
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise UnitTierFailed(
                f"the unit tier ran past {timeout_s:g} s and was stopped (its output: {self.log})"
            ) from None
        results = self.directory / RESULTS
        if not results.is_file():
            raise UnitTierFailed(
                f"the unit tier's pytest exited {code} without results (its output: {self.log})"
            )
        found = json.loads(results.read_text())
        self.duration_s = found["duration_s"]
        tests: dict[str, dict[str, Any]] = found["tests"]
        return tests

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def selected(directory: Path) -> set[str]:
    """The child's side: the node ids its parent handed it."""
    return set((directory / SELECTED).read_text().split("\n")) - {""}


def write_results(directory: Path, tests: dict[str, dict[str, Any]], duration_s: float) -> None:
    """The child's side: its results and its run time, written last, so that their presence
    means it finished."""
    partial = directory / f"{RESULTS}.partial"
    results = {"duration_s": round(duration_s, 1), "tests": tests}
    partial.write_text(json.dumps(results, indent=1, default=str))
    partial.replace(directory / RESULTS)

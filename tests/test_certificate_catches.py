"""The certificate catches a realistic one-line mistake in what is deployed.

Each case copies the repository to a scratch directory, makes one edit there (a stack file or the
probe's code), runs the unit tests that prove the edited item in a certify run of the copy, and
reads the copy's evidence.json: the item must be FAIL. A control run of the unedited copy must
have every one of those items PASS, so that each FAIL is the edit's doing and nothing else's.

The copy runs its own code: `python -m pytest` puts its working directory (the copy) first on
sys.path, ahead of the installed checkout, and CRM_CERT_STACK_DIR points the contract at the
copy's stack/. The first test checks exactly that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import paths
from harness.contract import CHECKLIST, STACK_DIR_ENV
from harness.mutants.run import NOT_COPIED  # what a scratch copy leaves out, in one place

pytestmark = [pytest.mark.claim("harness.self_test")]

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 180

COMPOSE = "stack/compose.yaml"
ALERTMANAGER = "stack/alertmanager/alertmanager.yml"
CHECKS = "probe/checks.py"
SETTINGS = "probe/settings.py"

COMPOSE_TESTS = ("tests/test_compose.py",)
ALERTMANAGER_TESTS = ("tests/test_alertmanager.py",)
PROBE_TESTS = ("tests/test_probe_endpoints.py",)
SETTINGS_TESTS = ("tests/test_probe_endpoints.py", "tests/test_probe_settings.py")


@dataclass(frozen=True)
class Edit:
    """One edit: in `path`, `old` (which must occur exactly once) becomes `new`; the certify run
    of `tests` must then report every item of `claims` FAIL."""

    id: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    claims: tuple[str, ...]


# The old texts are the checklist's values as the files write them; the new ones are the mistakes.
EDITS = (
    Edit(
        "compose-window-minutes",
        COMPOSE,
        f'WINDOW_MINUTES: "{CHECKLIST.window_s / 60:g}"',
        'WINDOW_MINUTES: "10"',  # fact-ok: the mistake under test
        COMPOSE_TESTS,
        ("safety.settings",),
    ),
    Edit(
        "compose-prom-timeout",
        COMPOSE,
        f'PROM_TIMEOUT_MS: "{CHECKLIST.prom_timeout_ms}"',
        'PROM_TIMEOUT_MS: "3000"',  # fact-ok: the mistake under test
        COMPOSE_TESTS,
        ("safety.settings",),
    ),
    Edit(
        "compose-min-consumers",
        COMPOSE,
        f'MIN_CONSUMERS: "{CHECKLIST.min_consumers}"',
        'MIN_CONSUMERS: "1"',  # fact-ok: the mistake under test
        COMPOSE_TESTS,
        ("safety.settings", "probe.ready"),
    ),
    Edit(
        "compose-probe-memory",
        COMPOSE,
        f"memory: {CHECKLIST.probe_memory_bytes // 2**20}M",
        "memory: 128M",  # fact-ok: the mistake under test
        COMPOSE_TESTS,
        ("security.limits",),
    ),
    Edit(
        "compose-probe-restart-always",
        COMPOSE,
        "    command: [python, -m, probe]\n",
        "    command: [python, -m, probe]\n    restart: always\n",
        COMPOSE_TESTS,
        ("docker.probe_internal",),
    ),
    Edit(
        "compose-app-restart-always",
        COMPOSE,
        f"  restart: {CHECKLIST.probe_restart}\n  read_only: true\n",
        "  restart: always\n  read_only: true\n",
        COMPOSE_TESTS,
        ("docker.probe_internal",),
    ),
    Edit(
        "checks-skew-comparison",
        CHECKS,
        "if worst > threshold:",
        "if worst >= threshold:",
        PROBE_TESTS,
        ("probe.ready",),
    ),
    Edit(
        "settings-skew-threshold-default",
        SETTINGS,
        f"skew_threshold: float = {float(CHECKLIST.skew_threshold)!r}",
        "skew_threshold: float = 5.0",  # fact-ok: the mistake under test
        SETTINGS_TESTS,
        ("probe.ready", "safety.settings"),
    ),
    Edit(
        "checks-nan-guard-removed",
        CHECKS,
        "math.isnan(sample.value) or math.isinf(sample.value)",
        "math.isinf(sample.value)",
        PROBE_TESTS,
        ("probe.ready",),
    ),
    Edit(
        "alertmanager-critical-repeat",
        ALERTMANAGER,
        f"repeat_interval: {CHECKLIST.critical_repeat_interval}\n",
        f"repeat_interval: {CHECKLIST.warning_repeat_interval}\n",
        ALERTMANAGER_TESTS,
        ("am.routing",),
    ),
)


@dataclass(frozen=True)
class CertifyRun:
    returncode: int
    output: str
    evidence: dict[str, Any]

    def status(self, claim: str) -> str:
        (found,) = [c for c in self.evidence["claims"] if c["id"] == claim]
        return str(found["status"])

    def failed_tests(self) -> list[str]:
        return [t["nodeid"] for t in self.evidence["tests"] if t["outcome"] == "failed"]

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-40:])
        return (
            f"failed tests: {self.failed_tests()}\n--- pytest exited {self.returncode} ---\n{tail}"
        )


def scratch_copy(directory: Path) -> Path:
    copy = directory / "repo"
    shutil.copytree(REPO, copy, ignore=NOT_COPIED)
    return copy


def scratch_env(copy: Path) -> dict[str, str]:
    """The environment of a run in the copy: none of this run's harness settings, nothing on
    PYTHONPATH ahead of the copy, the copy's stack as the stack under certification."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CRM_CERT_") and name not in ("PYTHONPATH", "PYTEST_ADDOPTS")
    }
    env[STACK_DIR_ENV] = str(copy / "stack")
    env[paths.BUILD_DIR_ENV] = str(paths.BUILD_DIR)  # the engines' binaries, built once
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def apply(copy: Path, edit: Edit) -> None:
    path = copy / edit.path
    text = path.read_text()
    assert text.count(edit.old) == 1, (
        f"{edit.path}: {edit.old!r} occurs {text.count(edit.old)} times, not once: update the case"
    )
    path.write_text(text.replace(edit.old, edit.new))


def certify(copy: Path, tests: tuple[str, ...], reports: Path) -> CertifyRun:
    command = [
        sys.executable,
        "-m",
        "pytest",
        *tests,
        "--certify",
        f"--reports-dir={reports}",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    result = subprocess.run(
        command,
        cwd=copy,
        env=scratch_env(copy),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    evidence_file = reports / "evidence.json"
    assert evidence_file.is_file(), (
        f"no evidence.json; pytest exited {result.returncode}:\n{output}"
    )
    return CertifyRun(result.returncode, output, json.loads(evidence_file.read_text()))


def test_the_scratch_copy_runs_its_own_code_and_stack(tmp_path: Path) -> None:
    copy = scratch_copy(tmp_path)
    script = (
        "import json, harness.contract, harness.report, probe.checks, probe.settings, tests.tools;"
        "print(json.dumps({m.__name__: m.__file__ for m in (harness.contract, harness.report,"
        " probe.checks, probe.settings, tests.tools)} | {'stack': str(tests.tools.STACK),"
        " 'contract': str(harness.contract.load().stack_dir)}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=copy,
        env=scratch_env(copy),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for name, where in json.loads(result.stdout).items():
        assert Path(where).resolve().is_relative_to(copy.resolve()), f"{name}: {where}"


CONTROL = "unedited"


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[CertifyRun]]]:
    """The certify runs of the selected cases, started together (each is a pytest process of its
    own, mostly start-up time), keyed by edit id; CONTROL is the unedited copy's run."""
    selected = [CONTROL]
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        same_module = getattr(item, "module", None) is request.module
        if same_module and callspec and "edit" in callspec.params:
            selected.append(callspec.params["edit"].id)
    by_id = {edit.id: edit for edit in EDITS}
    all_tests = tuple(sorted({test for edit in EDITS for test in edit.tests}))

    def run(case: str) -> CertifyRun:
        directory = tmp_path_factory.mktemp(case)
        copy = scratch_copy(directory)
        if case == CONTROL:
            return certify(copy, all_tests, directory / "reports")
        apply(copy, by_id[case])
        return certify(copy, by_id[case].tests, directory / "reports")

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        yield {case: pool.submit(run, case) for case in selected}


def test_the_unedited_copy_passes_every_item_the_edits_break(
    runs: dict[str, Future[CertifyRun]],
) -> None:
    run = runs[CONTROL].result()
    for claim in sorted({claim for edit in EDITS for claim in edit.claims}):
        assert run.status(claim) == "PASS", f"{claim}: {run.status(claim)}\n{run.describe()}"


@pytest.mark.parametrize("edit", EDITS, ids=lambda edit: edit.id)
def test_the_certificate_fails_the_item_an_edit_breaks(
    runs: dict[str, Future[CertifyRun]], edit: Edit
) -> None:
    run = runs[edit.id].result()
    # Tests failed (1), not a run that could not collect or crashed (2, 3, 4): the FAIL is a
    # test noticing the edit.
    assert run.returncode == 1, run.describe()
    for claim in edit.claims:
        assert run.status(claim) == "FAIL", (
            f"{edit.path}: {edit.old!r} -> {edit.new!r} left {claim} {run.status(claim)}\n"
            + run.describe()
        )

"""Running mutants through the tiers, and the kill rule.

Each worker owns one scratch copy of the repository (copied once; `.git`, caches and reports
left out). A mutant is written into the worker's copy, the tier's test files run there as a
certify run (`python -m pytest <files> --certify --reports-dir=<tmp>`, cwd the copy,
CRM_CERT_STACK_DIR the copy's `stack/`), and the original file is put back. The copy runs its own
code: `python -m pytest` puts the copy first on sys.path (tests/test_certificate_catches.py checks
that this holds).

The kill rule: a mutant is KILLED only when the copy's certificate (evidence.json) marks some claim
FAIL. A failed test that leaves no claim FAIL (a run that did not start, a collection error) is not
a kill. `-x` stops a run at its first failed test: one FAIL claim is all a kill needs.

Speed (the whole stack's fast tier must fit in 10 minutes on 2 cores): each run is forked from a
process that has imported pytest's plugins and the report's libraries (`zygote.py`); bytecode is
cached in the copy (`_Applied` keeps the caches honest); promtool runs only the test groups that
can see a rule mutant (`selection.py`, `promtool_shim.py`); and the tests that killed most
mutants of the same kind so far run first (`order.py`), since `-x` ends a run at its first failure.

Tiers, cheapest first. Only the fast tier exists here: the unit test files that should notice
each kind of artifact (`FAST_TESTS`). A mutant that survives every tier is reported as "survived
the fast tier; needs the live tier". The live tier, which would reuse one running stack (apply
the mutant to the stack's mounted files, reload Prometheus and Alertmanager, run the acceptance
tests and drills of the claims the mutant touches, restore), is an extension point: a class
with `name`, `applies(mutant)` and `run(mutant, workspace)` like `FastTier`, appended to `TIERS`.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Any, Protocol

from harness import engines, paths
from harness.contract import STACK_DIR_ENV
from harness.mutants import model as m
from harness.mutants import order, selection
from harness.mutants.model import Mutant

KILLED, SURVIVED, EQUIVALENT, ERROR = "KILLED", "SURVIVED", "EQUIVALENT", "ERROR"
NEEDS_LIVE_TIER = "survived the fast tier; needs the live tier"

NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".nox",
    ".venv",
    ".build",
    "build",
    "reports",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
)
RUN_TIMEOUT_S = 300
ZYGOTE = Path(__file__).resolve().with_name("zygote.py")
PROMTOOL_SHIM = Path(__file__).resolve().with_name("promtool_shim.py")
TEST_TIMEOUT_S = 60

# The unit test files that should notice a mutant of each kind of artifact (globs, so that a
# sharper test file beside them, tests/test_<name>_sharper.py, runs in the same tier).
FAST_TESTS: dict[str, tuple[str, ...]] = {
    m.RULES: ("tests/test_prometheus_rules*.py",),
    m.PROBE_QUERIES: ("tests/test_probe_*.py",),
    m.DASHBOARD: ("tests/test_grafana_dashboard*.py",),
    m.ALERTMANAGER: ("tests/test_alertmanager*.py",),
    m.COMPOSE: ("tests/test_compose*.py", "tests/test_k8s*.py"),
    m.PROBE_CODE: ("tests/test_probe_*.py",),
}


# Tests left out of a kind's fast tier because they cannot see any of its mutants: these read
# only the promtool test files (and the alerts' labels and annotations, which no operator
# changes), and parse them with pure-Python YAML dozens of times (about 7 s a run).
# Debian's engines are left out everywhere: a mutant the current engine's tools cannot see, the
# oldest engine's cannot either (they run the same test files), and they would double the runs.
FAST_DESELECT: dict[str, tuple[str, ...]] = {
    m.RULES: (
        "-k",
        "not test_promtool_tests_check_both_edges_of_the_alerts_for"
        " and not test_promtool_tests_spell_out_the_firing_alerts and not debian",
    ),
}
FAST_DESELECT_DEFAULT = ("-k", "not debian")


def kill_claims(evidence: dict[str, Any]) -> list[str]:
    """The kill rule: the claims the certificate marks FAIL (none: not killed)."""
    return [claim["id"] for claim in evidence.get("claims", []) if claim.get("status") == "FAIL"]


@dataclass
class Outcome:
    """What one tier made of one mutant."""

    tier: str
    verdict: str  # KILLED, SURVIVED, ERROR
    claims: list[str] = field(default_factory=list)  # the FAIL claims (the kill)
    failed_tests: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    detail: str = ""


def outcome_of(
    tier: str, evidence: dict[str, Any] | None, duration_s: float, output: str
) -> Outcome:
    if evidence is None:
        tail = "\n".join(output.splitlines()[-15:])
        return Outcome(tier, ERROR, duration_s=duration_s, detail=f"no evidence.json\n{tail}")
    claims = kill_claims(evidence)
    failed = [t["nodeid"] for t in evidence.get("tests", []) if t.get("outcome") == "failed"]
    if claims:
        return Outcome(tier, KILLED, claims, failed, duration_s)
    detail = "; ".join(evidence.get("reasons", [])) if failed else ""
    return Outcome(tier, SURVIVED, [], failed, duration_s, detail)


class Workspace:
    """A worker's scratch copy of the repository."""

    def __init__(self, repo: Path, directory: Path) -> None:
        self.root = directory / "repo"
        self.reports = directory / "reports"
        self._server: subprocess.Popen[str] | None = None
        shutil.copytree(repo, self.root, ignore=NOT_COPIED)

    def env(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("CRM_CERT_") and name not in ("PYTHONPATH", "PYTEST_ADDOPTS")
        }
        env[STACK_DIR_ENV] = str(self.root / "stack")
        env[paths.BUILD_DIR_ENV] = str(paths.BUILD_DIR)
        # Bytecode is cached in the copy (compiling and rewriting the test modules is a third
        # of a short run): `_Applied` gives every mutated text a modification time of its own,
        # so no cached bytecode of one text is ever taken for another.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def promtool_selection(self, groups: dict[str, list[str]]) -> dict[str, str]:
        """The environment that puts promtool_shim.py in front of the current engine's promtool."""
        try:
            real = str(engines.tool("promtool"))
        except engines.EngineBuildError:
            return {}  # the tests fail on their own, saying promtool is missing
        shim = self.reports.parent / "bin" / "promtool"
        if not shim.exists():
            shim.parent.mkdir(parents=True, exist_ok=True)
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{PROMTOOL_SHIM}" "$@"\n')
            shim.chmod(0o755)
        return {
            "CRM_CERT_PROMTOOL": str(shim),  # tests/tools.py's stand-in for the current promtool
            "CRM_MUTANTS_REAL_PROMTOOL": real,
            "CRM_MUTANTS_PROMTOOL_GROUPS": json.dumps(groups),
        }

    def test_files(self, patterns: Sequence[str]) -> list[str]:
        return sorted(
            {path.relative_to(self.root).as_posix() for p in patterns for path in self.root.glob(p)}
        )

    def _zygote(self) -> subprocess.Popen[str]:
        if self._server is None or self._server.poll() is not None:
            self._server = subprocess.Popen(
                [sys.executable, str(ZYGOTE)],
                cwd=self.root,
                env=self.env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._server.stdout is not None
            json.loads(self._server.stdout.readline() or "{}")
        return self._server

    def close(self) -> None:
        if self._server is not None and self._server.poll() is None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            self._server.wait(timeout=30)

    def certify(
        self, test_files: Sequence[str], extra_env: dict[str, str] | None = None
    ) -> tuple[dict[str, Any] | None, str]:
        """A certify run of `test_files` in the copy; its evidence (None: none written) and its
        output."""
        shutil.rmtree(self.reports, ignore_errors=True)
        self.reports.mkdir(parents=True)
        argv = [
            *test_files,
            "--certify",
            f"--reports-dir={self.reports}",
            "-p",
            "no:cacheprovider",
            "-q",
            "-x",
            f"--timeout={TEST_TIMEOUT_S}",
        ]
        log = self.reports.parent / "pytest.log"
        server = self._zygote()
        assert server.stdin is not None and server.stdout is not None
        request = {
            "argv": argv,
            "cwd": str(self.root),
            "env": self.env() | (extra_env or {}),
            "log": str(log),
            "timeout": RUN_TIMEOUT_S,
        }
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        reply = json.loads(server.stdout.readline() or '{"code": null}')
        output = log.read_text() if log.is_file() else ""
        if reply.get("code") == -9:
            output += f"\ntimed out after {RUN_TIMEOUT_S}s"
        evidence_file = self.reports / "evidence.json"
        if not evidence_file.is_file():
            return None, output
        return json.loads(evidence_file.read_text()), output

    def applied(self, mutant: Mutant) -> _Applied:
        return _Applied(self.root / mutant.path, mutant)


_MTIMES = itertools.count(1)


class _Applied:
    """The mutant written into the copy, then the original put back with its own times.

    Python's and pytest's bytecode caches are keyed by a source's size and whole-second
    modification time: the mutated text gets a time no other text of the file ever has (the
    original's plus a count of seconds), and the original its own time back, so its cache stays
    valid and no mutant's cache is reused for another.
    """

    def __init__(self, path: Path, mutant: Mutant) -> None:
        self.path, self.mutant = path, mutant
        self.times = (0, 0)

    def __enter__(self) -> None:
        if self.path.read_text() != self.mutant.original:
            raise m.MutationError(f"{self.mutant.path} in the scratch copy is not the original")
        stat = self.path.stat()
        self.times = (stat.st_atime_ns, stat.st_mtime_ns)
        self.path.write_text(self.mutant.mutated)
        later = self.times[1] + (1_000_000 + next(_MTIMES)) * 1_000_000_000
        os.utime(self.path, ns=(self.times[0], later))

    def __exit__(self, *exc: object) -> None:
        self.path.write_text(self.mutant.original)
        os.utime(self.path, ns=self.times)


class Tier(Protocol):
    name: str

    def applies(self, mutant: Mutant) -> bool: ...

    def run(self, mutant: Mutant, workspace: Workspace) -> Outcome: ...


class FastTier:
    """The unit test files that should notice the mutant's kind of artifact; the tests that
    killed most mutants of the kind so far run first (`order.py`)."""

    name = "fast"

    def __init__(self) -> None:
        self._kills: dict[str, Counter[str]] = defaultdict(Counter)
        self._lock = threading.Lock()

    def first(self, kind: str) -> dict[str, str]:
        with self._lock:
            ranked = [name for name, _ in self._kills[kind].most_common()]
        return {order.FIRST_ENV: json.dumps(ranked)} if ranked else {}

    def learn(self, kind: str, outcome: Outcome) -> None:
        if outcome.verdict == KILLED and outcome.failed_tests:
            with self._lock:
                self._kills[kind][order.base(outcome.failed_tests[0])] += 1

    def applies(self, mutant: Mutant) -> bool:
        return mutant.kind in FAST_TESTS

    def files(self, kind: str, workspace: Workspace) -> list[str]:
        return [
            *workspace.test_files(FAST_TESTS[kind]),
            *FAST_DESELECT.get(kind, FAST_DESELECT_DEFAULT),
            "-p",
            order.__name__,
        ]

    def run(self, mutant: Mutant, workspace: Workspace) -> Outcome:
        started = time.monotonic()
        extra_env = self.first(mutant.kind)
        if mutant.kind == m.RULES:
            # promtool runs only the test groups that can see the mutated rule.
            extra_env |= workspace.promtool_selection(selection.groups(workspace.root, mutant))
        with workspace.applied(mutant):
            evidence, output = workspace.certify(self.files(mutant.kind, workspace), extra_env)
        outcome = outcome_of(self.name, evidence, time.monotonic() - started, output)
        self.learn(mutant.kind, outcome)
        return outcome

    def control(self, kind: str, workspace: Workspace) -> Outcome:
        """The unmutated copy through the same files: every claim must be free of FAIL."""
        started = time.monotonic()
        evidence, output = workspace.certify(self.files(kind, workspace))
        return outcome_of(self.name, evidence, time.monotonic() - started, output)


FAST = FastTier()
TIERS: tuple[Tier, ...] = (FAST,)


@dataclass
class Result:
    mutant: Mutant
    verdict: str
    outcomes: list[Outcome]
    reason: str = ""  # an equivalent's reason

    @property
    def claims(self) -> list[str]:
        return [claim for outcome in self.outcomes for claim in outcome.claims]

    @property
    def tier(self) -> str:
        return self.outcomes[-1].tier if self.outcomes else ""

    @property
    def note(self) -> str:
        if self.verdict == SURVIVED:
            return NEEDS_LIVE_TIER
        if self.verdict == ERROR:
            return self.outcomes[-1].detail
        return ""


class ControlFailed(RuntimeError):
    """The unmutated copy does not pass the tier: no mutant verdict would mean anything."""


def run_all(
    repo: Path,
    mutants: Sequence[Mutant],
    equivalents: dict[str, str],
    scratch: Path,
    workers: int,
    report: Callable[[int, int, Result], None],
    run_equivalents: bool = False,
) -> tuple[list[Result], dict[str, float]]:
    """Every mutant through the tiers on `workers` scratch copies; returns the results in the
    mutants' order and the wall time of each tier (and of the control runs)."""
    pool_size = max(1, min(workers, len(mutants) or 1))
    spaces: Queue[Workspace] = Queue()
    started = time.monotonic()
    with ThreadPoolExecutor(pool_size) as pool:
        for workspace in pool.map(
            lambda i: Workspace(repo, scratch / f"worker-{i}"), range(pool_size)
        ):
            spaces.put(workspace)
    times = {"copy": time.monotonic() - started}
    try:
        return _run(mutants, equivalents, spaces, pool_size, report, run_equivalents, times)
    finally:
        while not spaces.empty():
            spaces.get().close()


def _run(
    mutants: Sequence[Mutant],
    equivalents: dict[str, str],
    spaces: Queue[Workspace],
    pool_size: int,
    report: Callable[[int, int, Result], None],
    run_equivalents: bool,
    times: dict[str, float],
) -> tuple[list[Result], dict[str, float]]:
    def with_workspace(job: Callable[[Workspace], Any]) -> Any:
        workspace = spaces.get()
        try:
            return job(workspace)
        finally:
            spaces.put(workspace)

    kinds = sorted({mutant.kind for mutant in mutants if FAST.applies(mutant)})
    started = time.monotonic()
    with ThreadPoolExecutor(pool_size) as pool:
        controls = dict(
            zip(
                kinds,
                pool.map(lambda k: with_workspace(lambda w: FAST.control(k, w)), kinds),
                strict=True,
            )
        )
    times["control"] = time.monotonic() - started
    broken = {kind: o for kind, o in controls.items() if o.verdict != SURVIVED or o.failed_tests}
    if broken:
        raise ControlFailed(
            "the unmutated copy fails the fast tier: "
            + "; ".join(
                f"{kind}: {o.verdict} {o.claims or ''} {o.failed_tests or ''} {o.detail}"
                for kind, o in broken.items()
            )
        )

    total = len(mutants)
    done = [0]
    lock = threading.Lock()

    def one(mutant: Mutant) -> Result:
        reason = equivalents.get(mutant.id)
        if reason is not None and not run_equivalents:
            result = Result(mutant, EQUIVALENT, [], reason)
        else:
            outcomes: list[Outcome] = []
            verdict = SURVIVED
            for tier in TIERS:
                if not tier.applies(mutant):
                    continue
                outcome = with_workspace(functools.partial(tier.run, mutant))
                outcomes.append(outcome)
                verdict = outcome.verdict
                if verdict == KILLED:
                    break
            result = Result(mutant, verdict, outcomes)
            if reason is not None:
                result.reason = reason
                if verdict != KILLED:
                    result.verdict = EQUIVALENT
        with lock:
            done[0] += 1
            report(done[0], total, result)
        return result

    started = time.monotonic()
    with ThreadPoolExecutor(pool_size) as pool:
        results = list(pool.map(one, mutants))
    times[FAST.name] = time.monotonic() - started
    return results, times

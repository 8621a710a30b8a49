"""Flakes, counted: the certification run N times on one machine, one run beside a CPU hog.

`python -m harness.soak --runs N [pytest arguments]` (or `nox -s soak -- --runs N`) runs the
certify command N times in a row, each with its own reports directory under reports/soak/, and
writes reports/soak.md and reports/soak.json: every failure with its test, its claims and its
message (which carries the measured value against its bound), each run's time, and each run's
slowest episode against its floor, and the run (its image build and start-up apart) against
the sum of the floors. One run (the last, unless --hog-run says otherwise) has a CPU
hog beside it on one core: a busy loop started and stopped by this session, which also ends by
itself after --hog-max-s seconds whatever happens here.

Exit status: 0 when every run was CERTIFIED, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CERTIFY = ["tests", "acceptance", "drills", "--certify"]
HOG = "import time\nend = time.monotonic() + {max_s}\nwhile time.monotonic() < end:\n    pass\n"


@dataclass
class Run:
    number: int
    hog: bool
    exit_code: int = -1
    wall_s: float = 0.0
    verdict: str = "no report"
    failures: list[dict[str, Any]] = field(default_factory=list)
    slowest_episode: dict[str, Any] = field(default_factory=dict)
    # The run without its image build and start-up, over the sum of the episodes' floors.
    run_ratio: float | None = None

    @property
    def certified(self) -> bool:
        """CERTIFIED, of any scope: "CERTIFIED (ha topology)" with --topology=ha."""
        return self.verdict.startswith("CERTIFIED")


def start_hog(max_s: float) -> subprocess.Popen[bytes]:
    """A busy loop on one core (core 0 where taskset exists), ending by itself after max_s."""
    command = [sys.executable, "-c", HOG.format(max_s=max_s)]
    if os.path.exists("/usr/bin/taskset"):
        command = ["/usr/bin/taskset", "-c", "0", *command]
    return subprocess.Popen(command)


def read_run(run: Run, reports: Path) -> None:
    evidence_path = reports / "evidence.json"
    if not evidence_path.exists():
        return
    evidence = json.loads(evidence_path.read_text())
    run.verdict = evidence.get("verdict", "no verdict")
    run.run_ratio = evidence.get("run_against_floor", {}).get("ratio")
    run.failures = [
        {"test": test["nodeid"], "claims": test["claims"], "detail": test["detail"]}
        for test in evidence.get("tests", [])
        if test["outcome"] == "failed"
    ]
    episodes = [
        {"episode": title, **{k: v for k, v in e.items() if k in ("measured_s", "floor_s")}}
        for title, e in evidence.get("episodes", {}).items()
        if e.get("floor_s")
    ]
    if episodes:
        slowest = max(episodes, key=lambda e: e["measured_s"] / e["floor_s"])
        run.slowest_episode = slowest | {
            "ratio": round(slowest["measured_s"] / slowest["floor_s"], 2)
        }


def soak(
    runs: int, hog_run: int, hog_max_s: float, reports_dir: Path, pytest_args: list[str]
) -> list[Run]:
    """The runs, one after another; soak.md and soak.json are rewritten after each, so a soak
    cut short keeps what it measured."""
    out = reports_dir / "soak"
    results: list[Run] = []
    for number in range(1, runs + 1):
        run = Run(number, hog=number == hog_run)
        reports = out / f"run-{number}"
        command = [
            sys.executable,
            "-m",
            "pytest",
            *CERTIFY,
            f"--reports-dir={reports}",
            f"--junitxml={reports}/junit.xml",
            *pytest_args,
        ]
        print(f"soak: run {number} of {runs}{' beside a CPU hog' if run.hog else ''}", flush=True)
        hog = start_hog(hog_max_s) if run.hog else None
        started = time.monotonic()
        try:
            run.exit_code = subprocess.run(command, check=False).returncode
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        run.wall_s = round(time.monotonic() - started, 1)
        read_run(run, reports)
        print(
            f"soak: run {number}: {run.verdict}, exit {run.exit_code}, {run.wall_s:.0f} s, "
            f"{len(run.failures)} failure(s)",
            flush=True,
        )
        results.append(run)
        write(results, reports_dir)
    return results


def write(results: list[Run], reports_dir: Path) -> None:
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "soak.json").write_text(json.dumps([asdict(run) for run in results], indent=2))
    (reports_dir / "soak.md").write_text(markdown(results))


def markdown(results: list[Run]) -> str:
    failures = [(run, failure) for run in results for failure in run.failures]
    lines = [
        "# Soak: the certification, run after run",
        "",
        f"{len(results)} runs, {sum(r.certified for r in results)} CERTIFIED, "
        f"{len(failures)} failure(s).",
        "",
        "| run | CPU hog | verdict | exit | wall time | run / floor "
        "| slowest episode (measured / floor) |",
        "|---:|---|---|---:|---:|---:|---|",
    ]
    for run in results:
        slow = run.slowest_episode
        slowest = (
            f"{slow['episode']}: {slow['measured_s']} s / {slow['floor_s']} s = {slow['ratio']}"
            if slow
            else "-"
        )
        lines.append(
            f"| {run.number} | {'yes' if run.hog else 'no'} | {run.verdict} | {run.exit_code} "
            f"| {run.wall_s:.0f} s | {run.run_ratio or '-'} | {slowest} |"
        )
    if failures:
        lines += ["", "## Failures", ""]
        for run, failure in failures:
            claims = ", ".join(failure["claims"])
            lines.append(f"- run {run.number}: `{failure['test']}` ({claims}): {failure['detail']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.soak", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="how many certify runs (default 3)")
    parser.add_argument("--hog-run", type=int, help="the run with the CPU hog (default: the last)")
    parser.add_argument(
        "--hog-max-s", type=float, default=1800, help="the hog ends by itself after this long"
    )
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    args, pytest_args = parser.parse_known_args(argv)
    if args.runs < 1:
        parser.error(f"--runs={args.runs}: at least 1")
    hog_run = args.hog_run if args.hog_run is not None else args.runs
    if not 0 <= hog_run <= args.runs:
        parser.error(f"--hog-run={hog_run}: between 0 (none) and --runs")
    results = soak(args.runs, hog_run, args.hog_max_s, args.reports_dir, pytest_args)
    print(f"soak: {args.reports_dir / 'soak.md'}")
    return 0 if all(run.certified for run in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

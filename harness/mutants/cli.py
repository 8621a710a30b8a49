"""Command line: `python -m harness.mutants` (also `nox -s mutants`).

    python -m harness.mutants [--threshold 95] [--changed [BASE]] [--workers 2]
                              [--reports-dir reports] [--match TEXT] [--list]
                              [--run-equivalents]

Exit status: 0 when the score reaches the threshold, 1 below it, 2 when the run could not judge
the mutants (the unmutated copy fails the fast tier, a bad equivalents file, a git error).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console

from harness.contract import REPO
from harness.mutants import equivalents as eq
from harness.mutants import report
from harness.mutants.generate import generate
from harness.mutants.model import Mutant
from harness.mutants.run import (
    EQUIVALENT,
    ERROR,
    KILLED,
    NEEDS_LIVE_TIER,
    SURVIVED,
    ControlFailed,
    Result,
    run_all,
)

DEFAULT_THRESHOLD = 95.0
STYLES = {KILLED: "green", SURVIVED: "bold red", EQUIVALENT: "cyan", ERROR: "bold yellow"}


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m harness.mutants",
        description="Mutation testing of the artifacts under certification (fast tier).",
    )
    parse.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="minimum score in percent of the non-equivalent mutants (default %(default)g)",
    )
    parse.add_argument(
        "--changed",
        nargs="?",
        const="",
        default=None,
        metavar="BASE",
        help="mutate only the artifacts changed since BASE (default origin/main, else main)",
    )
    parse.add_argument("--workers", type=int, default=2, help="parallel runs (default 2)")
    parse.add_argument("--reports-dir", type=Path, default=REPO / "reports")
    parse.add_argument(
        "--match", action="append", default=[], help="only mutants whose id contains TEXT"
    )
    parse.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parse.add_argument(
        "--run-equivalents",
        action="store_true",
        help="run the listed equivalents too (an equivalent that gets killed is misfiled)",
    )
    return parse


def changed_files(repo: Path, base: str) -> set[str]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()

    if not base:
        base = "origin/main"
        try:
            git("rev-parse", "--verify", "--quiet", base)
        except subprocess.CalledProcessError:
            base = "main"
    merge_base = git("merge-base", base, "HEAD")
    names = git("diff", "--name-only", merge_base).splitlines()
    untracked = git("ls-files", "--others", "--exclude-standard").splitlines()
    return {name for name in (*names, *untracked) if name}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    repo = REPO
    try:
        equivalents = eq.load(repo / eq.FILE)
    except eq.EquivalentsError as error:
        console.print(f"[bold red]{error}")
        return 2

    started = time.monotonic()
    everything = generate(repo)
    generated_s = time.monotonic() - started
    stale = sorted(set(equivalents) - {mutant.id for mutant in everything})
    mutants: list[Mutant] = everything
    scope = "the whole stack"
    if args.changed is not None:
        try:
            changed = changed_files(repo, args.changed)
        except subprocess.CalledProcessError as error:
            console.print(f"[bold red]git: {error.stderr.strip() or error}")
            return 2
        mutants = [mutant for mutant in mutants if mutant.path in changed]
        scope = f"artifacts changed since {args.changed or 'origin/main (or main)'}: " + (
            ", ".join(sorted({mutant.path for mutant in mutants})) or "none"
        )
    if args.match:
        mutants = [mutant for mutant in mutants if any(text in mutant.id for text in args.match)]
        scope += f"; ids containing {args.match}"

    console.print(
        f"{len(mutants)} mutants ({len(everything)} in the stack, generated in "
        f"{generated_s:.1f} s), "
        f"{sum(mutant.id in equivalents for mutant in mutants)} reviewed equivalents; "
        f"scope: {scope}"
    )
    if args.list:
        for mutant in mutants:
            console.print(mutant.id, markup=False)
        return 0
    if not mutants:
        console.print("nothing to mutate")
        return 0

    def progress(n: int, total: int, result: Result) -> None:
        style = STYLES[result.verdict]
        how = ", ".join(sorted(set(result.claims))) or result.reason or result.note
        seconds = sum(outcome.duration_s for outcome in result.outcomes)
        console.print(
            f"[dim]{n:>4}/{total}[/] {result.tier or '-':<4} [{style}]{result.verdict:<10}[/] "
            f"{seconds:5.1f}s  ",
            end="",
        )
        console.print(f"{result.mutant.id}  ({how})", markup=False)

    with tempfile.TemporaryDirectory(prefix="crm-mutants-") as scratch:
        try:
            results, times = run_all(
                repo,
                mutants,
                equivalents,
                Path(scratch),
                args.workers,
                progress,
                run_equivalents=args.run_equivalents,
            )
        except ControlFailed as error:
            console.print(f"[bold red]{error}")
            return 2

    document = report.to_json(results, times, args.threshold, stale, scope)
    markdown, data = report.write(document, args.reports_dir)
    result_score = report.score(results)
    survivors = [r for r in results if r.verdict in (SURVIVED, ERROR)]
    for result in survivors:
        console.print(f"[bold red]{result.verdict}[/] {result.note or NEEDS_LIVE_TIER}:")
        console.print(result.mutant.diff(), markup=False)
    misfiled = [r for r in results if r.reason and r.verdict == KILLED]
    for result in misfiled:
        console.print(f"[yellow]listed as equivalent but killed:[/] {result.mutant.id}")
    for entry in stale:
        console.print(f"[yellow]equivalents entry matches no mutant:[/] {entry}")
    console.print(
        f"fast tier: {times.get('fast', 0.0):.1f} s for {len(results)} mutants on "
        f"{args.workers} workers (copies {times.get('copy', 0.0):.1f} s, control runs "
        f"{times.get('control', 0.0):.1f} s); live tier: not run"
    )
    style = "bold green" if result_score.percent >= args.threshold else "bold red"
    console.print(
        f"[{style}]mutation score {result_score.text()}[/], {result_score.equivalent} equivalent; "
        f"threshold {args.threshold:g}%  ->  {markdown}, {data}"
    )
    return 0 if result_score.percent >= args.threshold else 1

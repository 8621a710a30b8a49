"""reports/mutation.md and reports/mutation.json, built from the results of this run only."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.mutants.run import EQUIVALENT, ERROR, KILLED, NEEDS_LIVE_TIER, SURVIVED, Result


@dataclass(frozen=True)
class Score:
    killed: int
    non_equivalent: int
    equivalent: int

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.non_equivalent if self.non_equivalent else 100.0

    def text(self) -> str:
        return f"{self.percent:.1f}% ({self.killed} killed of {self.non_equivalent} non-equivalent)"


def score(results: Sequence[Result]) -> Score:
    counted = [r for r in results if r.verdict != EQUIVALENT]
    return Score(
        sum(r.verdict == KILLED for r in counted),
        len(counted),
        len(results) - len(counted),
    )


def _table(results: Sequence[Result], key: Callable[[Result], str]) -> dict[str, dict[str, Any]]:
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        rows[key(result)][result.verdict] += 1
    table = {}
    for name in sorted(rows):
        row = rows[name]
        counted = sum(n for verdict, n in row.items() if verdict != EQUIVALENT)
        table[name] = {
            "mutants": sum(row.values()),
            "killed": row[KILLED],
            "survived": row[SURVIVED],
            "error": row[ERROR],
            "equivalent": row[EQUIVALENT],
            "score": round(100.0 * row[KILLED] / counted, 1) if counted else None,
        }
    return table


def by_claim(results: Sequence[Result]) -> dict[str, int]:
    counts: Counter[str] = Counter(claim for r in results for claim in set(r.claims))
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def to_json(
    results: Sequence[Result],
    times: dict[str, float],
    threshold: float,
    stale: Sequence[str],
    scope: str,
) -> dict[str, Any]:
    result_score = score(results)
    return {
        "generated": datetime.now(UTC).isoformat(),
        "scope": scope,
        "threshold_percent": threshold,
        "score_percent": round(result_score.percent, 2),
        "passed": result_score.percent >= threshold,
        "killed": result_score.killed,
        "non_equivalent": result_score.non_equivalent,
        "equivalent": result_score.equivalent,
        "survived": sum(r.verdict == SURVIVED for r in results),
        "errors": sum(r.verdict == ERROR for r in results),
        "tiers": {
            "fast": {"wall_s": round(times.get("fast", 0.0), 1), "run": True},
            "live": {"run": False, "why": "not built: survivors are reported as needing it"},
        },
        "setup_s": {
            "scratch_copies": round(times.get("copy", 0.0), 1),
            "control_runs": round(times.get("control", 0.0), 1),
        },
        "by_artifact": _table(results, lambda r: r.mutant.path),
        "by_operator": _table(results, lambda r: r.mutant.operator),
        "by_claim": by_claim(results),
        "stale_equivalents": list(stale),
        "mutants": [
            {
                "id": r.mutant.id,
                "path": r.mutant.path,
                "kind": r.mutant.kind,
                "operator": r.mutant.operator,
                "location": r.mutant.location,
                "change": r.mutant.change,
                "verdict": r.verdict,
                "tier": r.tier,
                "killed_by": r.claims,
                "failed_tests": [t for o in r.outcomes for t in o.failed_tests],
                "duration_s": round(sum(o.duration_s for o in r.outcomes), 2),
                "note": r.note,
                "reason": r.reason,
                "diff": r.mutant.diff() if r.verdict != KILLED else "",
            }
            for r in results
        ],
    }


def _markdown_table(title: str, first: str, table: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        f"## {title}",
        "",
        f"| {first} | mutants | killed | survived | error | equivalent | score |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in table.items():
        shown = "n/a" if row["score"] is None else f"{row['score']:.1f}%"
        lines.append(
            f"| `{name}` | {row['mutants']} | {row['killed']} | {row['survived']} | "
            f"{row['error']} | {row['equivalent']} | {shown} |"
        )
    return [*lines, ""]


def to_markdown(document: dict[str, Any]) -> str:
    verdict = "PASSED" if document["passed"] else "BELOW THE THRESHOLD"
    lines = [
        "# Mutation testing of the artifacts under certification",
        "",
        f"Generated {document['generated']}; scope: {document['scope']}.",
        "",
        f"**Score: {document['score_percent']:.1f}%** ({document['killed']} killed of "
        f"{document['non_equivalent']} non-equivalent mutants; {document['equivalent']} "
        f"reviewed equivalents reported apart) — threshold {document['threshold_percent']:g}%: "
        f"**{verdict}**.",
        "",
        "A mutant is killed only when the certificate of a scratch copy carrying it marks a claim "
        "FAIL (evidence.json); a failed test alone is not a kill.",
        "",
        "## Tiers",
        "",
        "| tier | ran | wall time |",
        "|---|---|---:|",
        "| fast (unit test files per artifact) | yes | "
        f"{document['tiers']['fast']['wall_s']:.1f} s |",
        f"| live (one running stack) | no: {document['tiers']['live']['why']} | - |",
        "",
        f"Setup: scratch copies {document['setup_s']['scratch_copies']:.1f} s, control runs of "
        f"the unmutated copies {document['setup_s']['control_runs']:.1f} s.",
        "",
    ]
    lines += _markdown_table("Per artifact", "artifact", document["by_artifact"])
    lines += _markdown_table("Per operator", "operator", document["by_operator"])
    lines += ["## Per claim (mutants killed)", "", "| claim | killed |", "|---|---:|"]
    lines += [f"| `{claim}` | {n} |" for claim, n in document["by_claim"].items()]
    lines.append("")
    survivors = [m for m in document["mutants"] if m["verdict"] in (SURVIVED, ERROR)]
    lines += [f"## Survivors ({len(survivors)})", ""]
    if not survivors:
        lines += ["None.", ""]
    for mutant in survivors:
        note = NEEDS_LIVE_TIER if mutant["verdict"] == SURVIVED else mutant["note"]
        lines += [f"### `{mutant['id']}`", "", f"{mutant['verdict']}: {note}", ""]
        lines += ["```diff", mutant["diff"].rstrip("\n"), "```", ""]
    equivalents = [m for m in document["mutants"] if m["reason"]]
    lines += [
        f"## Reviewed equivalents ({len(equivalents)}), stack/mutants-equivalent.yml",
        "",
        "| mutant | verdict | reason |",
        "|---|---|---|",
    ]
    lines += [f"| `{m['id']}` | {m['verdict']} | {m['reason']} |" for m in equivalents]
    lines.append("")
    if document["stale_equivalents"]:
        lines += ["Entries of the equivalents file that match no generated mutant:", ""]
        lines += [f"- `{entry}`" for entry in document["stale_equivalents"]]
        lines.append("")
    return "\n".join(lines)


def write(document: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    markdown, data = directory / "mutation.md", directory / "mutation.json"
    data.write_text(json.dumps(document, indent=2) + "\n")
    markdown.write_text(to_markdown(document))
    return markdown, data

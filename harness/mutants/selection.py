"""Which promtool test groups can see a rule mutant: those that check the mutated rule, or a
recording rule or alert built on it (directly or through other recording rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import promql_parser as pp

from harness.mutants.model import Mutant, load

RULES_DIR = "stack/prometheus/rules"
TESTS_DIR = "stack/prometheus/tests"
ALERT_SERIES = {"ALERTS", "ALERTS_FOR_STATE"}


def selectors(expr: str) -> set[str] | None:
    """The metric names an expression reads (None: it does not parse, assume anything)."""
    try:
        parsed = pp.parse(expr)
    except ValueError:
        return None
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, pp.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(m.value for m in node.matchers.matchers if m.name == "__name__")

    pp.walk(parsed, visit)
    return names


def _rules(repo: Path) -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((repo / RULES_DIR).glob("*.yml"))
        for group in (load(path.read_text()) or {}).get("groups") or []
        for rule in group.get("rules") or []
    ]


def affected(repo: Path, name: str) -> set[str]:
    """`name` and every rule that reads it, directly or not."""
    reads = {
        str(rule.get("record") or rule.get("alert")): selectors(rule["expr"])
        for rule in _rules(repo)
    }
    found = {name}
    while True:
        more = {
            rule
            for rule, names in reads.items()
            if rule not in found and (names is None or names & found)
        }
        if not more:
            return found
        found |= more


def groups(repo: Path, mutant: Mutant) -> dict[str, list[str]]:
    """Test file name -> the names of its groups that can see `mutant` (a rule file mutant)."""
    names = affected(repo, mutant.location.split("/", 1)[0])
    alerts = {
        str(rule["alert"]) for rule in _rules(repo) if "alert" in rule and rule["alert"] in names
    }
    selected: dict[str, list[str]] = {}
    for path in sorted((repo / TESTS_DIR).glob("*.yml")):
        kept = []
        for group in (load(path.read_text()) or {}).get("tests") or []:
            checks_alert = any(
                case.get("alertname") in alerts for case in group.get("alert_rule_test") or []
            )
            reads = [selectors(case["expr"]) for case in group.get("promql_expr_test") or []]
            checks_series = any(
                r is None or r & names or (alerts and r & ALERT_SERIES) for r in reads
            )
            if checks_alert or checks_series:
                kept.append(str(group["name"]))
        selected[path.name] = kept
    return selected

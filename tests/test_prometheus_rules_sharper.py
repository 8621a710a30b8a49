"""Sharper rule tests, derived from the promtool tests of stack/prometheus/tests/: the alerts about
the service's consumer group look at that group only.

The promtool tests prove when each alert fires for the service's group. Two mistakes they cannot
see (found by mutation testing, harness/mutants): an alert that drops its consumer group matcher
fires for every group, and an `absent(...)` that drops it never fires while any other group is
listed. Each test here rewrites the promtool tests' own inputs, so it follows them:

- every input series of the service's group moved to another group: an alert about the
  service's group must then stay quiet wherever the original test expected it for the group;
- another group listed beside the inputs of every test where an `absent(...)` alert fires: the
  alert must fire exactly as before.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import promql_parser as pp
import pytest

from harness.contract import load
from harness.timescale import parse_duration
from tests.tools import (
    HARMLESS_SUMS,
    PROMTOOL_TESTS_DIR,
    exporter_series_summed,
    load_yaml,
    run_rule_tests,
)

pytestmark = [pytest.mark.claim("rules.alerts")]

ALERT_TESTS = PROMTOOL_TESTS_DIR / "crm_events_alerts_test.yml"


def group() -> str:
    return load().group


def other_group() -> str:
    return f"{group()}-other"


def label(name: str, value: str) -> str:
    return f'{name}="{value}"'


def absent_metrics(expr: str) -> set[str]:
    """The metrics an expression asks `absent(...)` about."""
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, pp.Call) and node.func.name == "absent":
            selector = node.args[0]
            if isinstance(selector, pp.VectorSelector) and selector.name:
                found.add(selector.name)

    pp.walk(pp.parse(expr), visit)
    return found


def group_alerts(firing: list[dict[str, Any]]) -> bool:
    return any(a.get("exp_labels", {}).get("consumergroup") == group() for a in firing)


def promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    original = load_yaml(ALERT_TESTS)
    document = {
        **{key: value for key, value in original.items() if key != "tests"},
        "rule_files": [
            str((ALERT_TESTS.parent / rule).resolve()) for rule in original["rule_files"]
        ],
        "tests": tests,
    }
    run_rule_tests(tmp_path / "sharper_test.yml", document)


def test_another_groups_series_fire_no_alert_about_the_services_group(tmp_path: Path) -> None:
    alerts = load().alerts
    absent = {name for name, alert in alerts.items() if absent_metrics(alert.expr)}
    ours, theirs = label("consumergroup", group()), label("consumergroup", other_group())
    tests = []
    for case in load_yaml(ALERT_TESTS)["tests"]:
        checks = [
            {"eval_time": check["eval_time"], "alertname": check["alertname"], "exp_alerts": []}
            for check in case.get("alert_rule_test") or []
            if check["alertname"] not in absent and group_alerts(check["exp_alerts"])
        ]
        if not checks:
            continue
        moved = copy.deepcopy(case)
        moved["name"] = f"{case['name']} (inputs moved to another group)"
        for series in moved["input_series"]:
            series["series"] = series["series"].replace(ours, theirs)
        moved.pop("promql_expr_test", None)
        moved["alert_rule_test"] = checks
        tests.append(moved)
    assert tests, "no promtool test expects an alert about the service's group"
    promtool(tmp_path, tests)


def test_an_absent_alert_still_fires_while_another_group_is_listed(tmp_path: Path) -> None:
    alerts = load().alerts
    absent = {name: absent_metrics(alert.expr) for name, alert in alerts.items()}
    absent = {name: metrics for name, metrics in absent.items() if metrics}
    theirs = label("consumergroup", other_group())
    tests = []
    for case in load_yaml(ALERT_TESTS)["tests"]:
        checks = [
            check
            for check in case.get("alert_rule_test") or []
            if check["alertname"] in absent and group_alerts(check["exp_alerts"])
        ]
        if not checks:
            continue
        listed = copy.deepcopy(case)
        listed["name"] = f"{case['name']} (another group listed)"
        metrics = {metric for check in checks for metric in absent[check["alertname"]]}
        # Listed for the whole test: one sample per interval up to the last evaluation.
        interval = parse_duration(
            case.get("interval", load_yaml(ALERT_TESTS)["evaluation_interval"])
        )
        samples = max(parse_duration(check["eval_time"]) for check in checks) // interval + 1
        listed["input_series"] = [
            *case["input_series"],
            *(
                {"series": f"{metric}{{{theirs}}}", "values": f"1x{samples}"}
                for metric in sorted(metrics)
            ),
        ]
        listed.pop("promql_expr_test", None)
        listed["alert_rule_test"] = checks
        tests.append(listed)
    assert tests, "no promtool test expects an absent(...) alert to fire for the group"
    promtool(tmp_path, tests)


@pytest.mark.claim("rules.recording")
def test_no_rule_adds_up_what_two_exporters_both_report() -> None:
    """The HA topology scrapes two exporters of one cluster: a rule that sums (or averages) their
    series doubles (or keeps) a value it must not. Per partition `max` first, then sum."""
    summed = {}
    for rule_file in load().rule_files.values():
        for group in rule_file["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule["alert"]
                if (found := exporter_series_summed(rule["expr"])) and name not in HARMLESS_SUMS:
                    summed[name] = found
    assert summed == {}, summed
    for name in HARMLESS_SUMS:
        assert name in load().alerts, f"HARMLESS_SUMS names no rule: {name}"

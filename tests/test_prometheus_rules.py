"""Prometheus config and rules: valid for promtool, the seed's names, routing labels, runbooks, and
every rule's behaviour proven by `promtool test rules` at the production durations."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.timescale import parse_duration
from tests.tools import (
    ALERT_RULES,
    PROMETHEUS_YML,
    PROMTOOL_TESTS_DIR,
    RECORDING_RULES,
    RULES_DIR,
    SCRAPED_METRICS,
    alert_rules,
    check_tool,
    load_yaml,
    metric_names,
    recording_rules,
)

pytestmark = [pytest.mark.claim("rules.recording"), pytest.mark.claim("rules.alerts")]

# The seed's claims, as its checklist wrote them.
SEED_RECORDING_RULES = {
    "kafka:group_consumer_count",
    "kafka:group_skew_ratio",
    "kafka:group_partition_lag",
    "kafka:group_lag_sum",
    "kafka:group_drain_eta_seconds",
    "kafka:group_lag_p95",
    "kafka:topic_message_rate",
    "kafka:topic_byte_rate",
}
SEED_ALERT_DURATIONS = {
    "CrmEventsHotKeySkewHigh": "12m",
    "CrmEventsUnderReplicatedConsumers": "7m",
    "CrmEventsPartitionStuck": "10m",
    "CrmEventsServiceDown": "5m",
    "CrmEventsHighLag": "5m",
}
ALERTS = {
    *SEED_ALERT_DURATIONS,
    "CrmEventsBackpressure",
    "CrmEventsDrainEtaHigh",
    "CrmEventsLagGrowing",
    "CrmEventsConsumerStalled",
    "CrmEventsKafkaExporterDown",
    "CrmEventsHealthProbeDown",
    "CrmEventsHealthProbeNotReady",
}
ROUTING_LABELS = {"team": "crm", "service": "crm-events-sse", "product": "aetherlink"}
SEVERITIES = {"critical", "warning", "info"}
RUNBOOK = re.compile(
    r"^https://github\.com/aetherlink/crm-events-cert/blob/main/docs/"
    r"(?:HEALTH_PROBE_INTEGRATION|RUNBOOK_HOTKEY_SKEW|LAG_CAPACITY_MONITORING)\.md#(?P<anchor>[a-z]+)$"
)
GROUP = 'consumergroup="crm-events-sse"'
EVALUATION_STEP = timedelta(seconds=15)

PROMTOOL_TESTS = sorted(PROMTOOL_TESTS_DIR.glob("*.yml"))
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))


def by_name(rules: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {rule[key]: rule for rule in rules}


# --- promtool -------------------------------------------------------------------------------


def test_prometheus_config_is_valid_and_finds_both_rule_files():
    output = check_tool("promtool", "check", "config", PROMETHEUS_YML)
    # rule_files are relative to prometheus.yml, wherever promtool runs from.
    for rule_file in RULE_FILES:
        assert f"rules/{rule_file.name}" in output, output
    assert f"{len(RULE_FILES)} rule files found" in output, output


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_rule_file_is_valid(rule_file: Path):
    check_tool("promtool", "check", "rules", rule_file)


@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(test_file: Path):
    output = check_tool("promtool", "test", "rules", test_file)
    assert "SUCCESS" in output, output


def test_each_rule_file_has_a_sibling_promtool_test():
    tested = {
        (PROMTOOL_TESTS_DIR / listed).resolve()
        for test_file in PROMTOOL_TESTS
        for listed in load_yaml(test_file)["rule_files"]
    }
    assert {path.resolve() for path in RULE_FILES} <= tested
    assert {path.stem for path in RULE_FILES} == {
        path.stem.removesuffix("_test") for path in PROMTOOL_TESTS
    }


# --- prometheus.yml -------------------------------------------------------------------------


def test_scrape_config_has_the_stack_targets_at_15s():
    config = load_yaml(PROMETHEUS_YML)
    assert config["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s"}
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    static = {
        name: [target for static in job.get("static_configs", []) for target in static["targets"]]
        for name, job in jobs.items()
    }
    assert static == {
        "kafka_exporter": ["kafka-exporter:9308"],
        "crm_events_health": ["crm-events-health:9011"],
        "crm_events_consumer": [],
        "prometheus": ["localhost:9090"],
        "alertmanager": ["alertmanager:9093"],
    }
    assert jobs["crm_events_consumer"]["dns_sd_configs"] == [
        {"names": ["crm-events-consumer"], "type": "A", "port": 9400, "refresh_interval": "15s"}
    ]
    assert config["alerting"] == {
        "alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]
    }


# --- recording rules ------------------------------------------------------------------------


def test_exactly_the_seeds_eight_recording_rules():
    names = [rule["record"] for rule in recording_rules()]
    assert len(names) == 8
    assert set(names) == SEED_RECORDING_RULES


def test_rule_groups_evaluate_every_15s():
    for rule_file in RULE_FILES:
        for group in load_yaml(rule_file)["groups"]:
            assert group["interval"] == "15s", (rule_file.name, group["name"])


def test_rules_read_only_recorded_or_scraped_series():
    recorded = {rule["record"] for rule in recording_rules()}
    for rule in recording_rules() + alert_rules():
        unknown = metric_names(rule["expr"]) - recorded - SCRAPED_METRICS
        assert not unknown, (rule.get("record") or rule.get("alert"), unknown)


# --- alerts ---------------------------------------------------------------------------------


def test_exactly_twelve_alerts_with_camelcase_names():
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == 12
    assert set(names) == ALERTS
    assert all(re.fullmatch(r"CrmEvents(?:[A-Z][a-z0-9]*)+", name) for name in names), names


def test_seed_alerts_wait_the_seeds_durations():
    alerts = by_name(alert_rules(), "alert")
    assert {name: alerts[name]["for"] for name in SEED_ALERT_DURATIONS} == SEED_ALERT_DURATIONS


@pytest.mark.parametrize("alert", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_carries_routing_labels_annotations_and_runbook(alert: dict[str, Any]):
    labels = alert["labels"]
    assert {key: labels.get(key) for key in ROUTING_LABELS} == ROUTING_LABELS
    assert labels["severity"] in SEVERITIES
    assert set(labels) == {*ROUTING_LABELS, "severity"}
    annotations = alert["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert all(annotations[key].strip() for key in annotations)
    # Descriptions show the measured value or the labels that say where the problem is.
    assert "{{ $labels." in annotations["description"] or "$value" in annotations["description"]
    runbook = RUNBOOK.match(annotations["runbook_url"])
    assert runbook, annotations["runbook_url"]
    assert runbook["anchor"] == alert["alert"].lower()
    assert parse_duration(alert["for"]) > 0


# --- the promtool tests themselves ----------------------------------------------------------


def alert_cases() -> list[tuple[str, dict[str, list[dict[str, Any]]]]]:
    """(test name, {eval_time: exp_alerts}) per alert and test group of the alert tests."""
    cases = []
    for test_file in PROMTOOL_TESTS:
        for group in load_yaml(test_file)["tests"]:
            by_alert: dict[str, dict[timedelta, list[dict[str, Any]]]] = {}
            for case in group.get("alert_rule_test", []):
                at = timedelta(milliseconds=parse_duration(case["eval_time"]))
                by_alert.setdefault(case["alertname"], {})[at] = case["exp_alerts"]
            cases += [(group["name"], alert, evals) for alert, evals in by_alert.items()]
    return cases


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_promtool_tests_check_both_edges_of_the_alerts_for(alert: str):
    """Some test expects the alert firing at t and expects nothing one evaluation before t."""
    edges = [
        (name, at)
        for name, alertname, evals in alert_cases()
        if alertname == alert
        for at, expected in evals.items()
        if expected and evals.get(at - EVALUATION_STEP) == []
    ]
    assert edges, f"no promtool test checks {alert} on both edges of its for:"


@pytest.mark.parametrize("alert", alert_rules(), ids=lambda rule: rule["alert"])
def test_promtool_tests_spell_out_the_firing_alerts(alert: dict[str, Any]):
    firing = [
        expected
        for _, alertname, evals in alert_cases()
        if alertname == alert["alert"]
        for expected_alerts in evals.values()
        for expected in expected_alerts
    ]
    assert firing, f"no promtool test expects {alert['alert']} to fire"
    for expected in firing:
        assert alert["labels"].items() <= expected["exp_labels"].items()
        assert set(expected["exp_annotations"]) == set(alert["annotations"])
        if GROUP in alert["expr"]:
            # Alerts about the group keep its label: Alertmanager groups and inhibits on it.
            assert expected["exp_labels"]["consumergroup"] == "crm-events-sse"


def test_alert_tests_evaluate_recording_rules_first_at_15s():
    test = load_yaml(PROMTOOL_TESTS_DIR / "crm_events_alerts_test.yml")
    assert test["evaluation_interval"] == "15s"
    assert test["group_eval_order"] == [
        load_yaml(RECORDING_RULES)["groups"][0]["name"],
        load_yaml(ALERT_RULES)["groups"][0]["name"],
    ]
    for test_file in PROMTOOL_TESTS:
        for group in load_yaml(test_file)["tests"]:
            assert group["interval"] == "15s", (test_file.name, group["name"])

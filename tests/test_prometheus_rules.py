"""Prometheus config and rules: valid for promtool, the seed's names, routing labels, runbooks, and
every rule's behaviour proven by `promtool test rules` at the production durations."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from harness import services as svc
from harness.contract import CHECKLIST, load, seconds
from harness.engines import ENGINES
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
    CHECKLIST.skew_alert: CHECKLIST.skew_alert_for,
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
ROUTING_LABELS = CHECKLIST.labels
SEVERITIES = {"critical", "warning", "info"}
RUNBOOK = re.compile(
    r"^https://github\.com/aetherlink/crm-events-cert/blob/main/docs/"
    r"(?:HEALTH_PROBE_INTEGRATION|RUNBOOK_HOTKEY_SKEW|LAG_CAPACITY_MONITORING)\.md#(?P<anchor>[a-z]+)$"
)
GROUP = f'consumergroup="{CHECKLIST.group}"'
EVALUATION_STEP = timedelta(seconds=CHECKLIST.scrape_s)

PROMTOOL_TESTS = sorted(PROMTOOL_TESTS_DIR.glob("*.yml"))
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))


def by_name(rules: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {rule[key]: rule for rule in rules}


# --- promtool -------------------------------------------------------------------------------


@pytest.mark.claim("rules.recording")
@pytest.mark.claim("rules.alerts")
@pytest.mark.parametrize("engine", ENGINES)
def test_prometheus_config_is_valid_and_finds_both_rule_files(engine: str):
    output = check_tool("promtool", "check", "config", PROMETHEUS_YML, engine=engine)
    # rule_files are relative to prometheus.yml, wherever promtool runs from.
    for rule_file in RULE_FILES:
        assert f"rules/{rule_file.name}" in output, output
    assert f"{len(RULE_FILES)} rule files found" in output, output


@pytest.mark.claim("rules.recording")
@pytest.mark.claim("rules.alerts")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_rule_file_is_valid(rule_file: Path, engine: str):
    check_tool("promtool", "check", "rules", rule_file, engine=engine)


@pytest.mark.claim("rules.recording")
@pytest.mark.claim("rules.alerts")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(test_file: Path, engine: str):
    output = check_tool("promtool", "test", "rules", test_file, engine=engine)
    assert "SUCCESS" in output, output


@pytest.mark.claim("rules.recording")
@pytest.mark.claim("rules.alerts")
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


@pytest.mark.claim("rules.recording")
@pytest.mark.claim("probe.metrics")
def test_scrape_config_has_the_stack_targets_at_the_scrape_interval():
    config = load_yaml(PROMETHEUS_YML)
    assert config["global"] == {
        "scrape_interval": CHECKLIST.scrape_interval,
        "evaluation_interval": CHECKLIST.scrape_interval,
    }
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    static = {
        name: [target for static in job.get("static_configs", []) for target in static["targets"]]
        for name, job in jobs.items()
    }
    assert static == {
        "kafka_exporter": ["kafka-exporter:9308"],
        "crm_events_health": [f"{CHECKLIST.probe_service}:{CHECKLIST.probe_port}"],
        "crm_events_consumer": [],
        "prometheus": ["localhost:9090"],
        "alertmanager": ["alertmanager:9093"],
    }
    assert jobs["crm_events_consumer"]["dns_sd_configs"] == [
        {
            "names": [svc.CONSUMERS],
            "type": "A",
            "port": svc.CONSUMER_METRICS_PORT,
            "refresh_interval": CHECKLIST.scrape_interval,
        }
    ]
    assert config["alerting"] == {
        "alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]
    }


# --- recording rules ------------------------------------------------------------------------


@pytest.mark.claim("rules.recording")
def test_exactly_the_seeds_recording_rules():
    names = [rule["record"] for rule in recording_rules()]
    assert len(names) == CHECKLIST.recording_rules
    assert len(load().recording_rules) == CHECKLIST.recording_rules, "a rule outside the file"
    assert set(names) == SEED_RECORDING_RULES


@pytest.mark.claim("rules.recording")
@pytest.mark.claim("rules.alerts")
def test_rule_groups_evaluate_at_the_scrape_interval():
    for rule_file in RULE_FILES:
        for group in load_yaml(rule_file)["groups"]:
            assert group["interval"] == CHECKLIST.scrape_interval, (rule_file.name, group["name"])


@pytest.mark.claim("rules.recording")
@pytest.mark.claim("rules.alerts")
def test_rules_read_only_recorded_or_scraped_series():
    recorded = {rule["record"] for rule in recording_rules()}
    for rule in recording_rules() + alert_rules():
        unknown = metric_names(rule["expr"]) - recorded - SCRAPED_METRICS
        assert not unknown, (rule.get("record") or rule.get("alert"), unknown)


# --- alerts ---------------------------------------------------------------------------------


@pytest.mark.claim("rules.alerts")
def test_exactly_the_seeds_alerts_with_camelcase_names():
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == CHECKLIST.alerts
    assert len(load().alerts) == CHECKLIST.alerts, "an alert outside the file"
    assert set(names) == ALERTS
    assert all(re.fullmatch(r"CrmEvents(?:[A-Z][a-z0-9]*)+", name) for name in names), names


@pytest.mark.claim("rules.alerts")
def test_seed_alerts_wait_the_seeds_durations():
    alerts = by_name(alert_rules(), "alert")
    assert {name: alerts[name]["for"] for name in SEED_ALERT_DURATIONS} == SEED_ALERT_DURATIONS
    for name, duration in SEED_ALERT_DURATIONS.items():
        assert load().alert(name).for_s == seconds(duration), name


@pytest.mark.claim("rules.alerts")
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


def alert_cases() -> list[tuple[str, str, dict[timedelta, list[dict[str, Any]]]]]:
    """(test name, alert name, {eval_time: exp_alerts}) per alert and test group."""
    cases = []
    for test_file in PROMTOOL_TESTS:
        for group in load_yaml(test_file)["tests"]:
            by_alert: dict[str, dict[timedelta, list[dict[str, Any]]]] = {}
            for case in group.get("alert_rule_test", []):
                at = timedelta(milliseconds=parse_duration(case["eval_time"]))
                by_alert.setdefault(case["alertname"], {})[at] = case["exp_alerts"]
            cases += [(group["name"], alert, evals) for alert, evals in by_alert.items()]
    return cases


@pytest.mark.claim("rules.alerts")
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


@pytest.mark.claim("rules.alerts")
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
            assert expected["exp_labels"]["consumergroup"] == CHECKLIST.group


@pytest.mark.claim("rules.recording")
@pytest.mark.claim("rules.alerts")
def test_alert_tests_evaluate_recording_rules_first_at_the_scrape_interval():
    test = load_yaml(PROMTOOL_TESTS_DIR / "crm_events_alerts_test.yml")
    assert test["evaluation_interval"] == CHECKLIST.scrape_interval
    assert test["group_eval_order"] == [
        load_yaml(RECORDING_RULES)["groups"][0]["name"],
        load_yaml(ALERT_RULES)["groups"][0]["name"],
    ]
    for test_file in PROMTOOL_TESTS:
        for group in load_yaml(test_file)["tests"]:
            assert group["interval"] == CHECKLIST.scrape_interval, (test_file.name, group["name"])

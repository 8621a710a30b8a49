"""The probe's endpoint contract, on the live stack."""

from __future__ import annotations

import pytest

from harness.contract import CHECKLIST

PROBE_METRICS = (
    "health_probe_checks_total",
    "health_probe_status",
    "health_probe_duration_seconds",
    "health_probe_prometheus_errors_total",
    "health_probe_prometheus_retries_total",
    "health_probe_last_success_timestamp_seconds",
)


@pytest.mark.claim("probe.health")
def test_health_is_200(probe, evidence):
    assert evidence.record("/health status", probe.health()) == 200


@pytest.mark.claim("probe.status")
@pytest.mark.claim("safety.settings")
def test_status_reports_the_settings_the_stack_runs_with(stack, probe, evidence):
    status = probe.status()
    for field in (
        "window_minutes",
        "skew_threshold",
        "min_consumers",
        "prom_timeout_ms",
        "prom_retries",
        "prom_backoff_ms",
        "queries",
        "last_evaluation",
    ):
        evidence.record(field, status.get(field))
    # What the checklist requires, with the window on this stack's time scale: the running
    # probe is the deployed one, so a wrong value in compose.yaml fails here.
    window_minutes = stack.seconds(CHECKLIST.window_s) / 60
    assert status["window_minutes"] == pytest.approx(window_minutes, rel=1e-3)
    assert status["skew_threshold"] == CHECKLIST.skew_threshold
    assert status["min_consumers"] == CHECKLIST.min_consumers
    assert status["prom_timeout_ms"] == CHECKLIST.prom_timeout_ms
    assert status["prom_retries"] == CHECKLIST.prom_retries
    assert status["prom_backoff_ms"] == CHECKLIST.prom_backoff_ms
    assert status["consumer_group"] == CHECKLIST.group
    assert status["queries"]["skew"].startswith("min_over_time(kafka:group_skew_ratio{")
    assert status["queries"]["consumer_count"].startswith(
        "max_over_time(kafka:group_consumer_count{"
    )


@pytest.mark.claim("probe.metrics")
def test_metrics_expose_the_probe_metrics_and_prometheus_scrapes_them(probe, prometheus, evidence):
    probe.ready()
    names = {key.split("{")[0] for key in probe.metrics()}
    for metric in PROBE_METRICS:
        family = metric.removesuffix("_total")
        assert any(name.startswith(family) for name in names), f"{metric} not in /metrics"
    up = evidence.record(
        "up{job=crm_events_health}", prometheus.value('up{job="crm_events_health"}')
    )
    assert up == 1
    assert prometheus.query("health_probe_status"), "Prometheus has no health_probe_status"


@pytest.mark.claim("probe.ready")
def test_ready_answers_200_with_both_checks_passing(probe, steady_state, evidence):
    answer = probe.ready()
    evidence.record("/ready", answer.status_code)
    evidence.record("checks", answer.body.get("checks"))
    assert answer.status_code == 200
    assert (
        answer.body["checks"]["skew"]["passed"]
        and answer.body["checks"]["consumer_count"]["passed"]
    )

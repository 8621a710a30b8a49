"""The probe's HTTP contract, against a real HTTP fake Prometheus."""

from __future__ import annotations

import math

import pytest
from werkzeug import Response

from tests.conftest import vector


def test_ready_is_200_when_skew_and_consumers_are_within_limits(prometheus, settings, serve):
    prometheus.skew, prometheus.consumers = vector(1.5), vector(2)
    response = serve(settings()).get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["failed"] == []
    assert body["checks"]["skew"]["value"] == 1.5
    assert body["checks"]["consumer_count"]["value"] == 2


def test_limits_themselves_are_healthy(prometheus, settings, serve):
    prometheus.skew, prometheus.consumers = vector(4.0), vector(2)
    assert serve(settings()).get("/ready").status_code == 200


def test_skew_above_threshold_fails_naming_the_skew_check(prometheus, settings, serve):
    prometheus.skew = vector(6.0)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    [failed] = response.json()["failed"]
    assert failed["message"] == "skew check failed"
    assert failed["reason"] == "threshold_exceeded"
    assert failed["value"] == 6.0


def test_too_few_consumers_fails_naming_the_consumer_count_check(prometheus, settings, serve):
    prometheus.consumers = vector(1)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    [failed] = response.json()["failed"]
    assert failed["message"] == "consumer_count check failed"
    assert failed["reason"] == "below_minimum"


def test_every_failed_check_is_named(prometheus, settings, serve):
    prometheus.skew, prometheus.consumers = vector(9.0), vector(0)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    assert [f["message"] for f in response.json()["failed"]] == [
        "skew check failed",
        "consumer_count check failed",
    ]


def test_the_worst_series_decides(prometheus, settings, serve):
    prometheus.skew, prometheus.consumers = vector(1.0, 5.0), vector(3, 1)
    failed = serve(settings()).get("/ready").json()["failed"]
    assert {(f["check"], f["value"]) for f in failed} == {("skew", 5.0), ("consumer_count", 1)}


def test_missing_series_is_no_data_never_healthy(prometheus, settings, serve):
    prometheus.skew = vector()
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    [failed] = response.json()["failed"]
    assert (failed["check"], failed["reason"]) == ("skew", "no_data")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_never_healthy(prometheus, settings, serve, value):
    prometheus.consumers = vector(value)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    [failed] = response.json()["failed"]
    assert (failed["check"], failed["reason"]) == ("consumer_count", "invalid_value")


def test_health_is_200_whatever_prometheus_does(settings, serve):
    client = serve(settings(prom_url="http://127.0.0.1:1", prom_retries=1))
    assert client.get("/ready").status_code == 500
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_status_reports_settings_queries_and_last_evaluation(prometheus, settings, serve):
    client = serve(settings(window_minutes=0.5, skew_threshold=3, min_consumers=4))
    before = client.get("/status").json()
    assert before["last_evaluation"] is None
    prometheus.consumers = vector(4)
    client.get("/ready")
    status = client.get("/status").json()
    assert status["window_minutes"] == 0.5
    assert status["window"] == "30s"
    assert status["skew_threshold"] == 3
    assert status["min_consumers"] == 4
    assert status["queries"]["skew"] == (
        'min_over_time(kafka:group_skew_ratio{consumergroup="crm-events-sse"}[30s])'
    )
    last = status["last_evaluation"]
    assert last["ready"] is True
    assert last["checks"]["consumer_count"]["value"] == 4
    assert last["evaluated_at"] and last["duration_ms"] >= 0


def test_metrics_expose_the_six_probe_metrics(prometheus, settings, serve):
    client = serve(settings())
    client.get("/ready")
    prometheus.consumers = vector(1)
    client.get("/ready")
    text = client.get("/metrics").text
    for name in (
        "health_probe_checks_total",
        "health_probe_status",
        "health_probe_duration_seconds",
        "health_probe_prometheus_errors_total",
        "health_probe_prometheus_retries_total",
        "health_probe_last_success_timestamp_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert 'health_probe_checks_total{check="consumer_count",result="pass"} 1.0' in text
    assert 'health_probe_checks_total{check="consumer_count",result="fail"} 1.0' in text
    assert "health_probe_status 0.0" in text
    assert "health_probe_duration_seconds_count 2.0" in text


def test_probe_sends_the_sustained_breach_queries_by_default(prometheus, settings, serve):
    serve(settings()).get("/ready")
    assert prometheus.queries == [
        'min_over_time(kafka:group_skew_ratio{consumergroup="crm-events-sse"}[5m])',
        'max_over_time(kafka:group_consumer_count{consumergroup="crm-events-sse"}[5m])',
    ]


def test_query_templates_and_window_are_settings(prometheus, settings, serve):
    probe_settings = settings(
        window_minutes=1 / 3,
        consumer_group="other.group",
        skew_query='max_over_time(kafka:group_skew_ratio{consumergroup="$group"}[$window])',
        consumers_query='min_over_time(kafka:group_consumer_count{consumergroup="$group"}[$window])',
    )
    serve(probe_settings).get("/ready")
    assert prometheus.queries == [
        'max_over_time(kafka:group_skew_ratio{consumergroup="other.group"}[20s])',
        'min_over_time(kafka:group_consumer_count{consumergroup="other.group"}[20s])',
    ]


def test_a_bad_query_answer_from_prometheus_is_unavailable_not_ready(prometheus, settings, serve):
    prometheus.skew = Response('{"status":"error","errorType":"bad_data"}', status=400)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    assert {f["reason"] for f in response.json()["failed"]} == {"prometheus_unavailable"}

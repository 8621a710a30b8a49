"""The probe's HTTP contract, against a real HTTP fake Prometheus."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from werkzeug import Response

from harness.contract import CHECKLIST, load
from probe.settings import DEFAULT_EXPORTER_UP_QUERY, ProbeSettings
from tests.conftest import FakePrometheus, vector


def sustained_breach_queries(window: str) -> list[str]:
    """The queries the probe must send: a breach counts only when it held the whole window."""
    matcher = f'consumergroup="{CHECKLIST.group}"'
    return [
        f"min_over_time(kafka:group_skew_ratio{{{matcher}}}[{window}])",
        f"max_over_time(kafka:group_consumer_count{{{matcher}}}[{window}])",
        f"min_over_time(kafka:group_lag_sum{{{matcher}}}[{window}])"
        " * on (consumergroup, topic) (sum by (consumergroup, topic) ("
        f"increase(kafka_consumergroup_current_offset{{{matcher}}}[{window}])) == bool 0)",
    ]


@pytest.fixture(params=["compose.yaml", "defaults"])
def in_force(
    request: pytest.FixtureRequest,
    prometheus: FakePrometheus,
    settings: Callable[..., ProbeSettings],
) -> ProbeSettings:
    """The probe's settings as stack/compose.yaml deploys it, or its own defaults (what runs where
    an environment leaves a setting out), pointed at the fake Prometheus, without the cache."""
    if request.param == "defaults":
        return settings()
    deployed = load().probe_env | {"PROM_URL": prometheus.url, "CACHE_TTL_SECONDS": "0"}
    return ProbeSettings.from_env(deployed)


# --- /ready -----------------------------------------------------------------------------------


@pytest.mark.claim("probe.ready")
def test_ready_is_200_when_skew_and_consumers_are_within_limits(prometheus, settings, serve):
    prometheus.skew, prometheus.consumers = vector(1.5), vector(CHECKLIST.min_consumers + 1)
    response = serve(settings()).get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["failed"] == []
    assert body["checks"]["skew"]["value"] == 1.5
    assert body["checks"]["consumer_count"]["value"] == CHECKLIST.min_consumers + 1


@pytest.mark.claim("probe.ready")
def test_skew_at_the_threshold_is_healthy_and_just_above_is_not(prometheus, serve, in_force):
    client = serve(in_force)
    prometheus.consumers = vector(CHECKLIST.min_consumers)
    prometheus.skew = vector(CHECKLIST.skew_threshold)
    assert client.get("/ready").status_code == 200, "skew == the threshold is healthy"
    just_above = math.nextafter(CHECKLIST.skew_threshold, math.inf)
    prometheus.skew = vector(just_above)
    response = client.get("/ready")
    assert response.status_code == 500, f"skew {just_above!r} > the threshold is not healthy"
    [failed] = response.json()["failed"]
    assert (failed["check"], failed["reason"]) == ("skew", "threshold_exceeded")


@pytest.mark.claim("probe.ready")
def test_the_minimum_of_consumers_is_healthy_and_one_fewer_is_not(prometheus, serve, in_force):
    client = serve(in_force)
    prometheus.skew = vector(CHECKLIST.skew_threshold)
    prometheus.consumers = vector(CHECKLIST.min_consumers)
    assert client.get("/ready").status_code == 200, "the minimum itself is healthy"
    prometheus.consumers = vector(CHECKLIST.min_consumers - 1)
    response = client.get("/ready")
    assert response.status_code == 500
    [failed] = response.json()["failed"]
    assert (failed["check"], failed["reason"]) == ("consumer_count", "below_minimum")


@pytest.mark.claim("probe.ready")
def test_skew_above_threshold_fails_naming_the_skew_check(prometheus, settings, serve):
    above = CHECKLIST.skew_threshold * 1.5
    prometheus.skew = vector(above)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    [failed] = response.json()["failed"]
    assert failed["message"] == "skew check failed"
    assert failed["reason"] == "threshold_exceeded"
    assert failed["value"] == above


@pytest.mark.claim("probe.ready")
def test_too_few_consumers_fails_naming_the_consumer_count_check(prometheus, settings, serve):
    prometheus.consumers = vector(CHECKLIST.min_consumers - 1)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    [failed] = response.json()["failed"]
    assert failed["message"] == "consumer_count check failed"
    assert failed["reason"] == "below_minimum"


@pytest.mark.claim("probe.ready")
def test_every_failed_check_is_named(prometheus, settings, serve):
    prometheus.skew, prometheus.consumers = vector(CHECKLIST.skew_threshold * 2), vector(0)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    assert [f["message"] for f in response.json()["failed"]] == [
        "skew check failed",
        "consumer_count check failed",
    ]
    prometheus.progress = vector(7)
    assert [f["message"] for f in serve(settings()).get("/ready").json()["failed"]] == [
        "skew check failed",
        "consumer_count check failed",
        "progress check failed",
    ]


@pytest.mark.claim("probe.ready")
def test_messages_waiting_the_whole_window_uncommitted_are_stalled(prometheus, serve, in_force):
    client = serve(in_force)
    prometheus.progress = vector(0)
    assert client.get("/ready").status_code == 200, "nothing waited uncommitted: healthy"
    prometheus.progress = vector(0, 1)
    response = client.get("/ready")
    assert response.status_code == 500, "one message that waited the whole window is a stall"
    [failed] = response.json()["failed"]
    assert failed["message"] == "progress check failed"
    assert (failed["check"], failed["reason"], failed["value"]) == ("progress", "stalled", 1)
    assert "committed none" in failed["detail"]
    # A stall is only called one while the exporter, whose offsets it reads, is up.
    assert [q for q in prometheus.queries if "up{job=" in q] == [DEFAULT_EXPORTER_UP_QUERY]


@pytest.mark.claim("probe.ready")
def test_a_stall_seen_while_the_exporter_is_down_names_the_exporter(prometheus, settings, serve):
    prometheus.progress = vector(12)
    prometheus.exporter_up = vector(0)
    failed = serve(settings()).get("/ready").json()["failed"]
    assert [(f["check"], f["reason"]) for f in failed] == [("progress", "exporter_down")]
    assert "kafka_exporter is not up" in failed[0]["detail"]


@pytest.mark.claim("probe.ready")
def test_the_worst_series_decides(prometheus, settings, serve):
    hot, short = CHECKLIST.skew_threshold + 1, CHECKLIST.min_consumers - 1
    prometheus.skew = vector(1.0, hot)
    prometheus.consumers = vector(CHECKLIST.min_consumers + 1, short)
    failed = serve(settings()).get("/ready").json()["failed"]
    assert {(f["check"], f["value"]) for f in failed} == {("skew", hot), ("consumer_count", short)}


@pytest.mark.claim("probe.ready")
def test_missing_series_is_no_data_never_healthy(prometheus, settings, serve):
    prometheus.skew = vector()
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    [failed] = response.json()["failed"]
    assert (failed["check"], failed["reason"]) == ("skew", "no_data")
    # The exporter was up (the fake's default): asked once, and the reason stays no_data.
    assert [q for q in prometheus.queries if "up{job=" in q] == [DEFAULT_EXPORTER_UP_QUERY]


@pytest.mark.claim("probe.ready")
@pytest.mark.parametrize(
    ("up", "found"), [(vector(0), "0"), (vector(), "no series")], ids=["down", "not-scraped"]
)
def test_no_series_with_the_exporter_down_names_the_exporter(
    prometheus, settings, serve, up, found
):
    prometheus.skew = vector()
    prometheus.consumers = vector()
    prometheus.exporter_up = up
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    failed = response.json()["failed"]
    assert {(f["check"], f["reason"]) for f in failed} == {
        ("skew", "exporter_down"),
        ("consumer_count", "exporter_down"),
    }
    assert all("kafka_exporter is not up" in f["detail"] and found in f["detail"] for f in failed)


@pytest.mark.claim("probe.ready")
def test_the_exporter_is_not_asked_about_while_there_is_data(prometheus, settings, serve):
    assert serve(settings()).get("/ready").status_code == 200
    assert [q for q in prometheus.queries if "up{job=" in q] == []


@pytest.mark.claim("probe.ready")
def test_a_failing_exporter_question_leaves_no_data(prometheus, settings, serve):
    prometheus.skew = vector()
    prometheus.exporter_up = Response("busy", status=503)
    failed = serve(settings()).get("/ready").json()["failed"]
    assert [(f["check"], f["reason"]) for f in failed] == [("skew", "no_data")]


# Prometheus' own spelling of the values its float64 can hold beyond numbers.
@pytest.mark.claim("probe.ready")
@pytest.mark.parametrize("check", ["skew", "consumer_count", "progress"])
@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
def test_nan_and_inf_are_never_healthy(prometheus, settings, serve, check, value):
    prometheus.skew = vector(value if check == "skew" else CHECKLIST.skew_threshold)
    prometheus.consumers = vector(value if check == "consumer_count" else CHECKLIST.min_consumers)
    prometheus.progress = vector(value if check == "progress" else 0)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500, f"{check} = {value} answered healthy"
    [failed] = response.json()["failed"]
    assert (failed["check"], failed["reason"]) == (check, "invalid_value")


# --- /health, /status, /metrics ---------------------------------------------------------------


@pytest.mark.claim("probe.health")
def test_health_is_200_whatever_prometheus_does(settings, serve):
    client = serve(settings(prom_url="http://127.0.0.1:1", prom_retries=1))
    assert client.get("/ready").status_code == 500
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.claim("probe.health")
def test_health_never_asks_prometheus(prometheus, settings, serve):
    client = serve(settings())
    assert client.get("/health").status_code == 200
    assert prometheus.queries == []


@pytest.mark.claim("probe.status")
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
    assert status["queries"]["skew"] == sustained_breach_queries("30s")[0]
    last = status["last_evaluation"]
    assert last["ready"] is True
    assert last["checks"]["consumer_count"]["value"] == 4
    assert last["evaluated_at"] and last["duration_ms"] >= 0


@pytest.mark.claim("probe.metrics")
def test_metrics_expose_the_six_probe_metrics(prometheus, settings, serve):
    client = serve(settings())
    client.get("/ready")
    prometheus.consumers = vector(CHECKLIST.min_consumers - 1)
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


# --- the queries --------------------------------------------------------------------------------


@pytest.mark.claim("window.spike")
@pytest.mark.claim("safety.settings")
def test_probe_sends_the_sustained_breach_queries_over_the_checklist_window(
    prometheus, serve, in_force
):
    serve(in_force).get("/ready")
    assert prometheus.queries == sustained_breach_queries(CHECKLIST.window)


@pytest.mark.claim("safety.settings")
def test_query_templates_and_window_are_settings(prometheus, settings, serve):
    probe_settings = settings(
        window_minutes=1 / 3,
        consumer_group="other.group",
        skew_query='max_over_time(kafka:group_skew_ratio{consumergroup="$group"}[$window])',
        consumers_query='min_over_time(kafka:group_consumer_count{consumergroup="$group"}[$window])',
        progress_query='max(kafka_consumergroup_current_offset{consumergroup="$group"}) * 0',
    )
    serve(probe_settings).get("/ready")
    assert prometheus.queries == [
        'max_over_time(kafka:group_skew_ratio{consumergroup="other.group"}[20s])',
        'min_over_time(kafka:group_consumer_count{consumergroup="other.group"}[20s])',
        'max(kafka_consumergroup_current_offset{consumergroup="other.group"}) * 0',
    ]


@pytest.mark.claim("safety.prometheus_outage")
def test_a_bad_query_answer_from_prometheus_is_unavailable_not_ready(prometheus, settings, serve):
    prometheus.skew = Response('{"status":"error","errorType":"bad_data"}', status=400)
    response = serve(settings()).get("/ready")
    assert response.status_code == 500
    failed = response.json()["failed"]
    assert {f["reason"] for f in failed} == {"prometheus_unavailable"}
    assert any("HTTP 400" in f["detail"] for f in failed), failed  # the answer it was given

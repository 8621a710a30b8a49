"""A Prometheus that refuses, errors, hangs or answers garbage: retried, bounded, never healthy."""

from __future__ import annotations

import json
import time

import pytest
from werkzeug import Response

from tests.conftest import vector


def metric(client, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{line_start} not in /metrics")


def unavailable_reasons(response) -> set[str]:
    return {failed["reason"] for failed in response.json()["failed"]}


@pytest.mark.claim("safety.prometheus_outage")
def test_refused_connection_is_retried_then_prometheus_unavailable(settings, serve):
    client = serve(settings(prom_url="http://127.0.0.1:1", prom_retries=3))
    response = client.get("/ready")
    assert response.status_code == 500
    assert unavailable_reasons(response) == {"prometheus_unavailable"}
    assert metric(client, 'health_probe_prometheus_errors_total{kind="connection"}') == 3
    assert metric(client, "health_probe_prometheus_retries_total") == 2


@pytest.mark.claim("safety.prometheus_outage")
def test_with_a_replica_down_each_query_is_answered_by_the_next_url(prometheus, settings, serve):
    # The first replica refuses (nothing listens on port 1): every query's first attempt fails,
    # its second goes to the replica that answers.
    client = serve(settings(prom_url=f"http://127.0.0.1:1, {prometheus.url}", prom_retries=2))
    assert client.get("/ready").status_code == 200
    asked = len(prometheus.queries)
    assert asked == 3, prometheus.queries
    assert metric(client, 'health_probe_prometheus_errors_total{kind="connection"}') == asked
    assert metric(client, "health_probe_prometheus_retries_total") == asked


@pytest.mark.claim("safety.prometheus_outage")
def test_the_first_url_answers_while_it_can(prometheus, settings, serve):
    client = serve(settings(prom_url=f"{prometheus.url},http://127.0.0.1:1", prom_retries=2))
    assert client.get("/ready").status_code == 200
    assert metric(client, 'health_probe_prometheus_errors_total{kind="connection"}') == 0
    assert metric(client, "health_probe_prometheus_retries_total") == 0


@pytest.mark.claim("safety.prometheus_outage")
@pytest.mark.parametrize(
    ("garbage", "kind"),
    [
        (Response("<html>proxy error</html>", status=200), "bad_response"),
        (Response(json.dumps({"status": "success"}), status=200), "bad_response"),
        (
            Response(
                json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})
            ),
            "bad_response",
        ),
        (Response(json.dumps(vector(1.0)).replace('"1.0"', '"one"')), "bad_response"),
        (Response("upstream unavailable", status=503), "http_status"),
    ],
    ids=["html", "no-data", "matrix", "non-number", "http-503"],
)
def test_garbage_answers_are_retried_then_prometheus_unavailable(
    prometheus, settings, serve, garbage, kind
):
    prometheus.skew = garbage
    client = serve(settings())
    response = client.get("/ready")
    assert response.status_code == 500
    assert unavailable_reasons(response) == {"prometheus_unavailable"}
    assert len(prometheus.queries) == 2  # both attempts went to the skew query
    assert metric(client, "health_probe_prometheus_retries_total") == 1
    # The probe read the answer it was given: an error of the fake itself would be http_status.
    assert metric(client, f'health_probe_prometheus_errors_total{{kind="{kind}"}}') == 2


@pytest.mark.claim("safety.prometheus_outage")
def test_one_failed_attempt_then_a_good_answer_is_ready(prometheus, settings, serve):
    answers = iter([Response("busy", status=503)])

    def flaky(request):
        return next(answers, Response(json.dumps(vector(1.0)), content_type="application/json"))

    prometheus.skew = flaky
    client = serve(settings())
    assert client.get("/ready").status_code == 200
    assert metric(client, 'health_probe_prometheus_errors_total{kind="http_status"}') == 1
    assert metric(client, "health_probe_prometheus_retries_total") == 1


def hang(seconds: float):
    def handler(request):
        time.sleep(seconds)
        return Response(json.dumps(vector(1.0)), content_type="application/json")

    return handler


def trickle(pause: float):
    def handler(request):
        def body():
            for character in json.dumps(vector(1.0)):
                time.sleep(pause)
                yield character

        return Response(body(), content_type="application/json")

    return handler


@pytest.mark.claim("safety.prometheus_slow")
@pytest.mark.parametrize("slow", [hang(5.0), trickle(0.05)], ids=["hanging", "trickling"])
def test_ready_never_takes_longer_than_timeout_times_attempts_plus_backoff(
    prometheus, settings, serve, slow
):
    prometheus.skew = slow
    probe_settings = settings(prom_timeout_ms=300, prom_retries=2, prom_backoff_ms=100)
    client = serve(probe_settings)
    started = time.monotonic()
    response = client.get("/ready")
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    assert unavailable_reasons(response) == {"prometheus_unavailable"}
    bound = 0.3 * 2 + 0.1 + 0.25
    assert elapsed < bound, f"/ready took {elapsed:.2f}s, bound {bound:.2f}s"
    assert metric(client, 'health_probe_prometheus_errors_total{kind="timeout"}') >= 1


@pytest.mark.claim("probe.metrics")
@pytest.mark.claim("safety.prometheus_outage")
def test_last_success_time_moves_only_when_prometheus_answers(prometheus, settings, serve):
    client = serve(settings())
    client.get("/ready")
    answered_at = metric(client, "health_probe_last_success_timestamp_seconds")
    assert answered_at == pytest.approx(time.time(), abs=5)
    prometheus.skew = Response("down", status=502)
    client.get("/ready")
    assert metric(client, "health_probe_last_success_timestamp_seconds") == answered_at

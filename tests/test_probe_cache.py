"""Many callers, one evaluation: the query rate Prometheus sees is bounded by the cache TTL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.contract import CHECKLIST
from tests.conftest import vector
from tests.test_probe_prometheus_failures import hang

# What /ready answers while a cached evaluation stands.
pytestmark = [pytest.mark.claim("probe.ready")]

# One evaluation asks one skew, one consumer-count and one progress query.
PER_EVALUATION = 3


def test_concurrent_callers_share_one_evaluation(prometheus, settings, serve):
    prometheus.skew = hang(0.3)  # keep the evaluation in flight while the others arrive
    client = serve(settings(cache_ttl_seconds=30))
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(lambda _: client.get("/ready").status_code, range(48)))
    assert codes == [200] * 48
    assert len(prometheus.queries) == PER_EVALUATION  # one evaluation


def test_cached_answer_is_served_until_the_ttl_expires(prometheus, settings, serve):
    client = serve(settings(cache_ttl_seconds=0.5))
    assert client.get("/ready").status_code == 200
    prometheus.consumers = vector(CHECKLIST.min_consumers - 1)
    assert client.get("/ready").status_code == 200, "within the TTL the cached answer stands"
    assert len(prometheus.queries) == PER_EVALUATION
    time.sleep(0.6)  # the TTL itself is what is under test here
    assert client.get("/ready").status_code == 500
    assert len(prometheus.queries) == 2 * PER_EVALUATION


def test_ttl_zero_evaluates_every_sequential_call(prometheus, settings, serve):
    client = serve(settings(cache_ttl_seconds=0))
    for _ in range(3):
        client.get("/ready")
    assert len(prometheus.queries) == 3 * PER_EVALUATION


@pytest.mark.claim("safety.prometheus_slow")
def test_failed_evaluations_are_cached_too(settings, serve, prometheus):
    prometheus.skew = hang(5.0)
    client = serve(settings(cache_ttl_seconds=30, prom_timeout_ms=200, prom_retries=1))
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda _: client.get("/ready").status_code, range(16)))
    assert codes == [500] * 16
    assert len(prometheus.queries) == 1, "a struggling Prometheus is not hammered by the callers"

"""Prometheus down, and Prometheus slow: the probe fails closed, within its time bound."""

from __future__ import annotations

import time

import pytest

from harness.clients import ProbeClient
from harness.contract import CHECKLIST
from harness.stack import PROMETHEUS_PROXY_PORT
from harness.steady import wait_for_steady_state
from harness.timeline import Episode
from harness.waits import wait_until

# What the checklist requires of the probe: one evaluation takes at most timeout x attempts
# plus the backoff between attempts.
TIMEOUT_S = CHECKLIST.prom_timeout_ms / 1000
ATTEMPTS = CHECKLIST.prom_retries
BACKOFF_S = CHECKLIST.prom_backoff_ms / 1000 * (ATTEMPTS - 1)
# Beyond that: the probe's own margin, the HTTP round trip and, for the stack's probe, the
# access proxy.
MARGIN_S = 0.75
BOUND_S = TIMEOUT_S * ATTEMPTS + BACKOFF_S + MARGIN_S
# Latency between the drill probe and Prometheus: longer than one attempt may last.
LATENCY_MS = CHECKLIST.prom_timeout_ms + 500

pytestmark = [pytest.mark.destructive]


def counter(probe: ProbeClient, name: str) -> float:
    return sum(value for key, value in probe.metrics().items() if key.startswith(name))


@pytest.mark.claim("safety.prometheus_outage")
def test_prometheus_outage_fails_closed_and_recovers(stack, probe, prometheus, evidence):
    wait_for_steady_state(stack, probe, prometheus)
    retries_before = counter(probe, "health_probe_prometheus_retries_total")
    cache_ttl = stack.seconds(stack.contract.probe_cache_ttl_s)
    # Five fresh evaluations during the outage, one cache TTL apart.
    episode = Episode("Prometheus outage", stack, probe, floor_s=5 * cache_ttl)
    with stack.fault("prometheus-down"):
        down = time.monotonic()
        episode.mark("Prometheus stopped")
        answer = wait_until(
            "/ready 500 prometheus_unavailable",
            lambda: (
                (a := probe.ready())
                and not a.ready
                and a.failed_reasons == {"prometheus_unavailable"}
                and a
            ),
            timeout=60,
        )
        unavailable_after = time.monotonic() - down
        evidence.record(
            "500 prometheus_unavailable after the outage began",
            round(unavailable_after, 1),
            "s",
        )
        # At most one cached answer, then one evaluation that fails within its bound.
        assert unavailable_after <= cache_ttl + BOUND_S + 1, f"{unavailable_after:.1f}s"
        # Fresh evaluations (the cache is one scrape long): each must answer within the bound.
        slowest = 0.0
        for _ in range(5):
            episode.watch_for(cache_ttl)  # one cache TTL: each answer is fresh
            fresh = probe.ready()
            assert fresh.failed_reasons == {"prometheus_unavailable"}, fresh.body
            slowest = max(slowest, fresh.elapsed_s)
        evidence.record(
            "slowest /ready during the outage", round(slowest, 2), "s", f"bound {BOUND_S:.2f}s"
        )
        assert answer.status_code == 500
        assert slowest <= BOUND_S
        assert evidence.record("/health during the outage", probe.health()) == 200
        retries = counter(probe, "health_probe_prometheus_retries_total") - retries_before
        assert evidence.record("retries counted during the outage", retries) > 0
        restoring = time.monotonic()
        episode.mark("Prometheus starting")
    back = time.monotonic()
    episode.mark("Prometheus answers again")
    episode.watch_until("/ready 200 after Prometheus is back", lambda m: m.ready, timeout=60)
    recovered = time.monotonic() - back
    evidence.record("Prometheus start to ready", round(back - restoring, 1), "s")
    evidence.record(
        "ready after Prometheus answered again",
        round(recovered, 1),
        "s",
        f"scrape + evaluation + cache TTL = {3 * stack.scrape_s:g}s",
    )
    # One scrape for fresh samples, one rule evaluation, one cache TTL, one evaluation budget.
    assert recovered <= 3 * stack.scrape_s + TIMEOUT_S * ATTEMPTS + 1


@pytest.mark.claim("safety.prometheus_slow")
@pytest.mark.containers_only
def test_slow_prometheus_is_bounded_by_timeout_times_attempts(
    containers, probe, prometheus, evidence
):
    wait_for_steady_state(containers, probe, prometheus)
    # Three evaluations, each timing out on every attempt.
    episode = Episode(
        "Prometheus slower than the probe's timeout", containers, probe, floor_s=3 * BOUND_S
    )
    slow_probe = containers.start_probe(
        "slow-path-probe",
        PROM_URL=f"http://toxiproxy:{PROMETHEUS_PROXY_PORT}",
        CACHE_TTL_SECONDS="0",
    )
    try:
        wait_until(
            "the drill probe ready through the proxy", lambda: slow_probe.ready().ready, timeout=60
        )
        timeouts_before = counter(
            slow_probe, 'health_probe_prometheus_errors_total{kind="timeout"}'
        )
        episode.probe = slow_probe  # the timeline follows the probe behind the slow path
        episode.watch_for(1)
        with containers.fault("prometheus-slow", latency_ms=LATENCY_MS):
            episode.mark(f"{LATENCY_MS} ms latency added")
            answers = [slow_probe.ready() for _ in range(3)]
            episode.observe()
        episode.mark("latency removed")
        timeouts = (
            counter(slow_probe, 'health_probe_prometheus_errors_total{kind="timeout"}')
            - timeouts_before
        )
        slowest = max(a.elapsed_s for a in answers)
        evidence.record(
            "latency added between probe and Prometheus",
            LATENCY_MS,
            "ms",
            f"timeout {CHECKLIST.prom_timeout_ms} ms",
        )
        evidence.record("slowest /ready", round(slowest, 2), "s", f"bound {BOUND_S:.2f}s")
        evidence.record("timeouts counted", timeouts)
        assert all(a.failed_reasons == {"prometheus_unavailable"} for a in answers), answers
        assert slowest <= BOUND_S
        assert timeouts >= len(answers)
        episode.watch_until(
            "the drill probe ready again without latency", lambda m: m.ready, timeout=30
        )
    finally:
        containers.remove("slow-path-probe")

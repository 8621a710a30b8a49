"""Window semantics: the default queries against the original checklist's literal ones.

A second probe runs the checklist's queries (max_over_time of skew, min_over_time of consumers)
beside the stack's probe. Both watch the same short skew spike and the same consumer loss. The
defaults must not flip on a spike shorter than the window and must recover promptly; what the
literal queries do is recorded (docs/design.md, "The readiness contract", predicts: they flip on
the spike at once and stay unready for a window after the consumers are back).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.clients import EventProducer, ProbeClient
from harness.contract import CHECKLIST
from harness.steady import wait_for_steady_state
from harness.timeline import Episode, Moment
from probe.settings import SEED_CONSUMERS_QUERY, SEED_SKEW_QUERY

SPIKE_EVENTS = 60  # a backlog that drains well within one window
THRESHOLD = CHECKLIST.skew_threshold
SEED_QUERIES = {"SKEW_QUERY": SEED_SKEW_QUERY, "CONSUMERS_QUERY": SEED_CONSUMERS_QUERY}

pytestmark = [pytest.mark.containers_only, pytest.mark.destructive]


@dataclass
class Comparison:
    spike: Episode
    spike_start: float
    spike_end: float
    loss: Episode
    members_dropped: float
    group_whole: float


def both(stack, seed: ProbeClient, prometheus):
    """Per moment: the seed-query probe's answer and the skew Prometheus holds."""
    group = stack.contract.group

    def extra() -> dict[str, object]:
        answer = seed.ready()
        skew = prometheus.value(f'max(kafka:group_skew_ratio{{consumergroup="{group}"}})')
        return {
            "seed_status": answer.status_code,
            "seed_failed": answer.failed_messages,
            "seed_reasons": sorted(answer.failed_reasons),
            "skew": skew,
        }

    return extra


@pytest.fixture(scope="module")
def comparison(containers, probe, prometheus) -> Comparison:
    stack = containers
    seed = stack.start_probe("seed-queries-probe", **SEED_QUERIES)
    try:
        wait_for_steady_state(stack, probe, prometheus)
        # A spike: a small hot-key backlog that drains in well under one window.
        drain_s = stack.window_s / 3
        # The spike's drain, then one window after it.
        spike = Episode(
            "short skew spike",
            stack,
            probe,
            extra=both(stack, seed, prometheus),
            floor_s=drain_s + stack.window_s,
        )
        with stack.fault("consumers-slow", delay_ms=max(20, round(drain_s / SPIKE_EVENTS * 1000))):
            EventProducer(stack.endpoints.kafka_bootstrap, stack.contract.topic).produce(
                SPIKE_EVENTS, key=CHECKLIST.hot_key, prefix="spike"
            )
            spike.mark("spike produced")
            began = spike.watch_until(
                f"skew above {THRESHOLD:g} in Prometheus",
                lambda m: (m.extra.get("skew") or 0) > THRESHOLD,
                timeout=60,
            )
            ended = spike.watch_until(
                f"skew back to {THRESHOLD:g} or less",
                lambda m: m.extra.get("skew") is not None and m.extra["skew"] <= THRESHOLD,
                timeout=stack.window_s + 60,
            )
        # Watch one more window: a flip can only come from samples inside it.
        spike.watch_until(
            "one window after the spike",
            lambda m: m.t >= ended.t + stack.window_s + 3 * stack.scrape_s,
            timeout=stack.window_s + 60,
        )
        spike_start, spike_end = began.t, ended.t

        wait_for_steady_state(stack, probe, prometheus)
        # A window until the flip, a window until the literal queries recover.
        loss = Episode(
            "consumer loss",
            stack,
            probe,
            extra=both(stack, seed, prometheus),
            floor_s=2 * stack.window_s,
        )
        count = stack.contract.consumer_count
        with stack.fault("one-consumer-down"):
            dropped = loss.watch_until(
                f"{count - 1} members", lambda m: m.members == count - 1, timeout=60
            )
            loss.watch_until(
                "the default probe to flip",
                lambda m: m.known and not m.ready,
                timeout=stack.window_s + 20 * stack.scrape_s + 30,
            )
        whole = loss.watch_until(
            f"{count} members again", lambda m: m.members == count, timeout=120
        )
        loss.watch_until(
            "both probes ready again",
            lambda m: m.ready and m.extra.get("seed_status") == 200,
            timeout=2 * stack.window_s + 60,
        )
        return Comparison(spike, spike_start, spike_end, loss, dropped.t, whole.t)
    finally:
        stack.remove("seed-queries-probe")


# What a flip of the seed-query probe is: a 500 for the group's state, never an error of the
# moment (a timed-out answer or Prometheus unavailable is no verdict on the window).
GROUP_REASONS = {"threshold_exceeded", "below_minimum"}


def seed_unready(moment: Moment) -> bool:
    reasons = set(moment.extra.get("seed_reasons") or ())
    return moment.extra.get("seed_status") == 500 and bool(reasons & GROUP_REASONS)


def first_unready(moments: list[Moment], seed: bool) -> Moment | None:
    key = seed_unready if seed else (lambda m: not m.ready)
    return next((m for m in moments if key(m)), None)


@pytest.mark.claim("window.spike")
def test_default_queries_never_flip_on_a_spike_shorter_than_the_window(stack, comparison, evidence):
    spike = comparison.spike
    evidence.record(
        "spike duration",
        round(comparison.spike_end - comparison.spike_start, 1),
        "s",
        f"window {stack.clock.label(CHECKLIST.window)}",
    )
    assert comparison.spike_end - comparison.spike_start < stack.window_s, "not a short spike"
    # From the spike's start to one window after its end: every answer ready, none missing.
    seen = spike.assert_ready_throughout(comparison.spike_start, spike.moments[-1].t)
    evidence.record("observations during and one window after the spike", len(seen))


@pytest.mark.claim("window.recovery")
def test_default_queries_recover_promptly_after_the_consumer_is_back(stack, comparison, evidence):
    loss = comparison.loss
    ready = loss.first(lambda m: m.ready, after=comparison.group_whole)
    assert ready is not None
    recovered = ready.t - comparison.group_whole
    evidence.record("default probe ready after the group was whole", round(recovered, 1), "s")
    assert 0 <= recovered <= 5 * stack.scrape_s + 0.5


@pytest.mark.claim("window.seed_queries")
def test_the_checklists_literal_queries_flap_on_the_spike_and_recover_a_window_late(
    stack, comparison, evidence
):
    spike_flip = first_unready(comparison.spike.moments, seed=True)
    loss = comparison.loss
    seed_ready = loss.first(
        lambda m: m.extra.get("seed_status") == 200, after=comparison.group_whole
    )
    seed_flip = next(
        (m for m in loss.moments if m.t >= comparison.members_dropped and seed_unready(m)),
        None,
    )
    evidence.record(
        "seed queries: 500 after the spike began",
        round(spike_flip.t - comparison.spike_start, 1) if spike_flip else None,
        "s",
    )
    evidence.record(
        "seed queries: 500 after the consumer loss",
        round(seed_flip.t - comparison.members_dropped, 1) if seed_flip else None,
        "s",
    )
    evidence.record(
        "seed queries: ready after the group was whole",
        round(seed_ready.t - comparison.group_whole, 1) if seed_ready else None,
        "s",
        f"window {stack.clock.label(CHECKLIST.window)}",
    )
    assert spike_flip is not None, "max_over_time of skew did not flip on the spike"
    assert (
        seed_ready is not None
        and seed_ready.t - comparison.group_whole >= stack.window_s - 3 * stack.scrape_s
    )

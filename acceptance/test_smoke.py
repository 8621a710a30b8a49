"""The original checklist's 90-second smoke test, executed: baseline, one consumer down, recovery.

One episode (the module fixture) stops one consumer, watches the probe until it flips, starts the
consumer again and watches until the probe is ready; the tests then check what was observed.
All times are on the stack's time scale (window = 5 m x scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.steady import wait_for_steady_state
from harness.timeline import Episode, Moment

CONSUMER_COUNT_FAILED = "consumer_count check failed"
SKEW_FAILED = "skew check failed"


@dataclass
class ConsumerDown:
    episode: Episode
    baseline: Moment
    members_dropped: float  # episode time kafka_exporter first reported 1 member
    flipped: Moment
    group_whole: float  # episode time kafka_exporter reported 2 members again
    ready_again: Moment


def recovery_bound_s(stack) -> float:
    """Two scrape intervals, plus the exporter's refresh, one rule evaluation and the probe's
    cache TTL (each one scrape interval on this stack), plus one polling step."""
    return 2 * stack.scrape_s + 3 * stack.scrape_s + 0.5


@pytest.fixture(scope="module")
def consumer_down(stack, probe, prometheus) -> ConsumerDown:
    wait_for_steady_state(stack, probe, prometheus)
    # The loss must hold a window before /ready may flip; the return needs a scrape and an
    # evaluation.
    floor = stack.window_s + 2 * stack.scrape_s
    episode = Episode("smoke test: one consumer down", stack, probe, floor_s=floor)
    baseline = episode.observe()
    window = stack.window_s
    whole = stack.contract.consumer_count
    with stack.fault("one-consumer-down"):
        episode.mark("consumer stopped")
        dropped = episode.watch_until(
            f"kafka_exporter to report {whole - 1} members",
            lambda m: m.members == whole - 1,
            timeout=60,
        )
        flipped = episode.watch_until(
            "/ready to turn 500 once the loss has held for the window",
            lambda m: not m.ready,
            timeout=window + 20 * stack.scrape_s + 30,
        )
        episode.mark("consumer restarting")
    episode.mark("consumer started")
    back = episode.watch_until(
        f"kafka_exporter to report {whole} members again", lambda m: m.members == whole, timeout=120
    )
    ready = episode.watch_until(
        "/ready to answer 200 again", lambda m: m.ready, timeout=recovery_bound_s(stack) + 60
    )
    return ConsumerDown(episode, baseline, dropped.t, flipped, back.t, ready)


@pytest.mark.claim("smoke.baseline")
@pytest.mark.destructive
def test_baseline_ready_is_200(consumer_down, evidence):
    evidence.record("baseline status", consumer_down.baseline.status_code)
    assert consumer_down.baseline.ready, consumer_down.baseline


@pytest.mark.claim("smoke.consumer_down")
@pytest.mark.claim("probe.ready")
@pytest.mark.destructive
def test_consumer_down_turns_500_only_after_the_window(stack, consumer_down, evidence):
    run = consumer_down
    flip_after_s = run.flipped.t - run.members_dropped
    evidence.record(
        "flip after the loss", round(flip_after_s, 1), "s", f"window {stack.window_s:g}s (5m)"
    )
    # The last whole-group sample may predate the exporter's report by one scrape, one
    # evaluation and one exporter refresh: the earliest legitimate flip is that much before a
    # full window. Until then every observation is a ready answer, and there are enough of them.
    earliest = run.members_dropped + stack.window_s - 3 * stack.scrape_s
    seen = run.episode.assert_ready_throughout(run.members_dropped, earliest)
    evidence.record("observations before the earliest legitimate flip", len(seen))
    assert CONSUMER_COUNT_FAILED in run.flipped.failed, run.flipped
    assert SKEW_FAILED not in run.flipped.failed, run.flipped
    latest = stack.window_s + 5 * stack.scrape_s + 1
    assert flip_after_s <= latest, (
        f"flipped {flip_after_s:.1f}s after the loss, bound {latest:.1f}s"
    )


@pytest.mark.claim("smoke.recovery")
@pytest.mark.claim("window.recovery")
@pytest.mark.destructive
def test_recovery_is_ready_within_two_scrapes_of_the_group_being_whole(
    stack, consumer_down, evidence
):
    run = consumer_down
    recovered_after_s = run.ready_again.t - run.group_whole
    since_start_s = run.ready_again.t - run.episode.marks["consumer started"]
    evidence.record(
        "ready after the group was whole",
        round(recovered_after_s, 1),
        "s",
        f"scrape {stack.scrape_s:g}s (15s)",
    )
    evidence.record("ready after the consumer was started", round(since_start_s, 1), "s")
    bound = recovery_bound_s(stack)
    assert recovered_after_s <= bound, (
        f"ready {recovered_after_s:.1f}s after the group was whole, bound {bound:.1f}s"
    )

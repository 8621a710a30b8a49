"""Prometheus restarted with an empty TSDB (rescheduled without its volume).

What the probe does, by design (docs/design.md, section 4): while Prometheus is away it answers
500 `prometheus_unavailable`; until the exporter has been scraped twice it answers 500 with no
data (the progress check needs two samples of the committed offsets); then it judges the samples
it has. Every check fails only on a breach that held over all the samples in its window, so a
shorter history can only make it stricter: it never says ready where the full window would not.

Two episodes: a healthy group (how long until /ready is trustworthy again), and a group already
below its minimum of consumers when the history is lost (never 200 on the shorter history).
"""

from __future__ import annotations

import pytest

from harness.steady import wait_for_steady_state
from harness.timeline import Episode

# The harness notices Prometheus' /-/ready within its poll interval (0.25 s).
READY_POLL_S = 0.5
# A starting Prometheus creates its scrape pools at the first tick of its discovery reload
# interval (the hidden flag --scrape.discovery-reload-interval, 5 s unless set, and never
# scaled): no target is scraped before it.
DISCOVERY_RELOAD_S = 5.0

# Replacing Prometheus is the harness's own doing: a deployment's TSDB is its history.
pytestmark = [pytest.mark.containers_only, pytest.mark.destructive]


def first_judgement_s(stack) -> float:
    """The latest a new Prometheus' first judgement of the group may reach /ready: the scrape
    pools at the first discovery reload, a first scrape of the exporter within one interval of
    it, then the second scrape's way to an answer (the progress check needs both)."""
    return DISCOVERY_RELOAD_S + stack.scrape_s + stack.answer_lag_s + READY_POLL_S


@pytest.mark.claim("day_two.empty_tsdb")
def test_a_healthy_group_is_ready_again_a_reload_and_two_scrapes_after_an_empty_prometheus(
    containers, probe, prometheus, evidence
):
    stack = containers
    wait_for_steady_state(stack, probe, prometheus)
    episode = Episode(
        "Prometheus with an empty TSDB",
        stack,
        probe,
        floor_s=DISCOVERY_RELOAD_S + 2 * stack.scrape_s,
    )
    with stack.fault("prometheus-empty-tsdb"):
        stopped = episode.mark("Prometheus stopped")
        episode.watch_until(
            "/ready 500 while Prometheus is away", lambda m: m.known and not m.ready, timeout=30
        )
        away = probe.ready()
        episode.mark("Prometheus replaced")
    answering = episode.mark("the new Prometheus answers")
    ready = episode.watch_until("/ready 200 on the new history", lambda m: m.ready, timeout=60)
    answers = probe.ready()
    evidence.record("reasons while Prometheus was away", sorted(away.failed_reasons))
    failed_after = sorted(
        {message for m in episode.between(answering, ready.t) for message in m.failed}
    )
    evidence.record("failed checks on the empty history", failed_after)
    evidence.record(
        "/ready 200 after the new Prometheus answered", round(ready.t - answering, 1), "s"
    )
    evidence.record("Prometheus away", round(answering - stopped, 1), "s")

    assert away.failed_reasons == {"prometheus_unavailable"}, away.body
    assert answers.ready, answers.body
    ready_after = ready.t - answering
    assert ready_after >= DISCOVERY_RELOAD_S - READY_POLL_S, f"ready {ready_after:.1f}s after"
    assert ready_after <= first_judgement_s(stack), f"ready only {ready_after:.1f}s after"
    wait_for_steady_state(stack, probe, prometheus)


@pytest.mark.claim("day_two.empty_tsdb")
def test_a_breach_that_began_before_the_restart_is_never_ready_on_the_shorter_history(
    containers, probe, prometheus, evidence
):
    stack = containers
    wait_for_steady_state(stack, probe, prometheus)
    window = stack.window_s
    episode = Episode(
        "a consumer down across an empty-TSDB restart", stack, probe, floor_s=2 * window
    )
    with stack.fault("one-consumer-down"):
        down = episode.mark("one consumer stopped")
        breached = episode.watch_until(
            "/ready 500 below the minimum",
            lambda m: m.known and not m.ready,
            timeout=2 * window + 30,
        )
        with stack.fault("prometheus-empty-tsdb"):
            episode.mark("Prometheus stopped")
        answering = episode.mark("the new Prometheus answers")
        # Only an answer seen a cache TTL after the new Prometheus answered was evaluated on it:
        # before that the probe may still serve its last evaluation on the old history, which
        # already said below_minimum (seen once, 0.7 s after the restart).
        judged = episode.watch_until(
            "the consumer-count check judged on the new history",
            lambda m: (
                m.t >= answering + stack.probe_ttl_s
                and "consumer_count check failed" in m.failed
                and "progress check failed" not in m.failed
            ),
            timeout=first_judgement_s(stack) + 10,
        )
        answer = probe.ready()
        episode.watch_for(max(0.0, answering + window - episode.now()))
        whole = episode.mark("a whole window of new history")
        episode.mark("consumer starting")
    restarted = episode.mark("consumer started")
    ready = episode.watch_until("/ready 200 again", lambda m: m.ready, timeout=2 * window + 60)

    after_restart = episode.between(answering, whole)
    # From the breach (a window after the stop: a shorter loss is tolerated by design) until the
    # consumer is back, across the restart, no answer may be 200.
    ready_moments = [m for m in episode.between(breached.t, restarted) if m.ready]
    evidence.record("/ready 500 after the consumer stopped", round(breached.t - down, 1), "s")
    evidence.record(
        "below_minimum judged after the new Prometheus answered",
        round(judged.t - answering, 1),
        "s",
    )
    evidence.record("reasons on the new history", sorted(answer.failed_reasons))
    evidence.record("200 answers from the breach until the consumer was back", len(ready_moments))
    evidence.record("/ready 200 after the consumer started", round(ready.t - restarted, 1), "s")

    assert answer.failed_reasons == {"below_minimum"}, answer.body
    assert judged.t - answering <= first_judgement_s(stack)
    assert ready_moments == [], f"ready with a consumer down: {ready_moments[:3]}"
    assert len(after_restart) >= episode.min_observations(whole - answering)
    assert all(m.known for m in after_restart), [m for m in after_restart if not m.known][:3]
    wait_for_steady_state(stack, probe, prometheus)

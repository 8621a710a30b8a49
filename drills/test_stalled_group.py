"""A stalled group: consumers stay members of the group but commit nothing while events wait.

Neither the skew (the backlog is even) nor the member count shows it. The probe's progress check
answers 500 `stalled` once events have waited a whole window uncommitted, CrmEventsConsumerStalled
fires after its for:, and CrmEventsServiceDown, which is about groups with no member, is never
even pending. After the resume every acknowledged event is consumed and all recovers.
"""

from __future__ import annotations

import uuid

import pytest

from harness.clients import EventProducer
from harness.contract import CHECKLIST
from harness.steady import wait_for_steady_state
from harness.timeline import Episode
from harness.waits import wait_until

STALLED = "CrmEventsConsumerStalled"
SERVICE_DOWN = CHECKLIST.inhibiting_alert
EVENTS_PER_PARTITION = 5  # an even backlog: the skew stays 1, only the stall is wrong
# A paused consumer resumes at its next poll (0.5 s) and commits each message as it goes.
RESUME_S = 1.0

pytestmark = [pytest.mark.destructive]


@pytest.mark.claim("day_two.stalled")
def test_members_that_commit_nothing_while_events_wait_are_stalled(
    stack, probe, prometheus, evidence
):
    wait_for_steady_state(stack, probe, prometheus)
    contract = stack.contract
    scrape = stack.scrape_s
    evaluation = stack.evaluation_s
    window = stack.window_s
    stalled_for = stack.alert_for_s(STALLED)
    lag_sum = f'sum(kafka:group_lag_sum{{consumergroup="{contract.group}"}})'

    def alerts() -> dict[str, object]:
        return {
            "stalled": prometheus.alert_state(STALLED),
            "service_down": prometheus.alert_state(SERVICE_DOWN),
            "lag_sum": prometheus.value(lag_sum),
        }

    def firing(moment) -> bool:
        return moment.extra.get("stalled") == "firing"

    # The steady state has just consumed the previous episode's events: the alert's rate of
    # commits is 0 only a whole range after their last commit, and its for: starts there.
    rate_range = stack.seconds(contract.alert_longest_range_s(STALLED))
    episode = Episode(
        "consumers stalled",
        stack,
        probe,
        extra=alerts,
        floor_s=max(window, rate_range + stalled_for),
    )
    producer = EventProducer(stack.endpoints.kafka_bootstrap, contract.topic)
    prefix = f"stalled-{uuid.uuid4().hex[:6]}"
    with stack.fault("consumers-paused"):
        paused = episode.mark("consumers paused")
        acked = [
            event
            for partition in range(contract.partitions)
            for event in producer.produce(EVENTS_PER_PARTITION, partition=partition, prefix=prefix)
        ]
        waiting = episode.mark(f"{len(acked)} events acknowledged, waiting")
        episode.watch_until(
            "/ready 500 once the events waited a whole window",
            lambda m: m.known and not m.ready,
            timeout=window + stalled_for + 30,
        )
        answer = probe.ready()
        episode.watch_until(f"{STALLED} firing", firing, timeout=2 * stalled_for + window + 30)
        resuming = episode.mark("consumers resuming")
    resumed = episode.mark("consumers resumed")
    wait_until(
        "every acknowledged event committed (the group's lag back to 0)",
        lambda: prometheus.value(lag_sum) == 0,
        timeout=60,
        describe=lambda: f"lag {prometheus.value(lag_sum)}",
    )
    consumed = episode.mark("every acknowledged event committed")
    ready = episode.watch_until("/ready 200 again", lambda m: m.ready, timeout=60)
    resolved = episode.watch_until(
        f"{STALLED} no longer firing", lambda m: m.extra.get("stalled") == "inactive", timeout=60
    )

    during = episode.between(paused, resuming)
    unready = episode.first(lambda m: m.known and not m.ready, after=paused)
    fired = episode.first(firing, after=paused)
    assert unready is not None and fired is not None
    unready_after = unready.t - waiting
    fired_after = fired.t - waiting
    service_down = sorted({str(m.extra.get("service_down")) for m in episode.moments})
    evidence.record("events acknowledged while paused", len(acked))
    evidence.record(
        "/ready 500 after the events were acknowledged",
        round(unready_after, 1),
        "s",
        f"window {stack.clock.label(CHECKLIST.window)}",
    )
    evidence.record("reasons", sorted(answer.failed_reasons))
    evidence.record(
        f"{STALLED} firing after the events were acknowledged",
        round(fired_after, 1),
        "s",
        f"for: {stack.clock.label(contract.alert(STALLED).for_s)}",
    )
    evidence.record(f"{SERVICE_DOWN} states seen", service_down)
    evidence.record("lag 0 after the resume", round(consumed - resumed, 1), "s")
    evidence.record("/ready 200 after the resume", round(ready.t - resumed, 1), "s")
    evidence.record(f"{STALLED} resolved after the resume", round(resolved.t - resumed, 1), "s")

    assert len(acked) == EVENTS_PER_PARTITION * contract.partitions
    # The first rule sample with the backlog is within a scrape and an evaluation of the
    # acknowledgement; the window must then pass it, and one cache TTL and one evaluation may
    # pass before an answer shows it.
    assert unready_after >= window - evaluation, f"500 after {unready_after:.1f}s"
    assert unready_after <= window + stack.answer_lag_s, f"500 only after {unready_after:.1f}s"
    assert answer.failed_reasons == {"stalled"}, answer.body
    assert [f["check"] for f in answer.body["failed"]] == ["progress"], answer.body
    # The alert's rate is 0 from the last commit before the pause (at the latest a range of 5m
    # later); it is pending from the first evaluation that sees the backlog.
    assert fired_after >= stalled_for - evaluation, f"fired after {fired_after:.1f}s"
    assert fired.t - paused <= (
        max(waiting - paused + scrape, rate_range) + stalled_for + scrape + 2 * evaluation + 1
    ), f"fired only {fired.t - paused:.1f}s after the pause"
    # Members all along: the no-consumer alert is never even pending.
    assert service_down == ["inactive"], f"{SERVICE_DOWN} was {service_down}"
    assert len(during) >= episode.min_observations(resuming - paused)
    assert all(m.members == contract.consumer_count for m in during if m.members is not None)
    assert ready.t - resumed <= RESUME_S + stack.answer_lag_s
    assert resolved.t - resumed <= RESUME_S + scrape + 2 * evaluation + 1

"""The original checklist's hot-key skew drill, as a test.

Steady state; slow the consumers and produce the checklist's events with its hot key (all on one
partition); observe per-partition lag, skew, the probe and the skew alert until the alert fires;
roll back (consumers at full speed), observe the backlog drain, the probe recover and the alert
resolve; steady state again. The episode is journalled from its start (harness/timeline.py).

Each moment reads the skew and the per-partition lag in one query instant, one evaluation
interval back (a rule evaluation at or before it is complete), so the two always belong
together; its `behind_s` says how far back that instant is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from harness.clients import EventProducer
from harness.contract import CHECKLIST
from harness.steady import wait_for_steady_state
from harness.timeline import Episode, Moment

SKEW_ALERT = CHECKLIST.skew_alert
THRESHOLD = CHECKLIST.skew_threshold
SKEW_FAILED = "skew check failed"


@dataclass
class SkewDrill:
    episode: Episode
    acknowledged: int
    skew_seen: Moment  # first moment Prometheus had skew above the threshold
    flipped: Moment
    alert_firing: Moment
    drained: Moment  # first moment after the rollback with skew back at or under the threshold
    ready_again: Moment
    alert_resolved: Moment

    def since(self, moment: Moment) -> float:
        """Episode time of the data a moment read (its query instant)."""
        return moment.t - float(moment.extra["behind_s"])  # type: ignore[arg-type]

    @property
    def skew_began(self) -> float:
        return self.since(self.skew_seen)


def skew_of(moment: Moment) -> float:
    return float(moment.extra.get("skew") or 0)  # type: ignore[arg-type]


def drill_observer(stack, prometheus):
    group, topic = stack.contract.group, stack.contract.topic
    behind_s = stack.seconds(stack.contract.evaluation_s)

    def extra() -> dict[str, object]:
        at = time.time() - behind_s
        lags = {
            item["metric"]["partition"]: float(item["value"][1])
            for item in prometheus.query(
                f'kafka:group_partition_lag{{consumergroup="{group}",topic="{topic}"}}', at
            )
        }
        skew = prometheus.value(f'max(kafka:group_skew_ratio{{consumergroup="{group}"}})', at)
        return {
            "skew": skew,
            "lag": lags,
            "behind_s": behind_s,
            "alert": prometheus.alert_state(SKEW_ALERT),
        }

    return extra


@pytest.fixture(scope="module")
def skew_drill(stack, probe, prometheus) -> SkewDrill:
    wait_for_steady_state(stack, probe, prometheus)
    # The alert must hold its for: from the first skewed sample (one scrape and one evaluation
    # after the events), and resolves one evaluation after the drain.
    episode = Episode(
        "hot-key skew drill",
        stack,
        probe,
        extra=drill_observer(stack, prometheus),
        floor_s=stack.alert_for_s(SKEW_ALERT) + 3 * stack.scrape_s,
    )
    events = CHECKLIST.hot_key_events
    # Slow enough that the hot partition's backlog outlives the alert's for: and the window.
    with stack.fault("consumers-slow", delay_ms=stack.hot_key_delay_ms(events)):
        acked = EventProducer(stack.endpoints.kafka_bootstrap, stack.contract.topic).produce(
            events, key=CHECKLIST.hot_key, prefix="hotkey"
        )
        episode.mark(f"{len(acked)} {CHECKLIST.hot_key} events acknowledged")
        skew_seen = episode.watch_until(
            f"skew above {THRESHOLD:g} in Prometheus", lambda m: skew_of(m) > THRESHOLD, timeout=60
        )
        flipped = episode.watch_until(
            "/ready to turn 500 once the skew has held for the window",
            lambda m: m.known and not m.ready,
            timeout=stack.window_s + 20 * stack.scrape_s + 30,
        )
        firing = episode.watch_until(
            f"{SKEW_ALERT} to fire",
            lambda m: m.extra.get("alert") == "firing",
            timeout=stack.alert_for_s(SKEW_ALERT) + 20 * stack.scrape_s + 30,
        )
        episode.mark("consumers back to full speed")
    drained = episode.watch_until(
        f"the skew back at or under {THRESHOLD:g}",
        lambda m: m.extra.get("skew") is not None and skew_of(m) <= THRESHOLD,
        timeout=120,
    )
    ready = episode.watch_until(
        "/ready to answer 200 after the backlog drained", lambda m: m.ready, timeout=120
    )
    resolved = episode.watch_until(
        f"{SKEW_ALERT} to resolve", lambda m: m.extra.get("alert") == "inactive", timeout=120
    )
    return SkewDrill(episode, len(acked), skew_seen, flipped, firing, drained, ready, resolved)


pytestmark = [pytest.mark.destructive]


@pytest.mark.claim("skew.hot_partition")
def test_per_partition_lag_shows_one_hot_partition(skew_drill, evidence):
    lags = skew_drill.skew_seen.extra["lag"]
    hot = {p: lag for p, lag in lags.items() if lag > 0}  # type: ignore[union-attr]
    evidence.record("events produced and acknowledged", skew_drill.acknowledged)
    evidence.record("lag per partition when the skew began", lags)
    evidence.record("lag per partition at the flip", skew_drill.flipped.extra.get("lag"))
    peak = max(
        (max(m.extra.get("lag", {}).values(), default=0) for m in skew_drill.episode.moments),
        default=0,
    )
    evidence.record(
        "highest lag of one partition",
        peak,
        "events",
        f"checklist: 'partition 2 > {CHECKLIST.hot_partition_lag_claimed} lag', which "
        f"{skew_drill.acknowledged} events cannot give (at most {skew_drill.acknowledged}, on "
        "whichever partition the key hashes to)",
    )
    assert skew_drill.acknowledged == CHECKLIST.hot_key_events
    assert len(hot) == 1, f"expected one partition with lag when the skew began, got {lags}"
    assert peak <= skew_drill.acknowledged


@pytest.mark.claim("skew.no_flap")
def test_probe_stays_ready_while_the_skew_is_younger_than_the_window(stack, skew_drill, evidence):
    start = skew_drill.skew_began
    until = start + stack.window_s - 3 * stack.scrape_s
    seen = skew_drill.episode.assert_ready_throughout(start, until)
    evidence.record("observations while the skew was younger than the window", len(seen))


@pytest.mark.claim("skew.flip")
def test_probe_turns_500_once_the_skew_held_for_the_window(stack, skew_drill, evidence):
    flip_after = skew_drill.flipped.t - skew_drill.skew_began
    evidence.record(
        "flip after the skew began",
        round(flip_after, 1),
        "s",
        f"window {stack.clock.label(CHECKLIST.window)}",
    )
    assert SKEW_FAILED in skew_drill.flipped.failed, skew_drill.flipped
    earliest = stack.seconds(CHECKLIST.window) - 3 * stack.scrape_s
    latest = stack.seconds(CHECKLIST.window) + 5 * stack.scrape_s + 1
    assert earliest <= flip_after <= latest, f"flip {flip_after:.1f}s, [{earliest}, {latest}]"


@pytest.mark.claim("skew.alert")
def test_skew_alert_fires_after_its_for_and_not_before(stack, skew_drill, evidence):
    fired_after = skew_drill.alert_firing.t - skew_drill.skew_began
    for_s = stack.seconds(CHECKLIST.skew_alert_for)
    evidence.record(
        f"{SKEW_ALERT} firing after the skew began",
        round(fired_after, 1),
        "s",
        f"for: {stack.clock.label(CHECKLIST.skew_alert_for)}",
    )
    earliest, latest = for_s - 2 * stack.scrape_s, for_s + 5 * stack.scrape_s + 1
    early = skew_drill.episode.first(lambda m: m.extra.get("alert") == "firing")
    assert early is not None and early.t - skew_drill.skew_began >= earliest
    assert fired_after <= latest, f"fired {fired_after:.1f}s after, bound {latest:.1f}s"


@pytest.mark.claim("skew.recovery")
def test_probe_recovers_and_the_alert_resolves_after_the_drain(
    stack, probe, prometheus, skew_drill, evidence
):
    drill = skew_drill
    drained = drill.since(drill.drained)
    rollback = drill.episode.marks["consumers back to full speed"]
    first_ready = drill.episode.first(lambda m: m.ready, after=rollback)
    assert first_ready is not None
    ready_after = first_ready.t - drained
    resolved_after = drill.alert_resolved.t - drained
    evidence.record(
        "skew back under the threshold after the rollback", round(drained - rollback, 1)
    )
    evidence.record("ready after the drain", round(ready_after, 1), "s")
    evidence.record("alert resolved after the drain", round(resolved_after, 1), "s")
    # Ready needs one sample under the threshold in the window: one scrape, one evaluation and
    # one cache TTL after the drain, and not before it (one scrape of slack for the instant).
    ready_bound = 3 * stack.scrape_s + 1
    assert -stack.scrape_s <= ready_after <= ready_bound, f"ready {ready_after:.1f}s after drain"
    # The alert resolves at its next evaluation after the drain, and not before it.
    resolve_bound = 3 * stack.scrape_s + 1
    assert -stack.scrape_s <= resolved_after <= resolve_bound, (
        f"resolved {resolved_after:.1f}s after the drain, bound {resolve_bound:.1f}s"
    )
    wait_for_steady_state(stack, probe, prometheus)

"""The original checklist's hot-key skew drill, as a test.

Steady state; slow the consumers and produce 300 events with the key TESTKEY (all on one
partition); observe per-partition lag, skew, the probe and CrmEventsHotKeySkewHigh until the alert
fires; roll back (consumers at full speed), observe the backlog drain, the probe recover and the
alert resolve; steady state again. The timeline is kept for the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.clients import EventProducer
from harness.stack import GROUP, TOPIC
from harness.steady import wait_for_steady_state
from harness.timeline import Episode, Moment

HOT_KEY = "TESTKEY"
HOT_EVENTS = 300
SKEW_ALERT = "CrmEventsHotKeySkewHigh"
SKEW_FOR_S = 12 * 60
SKEW_FAILED = "skew check failed"


@dataclass
class SkewDrill:
    episode: Episode
    skew_seen: Moment  # first moment Prometheus had skew > 4
    flipped: Moment
    alert_firing: Moment
    ready_again: Moment
    alert_resolved: Moment
    hot_partitions: list[str]


def drill_observer(prometheus):
    def extra() -> dict[str, object]:
        lags = {
            item["metric"]["partition"]: float(item["value"][1])
            for item in prometheus.query(
                f'kafka:group_partition_lag{{consumergroup="{GROUP}",topic="{TOPIC}"}}'
            )
        }
        skew = prometheus.value(f'max(kafka:group_skew_ratio{{consumergroup="{GROUP}"}})')
        return {"skew": skew, "lag": lags, "alert": prometheus.alert_state(SKEW_ALERT)}

    return extra


@pytest.fixture(scope="module")
def skew_drill(stack, probe, prometheus) -> SkewDrill:
    wait_for_steady_state(stack, probe, prometheus)
    episode = Episode(stack, probe, extra=drill_observer(prometheus))
    # Slow enough that the hot partition's backlog outlives the alert's for: and the window.
    with stack.fault("consumers-slow", delay_ms=stack.hot_key_delay_ms(HOT_EVENTS)):
        EventProducer(stack.endpoints.kafka_bootstrap, TOPIC).produce(
            HOT_EVENTS, key=HOT_KEY, prefix="hotkey"
        )
        episode.mark("300 TESTKEY events produced")
        skew_seen = episode.watch_until(
            "skew above 4 in Prometheus", lambda m: (m.extra["skew"] or 0) > 4, timeout=60
        )
        flipped = episode.watch_until(
            "/ready to turn 500 once the skew has held for the window",
            lambda m: not m.ready,
            timeout=stack.window_s + 20 * stack.scrape_s + 30,
        )
        firing = episode.watch_until(
            f"{SKEW_ALERT} to fire",
            lambda m: m.extra["alert"] == "firing",
            timeout=stack.seconds(SKEW_FOR_S) + 20 * stack.scrape_s + 30,
        )
        episode.mark("consumers back to full speed")
    ready = episode.watch_until(
        "/ready to answer 200 after the backlog drained", lambda m: m.ready, timeout=120
    )
    resolved = episode.watch_until(
        f"{SKEW_ALERT} to resolve", lambda m: m.extra["alert"] == "inactive", timeout=120
    )
    hot = [p for p, lag in skew_seen.extra["lag"].items() if lag > 0]  # type: ignore[union-attr]
    return SkewDrill(episode, skew_seen, flipped, firing, ready, resolved, hot)


pytestmark = [pytest.mark.destructive]


@pytest.mark.claim("skew.hot_partition")
def test_per_partition_lag_shows_one_hot_partition(skew_drill, evidence):
    lags = skew_drill.flipped.extra["lag"]
    evidence.record("lag per partition at the flip", lags)
    evidence.observe(
        "hot-key skew drill", moments=skew_drill.episode.to_json(), marks=skew_drill.episode.marks
    )
    assert len(skew_drill.hot_partitions) == 1, f"expected one partition with lag, got {lags}"


@pytest.mark.claim("skew.no_flap")
def test_probe_stays_ready_while_the_skew_is_younger_than_the_window(stack, skew_drill, evidence):
    start = skew_drill.skew_seen.t
    until = start + stack.window_s - 3 * stack.scrape_s
    flaps = [m for m in skew_drill.episode.between(start, until) if not m.ready]
    evidence.record(
        "observations while the skew was younger than the window",
        len(skew_drill.episode.between(start, until)),
    )
    assert flaps == [], f"/ready flapped: {flaps[:3]}"


@pytest.mark.claim("skew.flip")
def test_probe_turns_500_once_the_skew_held_for_the_window(stack, skew_drill, evidence):
    flip_after = skew_drill.flipped.t - skew_drill.skew_seen.t
    evidence.record(
        "flip after the skew began", round(flip_after, 1), "s", f"window {stack.window_s:g}s (5m)"
    )
    assert SKEW_FAILED in skew_drill.flipped.failed, skew_drill.flipped
    assert flip_after <= stack.window_s + 5 * stack.scrape_s + 1


@pytest.mark.claim("skew.alert")
def test_skew_alert_fires_after_its_for_and_not_before(stack, skew_drill, evidence):
    fired_after = skew_drill.alert_firing.t - skew_drill.skew_seen.t
    evidence.record(
        f"{SKEW_ALERT} firing after the skew began",
        round(fired_after, 1),
        "s",
        f"for: {stack.seconds(SKEW_FOR_S):g}s (12m)",
    )
    earliest = stack.seconds(SKEW_FOR_S) - 2 * stack.scrape_s
    early = skew_drill.episode.first(lambda m: m.extra["alert"] == "firing")
    assert early is not None and early.t - skew_drill.skew_seen.t >= earliest
    assert fired_after <= stack.seconds(SKEW_FOR_S) + 5 * stack.scrape_s + 1


@pytest.mark.claim("skew.recovery")
def test_probe_recovers_and_the_alert_resolves_after_the_drain(
    stack, probe, prometheus, skew_drill, evidence
):
    rollback = skew_drill.episode.marks["consumers back to full speed"]
    evidence.record("ready after the rollback", round(skew_drill.ready_again.t - rollback, 1), "s")
    evidence.record(
        "alert resolved after the rollback", round(skew_drill.alert_resolved.t - rollback, 1), "s"
    )
    assert skew_drill.ready_again.ready
    wait_for_steady_state(stack, probe, prometheus)

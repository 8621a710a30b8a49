"""Alerting end to end: both consumers stopped, through Prometheus and Alertmanager to the webhook.

One episode: a silence on CrmEventsServiceDown is created first (the checklist's emergency
procedure), both consumers are stopped, ServiceDown fires and stays suppressed, the silence is
expired and ServiceDown is delivered; CrmEventsUnderReplicatedConsumers fires too but is inhibited
by ServiceDown and never delivered; the consumers come back and the resolution is delivered.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import pytest

from harness.contract import CHECKLIST
from harness.steady import wait_for_steady_state
from harness.timeline import Episode
from harness.waits import hold_for, wait_until

SERVICE_DOWN = CHECKLIST.inhibiting_alert
UNDER_REPLICATED = CHECKLIST.inhibited_alert


@dataclass
class AlertingEpisode:
    t0: float
    consumers_stopping_at: float = 0.0
    members_zero_at: float = 0.0
    service_down_firing_at: float = 0.0
    under_replicated_firing_at: float = 0.0
    silenced_state: dict = field(default_factory=dict)
    inhibited_state: dict = field(default_factory=dict)
    delivered_while_silenced: list = field(default_factory=list)
    delivered_after_expiry: list = field(default_factory=list)
    delivered_at: float = 0.0
    silence_expired_at: float = 0.0
    resolved_delivered: list = field(default_factory=list)
    under_replicated_deliveries: list = field(default_factory=list)

    def since(self, moment: float) -> float:
        return round(moment - self.t0, 1)


def service_down_route(stack):
    """The Alertmanager route CrmEventsServiceDown ends on, as alertmanager.yml defines it."""
    return stack.contract.route_for(stack.contract.alert(SERVICE_DOWN).labels)


def am_alert(alertmanager, name: str) -> dict | None:
    alerts = alertmanager.alerts(name)
    return alerts[0] if alerts else None


@pytest.fixture(scope="module")
def alerting(stack, probe, prometheus, alertmanager, webhook) -> AlertingEpisode:
    wait_for_steady_state(stack, probe, prometheus)
    webhook.clear()
    episode = AlertingEpisode(t0=time.monotonic())
    silence = alertmanager.create_silence(
        {"alertname": SERVICE_DOWN}, minutes=60, comment="Planned consumer-down drill"
    )
    longest_for = max(stack.alert_for_s(SERVICE_DOWN), stack.alert_for_s(UNDER_REPLICATED))
    alert_timeout = longest_for + 30 * stack.scrape_s + 30
    route = service_down_route(stack)
    # Long enough for a notification to have gone out had the silence not held.
    silence_hold_s = max(3.0, stack.seconds(route.group_wait_s) * 3)
    timeline = Episode(
        "alerting: both consumers down",
        stack,
        probe,
        floor_s=alerting_floor_s(stack, route, silence_hold_s),
    )

    def step(name: str) -> float:
        """Mark a step on the timeline, with what the probe says then; its monotonic time."""
        now = time.monotonic()
        timeline.mark(name)
        timeline.observe()
        return now

    try:
        episode.consumers_stopping_at = step("consumers stopping")
        with stack.fault("consumers-down"):
            wait_until(
                "kafka_exporter to report 0 members", lambda: stack.group_members() == 0, timeout=60
            )
            episode.members_zero_at = step("group empty")
            wait_until(
                f"{SERVICE_DOWN} firing in Prometheus",
                lambda: prometheus.alert_state(SERVICE_DOWN) == "firing",
                timeout=alert_timeout,
            )
            episode.service_down_firing_at = step("ServiceDown firing")
            episode.silenced_state = wait_until(
                f"Alertmanager to hold {SERVICE_DOWN} as silenced",
                lambda: (
                    (a := am_alert(alertmanager, SERVICE_DOWN)) and a["status"]["silencedBy"] and a
                ),
                timeout=30,
            )
            hold_for(
                f"no {SERVICE_DOWN} delivery while silenced",
                lambda: not webhook.delivered(SERVICE_DOWN),
                duration=silence_hold_s,
            )
            episode.delivered_while_silenced = webhook.delivered(SERVICE_DOWN)
            wait_until(
                f"{UNDER_REPLICATED} firing in Prometheus",
                lambda: prometheus.alert_state(UNDER_REPLICATED) == "firing",
                timeout=alert_timeout,
            )
            step("UnderReplicated firing")
            # By now it has fired a while (ServiceDown's for: and the silence came first): when
            # it began firing is Prometheus' own record, the first evaluation ALERTS has it firing.
            episode.under_replicated_firing_at = first_firing(
                prometheus, UNDER_REPLICATED, since=episode.consumers_stopping_at
            )
            episode.inhibited_state = wait_until(
                f"Alertmanager to hold {UNDER_REPLICATED} as inhibited",
                lambda: (
                    (a := am_alert(alertmanager, UNDER_REPLICATED))
                    and a["status"]["inhibitedBy"]
                    and a
                ),
                timeout=30,
            )
            alertmanager.expire_silence(silence)
            episode.silence_expired_at = step("silence expired")
            episode.delivered_after_expiry = wait_until(
                f"{SERVICE_DOWN} delivered to the webhook after the silence expired",
                lambda: webhook.delivered(SERVICE_DOWN),
                timeout=stack.seconds(route.group_interval_s) + 30,
            )
            episode.delivered_at = step("ServiceDown delivered")
    finally:
        if not episode.silence_expired_at:  # the episode failed before expiring it: roll back
            alertmanager.expire_silence(silence)
    episode.resolved_delivered = wait_until(
        f"the resolution of {SERVICE_DOWN} delivered",
        lambda: webhook.delivered(SERVICE_DOWN, status="resolved"),
        timeout=stack.seconds(route.group_interval_s) + longest_for + 60,
    )
    step("resolution delivered")
    episode.under_replicated_deliveries = [
        n
        for n in webhook.notifications()
        if any(a["labels"].get("alertname") == UNDER_REPLICATED for a in n["payload"]["alerts"])
    ]
    return episode


def alerting_floor_s(stack, route, silence_hold_s: float) -> float:
    """The waiting the episode cannot avoid. Alertmanager flushes ServiceDown's group group_wait
    after the alert fires, then once every group_interval. The silence expires once the hold is
    over and UnderReplicated has fired (its for:), the delivery is the first flush after that,
    and the resolution the next one."""
    fires = stack.alert_for_s(SERVICE_DOWN)
    expires = max(fires + silence_hold_s, stack.alert_for_s(UNDER_REPLICATED))
    first_flush = fires + stack.seconds(route.group_wait_s)
    interval = stack.seconds(route.group_interval_s)
    delivery = first_flush + max(0, math.ceil((expires - first_flush) / interval)) * interval
    return delivery + interval


def first_firing(prometheus, alert: str, since: float) -> float:
    """The monotonic time of the first rule evaluation since `since` that had `alert` firing."""
    lookback = int(time.monotonic() - since) + 2
    series = prometheus.query(f'ALERTS{{alertname="{alert}",alertstate="firing"}}[{lookback}s]')
    stamps = [float(t) for s in series for t, _ in s["values"]]
    assert stamps, f"{alert} is firing, yet ALERTS has no firing sample in the last {lookback}s"
    return time.monotonic() - (time.time() - min(stamps))


def for_edges(stack, alert: str) -> tuple[float, float]:
    """The earliest and latest an alert may fire after its condition began, on this stack: the
    for: it must have less one scrape and one evaluation (by which Prometheus can lag the
    exporter's own report), and plus the scrapes, evaluations and polls before it shows."""
    for_s = stack.seconds(CHECKLIST.for_s(alert))
    return for_s - 2 * stack.scrape_s, for_s + 5 * stack.scrape_s + 1


@pytest.mark.claim("am.delivery")
@pytest.mark.destructive
def test_service_down_fires_after_its_for_and_is_delivered_with_clean_labels(
    stack, alerting, evidence
):
    fired_after = alerting.service_down_firing_at - alerting.members_zero_at
    earliest, latest = for_edges(stack, SERVICE_DOWN)
    evidence.record(
        f"{SERVICE_DOWN} firing after the group emptied",
        round(fired_after, 1),
        "s",
        f"for: {stack.clock.label(CHECKLIST.for_s(SERVICE_DOWN))}",
    )
    route = service_down_route(stack)
    delivered_after = alerting.delivered_at - alerting.silence_expired_at
    delivery_bound = stack.seconds(route.group_interval_s) + 2 * stack.scrape_s + 1
    evidence.record(
        "delivered after the silence expired",
        round(delivered_after, 1),
        "s",
        f"next group_interval tick, {stack.clock.label(route.group_interval_s)}",
    )
    assert fired_after >= earliest, f"fired {fired_after:.1f}s after, bound {earliest:.1f}s"
    assert fired_after <= latest, f"fired {fired_after:.1f}s after, bound {latest:.1f}s"
    assert delivered_after <= delivery_bound, (
        f"delivered {delivered_after:.1f}s after the silence expired, bound {delivery_bound:.1f}s"
    )
    [delivered, *_] = alerting.delivered_after_expiry
    labels = CHECKLIST.labels
    assert {k: delivered["labels"].get(k) for k in labels} == labels
    assert delivered["labels"].get("consumergroup") == stack.contract.group
    assert delivered["annotations"].get("runbook_url")


@pytest.mark.claim("am.inhibition")
@pytest.mark.destructive
def test_under_replicated_fires_after_its_for(stack, alerting, evidence):
    # The condition (fewer consumers than required) began at the earliest when the consumers
    # were being stopped, and at the latest when the exporter reported the group empty.
    earliest, latest = for_edges(stack, UNDER_REPLICATED)
    after_stop = alerting.under_replicated_firing_at - alerting.consumers_stopping_at
    after_empty = alerting.under_replicated_firing_at - alerting.members_zero_at
    evidence.record(
        f"{UNDER_REPLICATED} firing after the group emptied",
        round(after_empty, 1),
        "s",
        f"for: {stack.clock.label(CHECKLIST.for_s(UNDER_REPLICATED))}",
    )
    assert after_stop >= earliest, f"fired {after_stop:.1f}s after the stop, before its for:"
    assert after_empty <= latest, f"fired {after_empty:.1f}s after, bound {latest:.1f}s"


@pytest.mark.claim("am.inhibition")
@pytest.mark.destructive
def test_under_replicated_is_active_but_inhibited_and_never_delivered(alerting, evidence):
    state = alerting.inhibited_state["status"]
    evidence.record(f"{UNDER_REPLICATED} state in Alertmanager", state["state"])
    evidence.record("inhibitedBy", state["inhibitedBy"])
    assert state["state"] == "suppressed"
    assert state["inhibitedBy"], state
    assert alerting.under_replicated_deliveries == []


@pytest.mark.claim("am.silence")
@pytest.mark.destructive
def test_a_silence_suppresses_the_firing_alert_and_expiring_it_lets_it_through(alerting, evidence):
    state = alerting.silenced_state["status"]
    evidence.record(f"{SERVICE_DOWN} state while silenced", state["state"])
    assert state["state"] == "suppressed" and state["silencedBy"], state
    assert alerting.delivered_while_silenced == []
    assert alerting.delivered_after_expiry, "not delivered after the silence expired"


@pytest.mark.claim("am.resolved")
@pytest.mark.destructive
def test_recovery_resolves_the_alert_and_the_resolution_is_delivered(alerting, evidence):
    [resolved, *_] = alerting.resolved_delivered
    evidence.record("resolved notification", resolved["labels"]["alertname"])
    assert resolved["status"] == "resolved"
    assert resolved["labels"]["alertname"] == SERVICE_DOWN

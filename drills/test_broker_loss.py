"""Broker loss: Kafka stopped while events are produced; nothing acknowledged is lost."""

from __future__ import annotations

import uuid

import pytest

from harness.load import SteadyProducer, wait_until_consumed
from harness.steady import wait_for_steady_state
from harness.timeline import Episode
from stack.consumer.service import SESSION_TIMEOUT_S

RATE = 20  # events a second: steady traffic, bounded
OUTAGE_S = 10  # how long the broker stays down, a drill parameter
TRAFFIC_S = 3  # steady traffic before the fault and after the restart, a drill parameter

pytestmark = [pytest.mark.containers_only, pytest.mark.destructive]


def what_prometheus_shows(stack, prometheus):
    group = stack.contract.group

    def extra() -> dict[str, object]:
        return {
            "up{job=kafka_exporter}": prometheus.value('up{job="kafka_exporter"}'),
            "kafka:group_consumer_count": prometheus.value(
                f'kafka:group_consumer_count{{consumergroup="{group}"}}'
            ),
        }

    return extra


@pytest.mark.claim("drill.broker_loss")
def test_every_acknowledged_event_is_consumed_after_a_broker_restart(
    containers, probe, prometheus, evidence
):
    stack = containers
    wait_for_steady_state(stack, probe, prometheus)
    prefix = f"brokerloss-{uuid.uuid4().hex[:6]}"
    episode = Episode(
        "broker loss",
        stack,
        probe,
        extra=what_prometheus_shows(stack, prometheus),
        # Traffic before, the outage, then the coordinator's session timeout. The outage outlasts
        # the consumers' Kafka sessions, so the restarted coordinator reloads two members that
        # are gone and waits one session timeout before it removes them and the group can
        # consume again (Kafka's log shows it, docs/design.md section 12): the traffic after the
        # restart is watched inside that wait.
        floor_s=TRAFFIC_S + OUTAGE_S + max(TRAFFIC_S, SESSION_TIMEOUT_S),
    )
    producer = SteadyProducer(
        stack.endpoints.kafka_bootstrap, stack.contract.topic, RATE, prefix, max_seconds=120
    )
    with producer:
        episode.watch_for(TRAFFIC_S)
        with stack.fault("kafka-down"):
            stopped = episode.mark("broker stopped")
            episode.watch_for(OUTAGE_S)
            episode.mark("broker starting")
        restarted = episode.mark("broker answers again")
        evidence.record("broker outage", round(restarted - stopped, 1), "s")
        episode.watch_for(TRAFFIC_S)
    acked = producer.stop_and_flush()
    episode.mark("production stopped")
    evidence.record("events sent", len(producer.sent))
    evidence.record("events acknowledged", len(acked))
    evidence.record("events refused", len(producer.failed))
    assert acked, "nothing was acknowledged"
    assert len(acked) + len(producer.failed) == len(producer.sent), "events unaccounted for"
    wait_until_consumed(acked, lambda: stack.consumed_ids(prefix), timeout=180)
    episode.mark("every acknowledged event consumed")
    ids = stack.consumed_ids(prefix)
    evidence.record("events consumed (unique)", len(set(ids)))
    evidence.record("duplicates (at-least-once redeliveries)", len(ids) - len(set(ids)))
    wait_for_steady_state(stack, probe, prometheus)

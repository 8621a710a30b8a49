"""Broker loss: Kafka stopped while events are produced; nothing acknowledged is lost."""

from __future__ import annotations

import time
import uuid

import pytest

from harness.clients import exporter_metrics
from harness.load import SteadyProducer
from harness.stack import GROUP, TOPIC
from harness.steady import wait_for_steady_state
from harness.waits import wait_until

RATE = 20  # events a second: steady traffic, bounded
OUTAGE_S = 10

pytestmark = [pytest.mark.containers_only, pytest.mark.destructive]


def consumed(stack, prefix: str) -> list[str]:
    return [
        message_id
        for service in stack.containers
        if service.startswith("crm-events-consumer-")
        for message_id in stack.processed_ids(service, prefix)
    ]


def what_the_stack_shows(stack, probe, prometheus) -> dict[str, object]:
    try:
        members = exporter_metrics(stack.endpoints.exporter_url).get(
            f'kafka_consumergroup_members{{consumergroup="{GROUP}"}}'
        )
    except Exception as error:
        members = f"exporter error: {type(error).__name__}"
    return {
        "exporter members": members,
        "up{job=kafka_exporter}": prometheus.value('up{job="kafka_exporter"}'),
        "kafka:group_consumer_count": prometheus.value(
            f'kafka:group_consumer_count{{consumergroup="{GROUP}"}}'
        ),
        "probe": probe.ready().status_code,
    }


@pytest.mark.claim("drill.broker_loss")
def test_every_acknowledged_event_is_consumed_after_a_broker_restart(
    containers, probe, prometheus, evidence
):
    stack = containers
    wait_for_steady_state(stack, probe, prometheus)
    prefix = f"brokerloss-{uuid.uuid4().hex[:6]}"
    producer = SteadyProducer(stack.endpoints.kafka_bootstrap, TOPIC, RATE, prefix, max_seconds=120)
    with producer:
        time.sleep(3)  # wait-ok: steady traffic before the fault, a drill parameter
        with stack.fault("kafka-down"):
            stopped = time.monotonic()
            while time.monotonic() - stopped < OUTAGE_S:
                evidence.observe(
                    "during the broker outage", **what_the_stack_shows(stack, probe, prometheus)
                )
                time.sleep(2)  # wait-ok: the sampling interval of the outage timeline
        evidence.record("broker outage", round(time.monotonic() - stopped, 1), "s")
        time.sleep(3)  # wait-ok: traffic after the restart, a drill parameter
    acked = producer.stop_and_flush()
    evidence.record("events sent", len(producer.sent))
    evidence.record("events acknowledged", len(acked))
    evidence.record("events failed", len(producer.failed))
    assert acked, "nothing was acknowledged"
    wait_until(
        "every acknowledged event consumed",
        lambda: not (set(acked) - set(consumed(stack, prefix))),
        timeout=180,
        describe=lambda: f"{len(set(acked) - set(consumed(stack, prefix)))} not yet consumed",
    )
    ids = consumed(stack, prefix)
    evidence.record("events consumed (unique)", len(set(ids)))
    evidence.record("duplicates (at-least-once redeliveries)", len(ids) - len(set(ids)))
    wait_for_steady_state(stack, probe, prometheus)

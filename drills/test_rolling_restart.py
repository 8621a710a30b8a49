"""A rolling restart of the consumers, one at a time as a Deployment does, under steady traffic.

Each consumer in turn is stopped and started again, and the next one waits until the group is
whole again. Nothing acknowledged is lost, the probe never flaps (the group never stays short
of consumers for a whole window), and the group ends with every deployed consumer.
"""

from __future__ import annotations

import uuid

import pytest

from harness.load import SteadyProducer, wait_until_consumed
from harness.steady import wait_for_steady_state
from harness.timeline import Episode

RATE = 20  # events a second: steady traffic, bounded
TRAFFIC_S = 2  # traffic before the first restart and after the last, a drill parameter

pytestmark = [pytest.mark.containers_only, pytest.mark.destructive]


@pytest.mark.claim("day_two.rolling_restart")
def test_a_rolling_restart_loses_nothing_and_never_flaps(containers, probe, prometheus, evidence):
    stack = containers
    wait_for_steady_state(stack, probe, prometheus)
    consumers = stack.contract.consumer_services
    whole = len(consumers)
    # Per consumer: the exporter sees it leave and come back, each after a scrape.
    episode = Episode(
        "rolling restart of the consumers",
        stack,
        probe,
        floor_s=2 * TRAFFIC_S + 2 * whole * stack.scrape_s,
    )
    prefix = f"rolling-{uuid.uuid4().hex[:6]}"
    producer = SteadyProducer(
        stack.endpoints.kafka_bootstrap, stack.contract.topic, RATE, prefix, max_seconds=180
    )
    with producer:
        episode.watch_for(TRAFFIC_S)
        for consumer in consumers:
            stack.stop_services(consumer)
            episode.mark(f"{consumer} stopped")
            episode.watch_until(
                f"{whole - 1} members", lambda m: m.members == whole - 1, timeout=60
            )
            stack.start_services(consumer)
            episode.mark(f"{consumer} started")
            episode.watch_until(f"{whole} members again", lambda m: m.members == whole, timeout=60)
        episode.watch_for(TRAFFIC_S)
    acked = producer.stop_and_flush()

    wait_until_consumed(acked, lambda: stack.consumed_ids(prefix, consumers))
    episode.mark("every acknowledged event consumed")
    evidence.record("events sent", len(producer.sent))
    evidence.record("events acknowledged", len(acked))
    evidence.record("members at the end", episode.moments[-1].members)
    assert acked and len(acked) == len(producer.sent), "events sent but never acknowledged"
    assert episode.moments[-1].members == whole
    seen = episode.assert_ready_throughout(0, episode.moments[-1].t)
    evidence.record("observations during the restart", len(seen))
    wait_for_steady_state(stack, probe, prometheus)

"""Rebalance: a third consumer joins and leaves under steady production."""

from __future__ import annotations

import json
import uuid

import pytest

from harness.load import SteadyProducer, wait_until_consumed
from harness.steady import wait_for_steady_state
from harness.timeline import Episode

RATE = 20  # events a second: steady traffic, bounded
TRAFFIC_AFTER_S = 2  # traffic after the rebalance, a drill parameter

pytestmark = [pytest.mark.containers_only, pytest.mark.destructive]


def group_size_query(stack) -> str:
    """Panel 18's query, as the dashboard has it."""
    dashboard = stack.contract.stack_dir / "grafana/dashboards/crm_events_pipeline.json"
    model = json.loads(dashboard.read_text())
    [panel] = [p for p in model["panels"] if p["id"] == 18]
    return panel["targets"][0]["expr"]


@pytest.mark.claim("drill.rebalance")
def test_a_third_consumer_joins_and_leaves_without_loss_or_flapping(
    containers, probe, prometheus, evidence
):
    stack = containers
    wait_for_steady_state(stack, probe, prometheus)
    prefix = f"rebalance-{uuid.uuid4().hex[:6]}"
    panel = group_size_query(stack)
    # Two membership changes, each seen after a scrape and an evaluation, then the traffic
    # after the rebalance.
    episode = Episode(
        "rebalance",
        stack,
        probe,
        extra=lambda: {"panel 18": prometheus.values(panel)},
        floor_s=4 * stack.scrape_s + TRAFFIC_AFTER_S,
    )
    count = stack.contract.consumer_count
    third = None
    consumed_by_third: list[str] = []
    producer = SteadyProducer(
        stack.endpoints.kafka_bootstrap, stack.contract.topic, RATE, prefix, max_seconds=180
    )
    try:
        with producer:
            episode.observe()
            third = stack.start_consumer(count + 1)
            episode.mark("extra consumer started")
            episode.watch_until(
                f"{count + 1} members", lambda m: m.members == count + 1, timeout=60
            )
            episode.watch_until(
                f"panel 18 to show {count + 1}",
                lambda m: count + 1 in m.extra.get("panel 18", []),
                timeout=60,
            )
            stack.stop_services(third)
            episode.mark("extra consumer stopped")
            episode.watch_until(f"{count} members", lambda m: m.members == count, timeout=60)
            episode.watch_until(
                f"panel 18 to show {count}",
                lambda m: m.extra.get("panel 18") == [float(count)],
                timeout=60,
            )
            episode.watch_for(TRAFFIC_AFTER_S)
        acked = producer.stop_and_flush()
        consumed_by_third = stack.processed_ids(third, prefix)
    finally:
        if third:
            stack.remove(third)

    wait_until_consumed(acked, lambda: [*stack.consumed_ids(prefix), *consumed_by_third])
    evidence.record("events acknowledged", len(acked))
    evidence.record("events sent", len(producer.sent))
    evidence.record("consumed by the third consumer", len(set(consumed_by_third)))
    evidence.record(
        "group sizes seen by panel 18",
        sorted({v for m in episode.moments for v in m.extra.get("panel 18", [])}),
    )
    assert acked and len(acked) == len(producer.sent), "events sent but never acknowledged"
    seen = episode.assert_ready_throughout(0, episode.moments[-1].t)
    evidence.record("observations during the rebalance", len(seen))
    wait_for_steady_state(stack, probe, prometheus)

"""Rebalance: a third consumer joins and leaves under steady production."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from harness.load import SteadyProducer
from harness.stack import TOPIC
from harness.steady import wait_for_steady_state
from harness.timeline import Episode
from harness.waits import wait_until

RATE = 20
DASHBOARD = (
    Path(__file__).resolve().parent.parent / "stack/grafana/dashboards/crm_events_pipeline.json"
)

pytestmark = [pytest.mark.containers_only, pytest.mark.destructive]


def group_size_query() -> str:
    """Panel 18's query, as the dashboard has it."""
    model = json.loads(DASHBOARD.read_text())
    [panel] = [p for p in model["panels"] if p["id"] == 18]
    return panel["targets"][0]["expr"]


@pytest.mark.claim("drill.rebalance")
def test_a_third_consumer_joins_and_leaves_without_loss_or_flapping(
    containers, probe, prometheus, evidence
):
    stack = containers
    wait_for_steady_state(stack, probe, prometheus)
    prefix = f"rebalance-{uuid.uuid4().hex[:6]}"
    panel = group_size_query()
    episode = Episode(stack, probe, extra=lambda: {"panel 18": prometheus.values(panel)})
    third = None
    consumed_by_third: list[str] = []
    producer = SteadyProducer(stack.endpoints.kafka_bootstrap, TOPIC, RATE, prefix, max_seconds=180)
    try:
        with producer:
            episode.observe()
            third = stack.start_consumer(3)
            episode.mark("third consumer started")
            episode.watch_until("3 members", lambda m: m.members == 3, timeout=60)
            episode.watch_until(
                "panel 18 to show 3", lambda m: 3 in m.extra["panel 18"], timeout=60
            )
            stack.stop_services(third)
            episode.mark("third consumer stopped")
            episode.watch_until("2 members", lambda m: m.members == 2, timeout=60)
            episode.watch_until(
                "panel 18 to show 2", lambda m: m.extra["panel 18"] == [2.0], timeout=60
            )
            time.sleep(2)  # wait-ok: traffic after the rebalance, a drill parameter
        acked = producer.stop_and_flush()
        consumed_by_third = stack.processed_ids(third, prefix)
    finally:
        if third:
            stack.remove(third)

    def consumed() -> set[str]:
        ids = {
            i
            for s in ("crm-events-consumer-1", "crm-events-consumer-2")
            for i in stack.processed_ids(s, prefix)
        }
        return ids | set(consumed_by_third)

    wait_until(
        "every acknowledged event consumed",
        lambda: not (set(acked) - consumed()),
        timeout=120,
        describe=lambda: f"{len(set(acked) - consumed())} not yet consumed",
    )
    flaps = [m for m in episode.moments if not m.ready]
    evidence.record("events acknowledged", len(acked))
    evidence.record("consumed by the third consumer", len(set(consumed_by_third)))
    evidence.record(
        "group sizes seen by panel 18",
        sorted({v for m in episode.moments for v in m.extra["panel 18"]}),
    )
    evidence.observe("rebalance", moments=episode.to_json(), marks=episode.marks)
    assert acked
    assert flaps == [], f"/ready flapped during the rebalance: {flaps[:3]}"
    wait_for_steady_state(stack, probe, prometheus)

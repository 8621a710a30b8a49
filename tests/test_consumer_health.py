"""The consumer replica's own /health: what Kubernetes' readiness and liveness ask (no Kafka:
the consume loop's state is set by hand, below the HTTP boundary this test is about)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from stack.consumer.service import control_app

pytestmark = pytest.mark.claim("day_two.k8s_readiness")


def replica(consuming: bool, stopping: bool = False) -> SimpleNamespace:
    flags = {"consuming": threading.Event(), "stopping": threading.Event()}
    if consuming:
        flags["consuming"].set()
    if stopping:
        flags["stopping"].set()
    return SimpleNamespace(**flags, settings=SimpleNamespace(instance="crm-events-consumer-1"))


@pytest.mark.parametrize(
    ("consuming", "stopping", "status"),
    [(True, False, 200), (False, False, 503), (True, True, 503)],
)
def test_health_is_the_replicas_consume_loop(consuming: bool, stopping: bool, status: int) -> None:
    client = control_app(replica(consuming, stopping)).test_client()  # type: ignore[arg-type]
    response = client.get("/health")
    assert response.status_code == status
    assert response.get_json() == {"consuming": status == 200, "instance": "crm-events-consumer-1"}

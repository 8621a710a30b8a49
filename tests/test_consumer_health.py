"""The consumer replica's own /health: what Kubernetes' readiness and liveness ask (no Kafka:
the consume loop's state is set by hand, below the HTTP boundary this test is about)."""

from __future__ import annotations

import pytest

from stack.consumer.service import control_app
from tests.consumer_fake import replica

pytestmark = pytest.mark.claim("day_two.k8s_readiness")


@pytest.mark.parametrize(
    ("consuming", "stopping", "status"),
    [(True, False, 200), (False, False, 503), (True, True, 503)],
)
def test_health_is_the_replicas_consume_loop(consuming: bool, stopping: bool, status: int) -> None:
    client = control_app(replica(consuming, stopping)).test_client()  # type: ignore[arg-type]
    response = client.get("/health")
    assert response.status_code == status
    assert response.get_json() == {
        "consuming": status == 200,
        "in_group": True,
        "instance": "crm-events-consumer-1",
    }


def test_health_says_when_the_replica_is_out_of_its_group_without_failing() -> None:
    # The consume loop rebuilds its client past the deadline: a liveness restart would only race it.
    client = control_app(replica(True, in_group=False)).test_client()  # type: ignore[arg-type]
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["in_group"] is False

"""A consumer replica left out of its group while its process runs on comes back on its own.

After a broker loss, one replica's librdkafka never completed its rejoin: its poll loop ran, its
/health said consuming, and the group had one member for good (docs/design.md, section 12). The
replica now builds a new Kafka client once it has been out of its group for its rejoin deadline.
This drill makes that state on purpose: `PUT /control {"leave_group": true}` makes the consume
loop unsubscribe and stay out, as the stuck client did. The replica must be back through a new
client, not before the deadline (nothing else may have brought it back) and within a session
timeout after it (a join of a new member into a live group).
"""

from __future__ import annotations

import pytest

from harness.clients import ConsumerControl
from harness.steady import wait_for_steady_state
from harness.timeline import Episode
from stack.consumer.service import SESSION_TIMEOUT_S

# The loop applies a request and checks its membership once a poll (0.5 s); one more poll for
# the close of the old client and the observation.
LOOP_S = 1.0

pytestmark = [pytest.mark.containers_only, pytest.mark.destructive]


@pytest.mark.claim("day_two.consumer_rejoin")
def test_a_replica_out_of_its_group_builds_a_new_client_after_its_deadline(
    containers, probe, prometheus, evidence
):
    stack = containers
    wait_for_steady_state(stack, probe, prometheus)
    service = stack.contract.consumer_services[0]
    replica = ConsumerControl(stack.endpoints.consumer_urls[service])
    deadline = replica.rejoin_deadline_s()
    rebuilds_before = replica.client_rebuilds()
    whole = len(stack.contract.consumer_services)

    def membership() -> dict[str, object]:
        return {"in_group": replica.in_group()}

    episode = Episode(
        f"{service} out of its group", stack, probe, extra=membership, floor_s=deadline
    )
    try:
        asked = episode.mark(f"{service} asked to leave its group")
        replica.leave_group()
        episode.watch_until(
            f"{service} out of its group", lambda m: m.extra.get("in_group") is False, timeout=10
        )
        episode.watch_until(
            f"{whole - 1} members in kafka_exporter", lambda m: m.members == whole - 1, timeout=60
        )
        back = episode.watch_until(
            f"{service} in its group again",
            lambda m: m.extra.get("in_group") is True,
            timeout=deadline + SESSION_TIMEOUT_S + 30,
        )
        episode.watch_until(
            f"{whole} members in kafka_exporter again", lambda m: m.members == whole, timeout=60
        )
    finally:
        # Restore even when the replica never came back: a new process is a new client.
        if not replica.in_group():
            stack.stop_services(service)
            stack.start_services(service)
    rebuilds = replica.client_rebuilds() - rebuilds_before
    out_s = back.t - asked
    evidence.record("rejoin deadline", deadline, "s")
    evidence.record(
        "back in the group, from the request",
        round(out_s, 2),
        "s",
        f"from {deadline:g} to {deadline + LOOP_S + SESSION_TIMEOUT_S:g} s",
    )
    evidence.record("clients rebuilt", rebuilds, against="exactly 1")
    assert rebuilds == 1, f"{rebuilds:g} clients rebuilt, expected exactly one"
    assert out_s >= deadline, f"back after {out_s:.1f}s, before its {deadline:g}s deadline"
    # A new member is in a live group within a session timeout: the other members hear of the
    # rebalance at their next heartbeat and rejoin at their next poll.
    assert out_s <= deadline + LOOP_S + SESSION_TIMEOUT_S, (
        f"back after {out_s:.1f}s: more than a session timeout ({SESSION_TIMEOUT_S:g}s) past the "
        f"{deadline:g}s deadline"
    )
    wait_for_steady_state(stack, probe, prometheus)

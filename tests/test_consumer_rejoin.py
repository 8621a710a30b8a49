"""A replica out of its group past its rejoin deadline builds a new client: the deadline, the
watch that measures it and the drill's control, below the Kafka client (a fake clock; the
drill `drills/test_consumer_rejoin.py` runs it against real Kafka)."""

from __future__ import annotations

import pytest

from stack.consumer.service import (
    DEFAULT_REJOIN_DEADLINE_S,
    MembershipWatch,
    control_app,
    rejoin_deadline,
)
from tests.consumer_fake import replica

pytestmark = pytest.mark.claim("day_two.consumer_rejoin")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_out_of_the_group_is_overdue_only_after_the_whole_deadline() -> None:
    clock = Clock()
    watch = MembershipWatch(30.0, now=clock)
    assert not watch.overdue("member-1") and watch.in_group
    clock.now += 5
    assert not watch.overdue(None) and not watch.in_group  # the session timed out: out from here
    clock.now += 29.9
    assert not watch.overdue("")
    clock.now += 0.1
    assert watch.overdue(None)
    assert watch.out_for_s() == pytest.approx(30.0)


def test_a_rejoin_before_the_deadline_starts_the_count_again() -> None:
    clock = Clock()
    watch = MembershipWatch(30.0, now=clock)
    watch.overdue(None)
    clock.now += 25
    assert not watch.overdue("member-2") and watch.in_group
    clock.now += 1
    assert not watch.overdue(None)
    clock.now += 25
    assert not watch.overdue(None)  # 25 s out since the last loss, not 51


def test_a_new_client_gets_a_whole_deadline_to_join() -> None:
    clock = Clock()
    watch = MembershipWatch(30.0, now=clock)  # a client that has not joined yet
    clock.now += 29
    assert not watch.overdue(None)
    clock.now += 1
    assert watch.overdue(None)
    watch.new_client()
    clock.now += 29
    assert not watch.overdue(None)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, DEFAULT_REJOIN_DEADLINE_S), ("", DEFAULT_REJOIN_DEADLINE_S), ("45", 45.0)],
)
def test_the_rejoin_deadline_defaults_to_three_session_timeouts(
    value: str | None, seconds: float
) -> None:
    assert rejoin_deadline(value) == seconds


@pytest.mark.parametrize("value", ["10", "5", "-30", "0", "soon", "nan", "30s"])
def test_a_deadline_a_normal_rejoin_could_outlast_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"REJOIN_DEADLINE_S=.*above the session timeout"):
        rejoin_deadline(value)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"leave_group": True}, 200),
        ({"leave_group": False}, 400),
        ({"leave_group": "yes"}, 400),
        ({"leave_group": True, "rejoin": True}, 400),
    ],
)
def test_control_asks_the_loop_to_leave_the_group_only_on_true(body: dict, status: int) -> None:
    consumer = replica(True)
    client = control_app(consumer).test_client()  # type: ignore[arg-type]
    response = client.put("/control", json=body)
    assert response.status_code == status, response.get_json()
    assert consumer.leave_requested is (status == 200)


def test_control_reads_the_rejoin_deadline() -> None:
    client = control_app(replica(True)).test_client()  # type: ignore[arg-type]
    assert client.get("/control").get_json()["rejoin_deadline_s"] == DEFAULT_REJOIN_DEADLINE_S

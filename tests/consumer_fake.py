"""A consumer replica as control_app sees it, its consume loop's state set by hand."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from stack.consumer.service import DEFAULT_REJOIN_DEADLINE_S, MembershipWatch


def replica(consuming: bool, stopping: bool = False, in_group: bool = True) -> SimpleNamespace:
    flags = {"consuming": threading.Event(), "stopping": threading.Event()}
    if consuming:
        flags["consuming"].set()
    if stopping:
        flags["stopping"].set()
    membership = MembershipWatch(DEFAULT_REJOIN_DEADLINE_S)
    if in_group:
        membership.overdue("member-1")
    return SimpleNamespace(
        **flags,
        membership=membership,
        settings=SimpleNamespace(instance="crm-events-consumer-1", control_enabled=True),
        delay_ms=0,
        paused=False,
        leave_requested=False,
    )

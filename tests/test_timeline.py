"""harness/timeline.py's Episode below the live stack: a background watch keeps observing while
the test waits on something else, and moments stay in time order."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from harness.timeline import JOURNAL, Episode, Moment
from harness.waits import wait_until

pytestmark = pytest.mark.claim("harness.self_test")


class Probe:
    def __init__(self) -> None:
        self.calls = 0

    def ready(self) -> Any:
        self.calls += 1
        return SimpleNamespace(status_code=200, failed_messages=[])


def episode() -> Episode:
    stack = SimpleNamespace(group_members=lambda: 2, probe_ttl_s=0.25)
    made = Episode("unit: background watch", stack, Probe())  # type: ignore[arg-type]
    JOURNAL.remove(made)  # not a live episode: kept out of any report
    return made


def test_a_background_watch_observes_while_the_block_waits_on_something_else() -> None:
    watched = episode()
    with watched.watching():
        wait_until("three background observations", lambda: len(watched.moments) >= 3, timeout=10)
        watched.observe()  # the foreground observes too, at the same time
    count = len(watched.moments)
    assert count >= 4
    times = [m.t for m in watched.moments]
    assert times == sorted(times)
    watched.assert_ready_throughout(0, watched.now())
    assert len(watched.moments) == count  # the watch stopped with its block


def test_the_longest_gap_runs_between_the_moments_that_held_or_to_the_spans_edges() -> None:
    watched = episode()
    seen = {0.5: 2, 1.0: None, 2.0: None, 3.5: 2, 4.0: 2, 5.0: None}
    watched.moments = [Moment(t, 200, (), members) for t, members in seen.items()]

    def has_members(moment: Moment) -> bool:
        return moment.members is not None

    assert watched.longest_gap(has_members, 0.0, 5.5) == 3.0  # 0.5 -> 3.5
    assert watched.longest_gap(has_members, 3.6, 6.0) == 2.0  # 4.0 -> the span's end
    assert watched.longest_gap(has_members, 1.0, 3.0) == 2.0  # nothing held: the whole span

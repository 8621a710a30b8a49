"""Watching an episode: what the probe and the group looked like, moment by moment.

Every episode is a journal entry from the moment it is created (`JOURNAL`), filled as it goes:
the report draws its timeline whatever happened to the test that ran it, so a failed drill keeps
its timeline. A poll that fails (the probe unreachable, a timeout) is kept as an unknown moment,
never dropped: an unknown moment is not a ready one, so it breaks a "never flapped" claim.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from harness.clients import ProbeClient
from harness.stack import Stack
from harness.waits import wait_until

POLL_S = 0.25
UNKNOWN = 0  # the status code of a moment the probe did not answer


@dataclass(frozen=True)
class Moment:
    t: float  # seconds since the episode started
    status_code: int  # UNKNOWN when the probe did not answer
    failed: tuple[str, ...]  # the probe's failed-check messages, or why it did not answer
    members: float | None  # group members as kafka_exporter reports them
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status_code == 200

    @property
    def known(self) -> bool:
        return self.status_code != UNKNOWN


@dataclass
class Episode:
    """Moments observed during one fault episode, on one clock, journalled from the start."""

    title: str
    stack: Stack
    probe: ProbeClient
    extra: Callable[[], dict[str, object]] | None = None
    # The waiting this episode cannot avoid on this stack (windows, for: durations, intervals
    # the contract fixes), declared where the episode is made: the report sets it beside the
    # measured time.
    floor_s: float = 0.0
    moments: list[Moment] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    started_at: float = field(default_factory=time.time)  # Unix time: Prometheus' clock

    def __post_init__(self) -> None:
        JOURNAL.append(self)

    def now(self) -> float:
        return time.monotonic() - self._t0

    def mark(self, name: str) -> float:
        """Note when something was done (e.g. 'consumer stopped'); returns the episode time."""
        self.marks[name] = self.now()
        return self.marks[name]

    def observe(self) -> Moment:
        t = self.now()
        try:
            answer = self.probe.ready()
            status, failed = answer.status_code, tuple(answer.failed_messages)
        except Exception as error:
            status, failed = UNKNOWN, (f"no answer: {type(error).__name__}: {error}",)
        try:
            members = self.stack.group_members()
        except Exception:
            members = None
        try:
            extra = self.extra() if self.extra else {}
        except Exception as error:
            extra = {"error": f"{type(error).__name__}: {error}"}
        moment = Moment(t, status, failed, members, extra)
        with self._lock:  # a background watch may observe at the same time: keep time order
            bisect.insort(self.moments, moment, key=lambda m: m.t)
        return moment

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Observe every POLL_S in the background while the block runs: a span in which the
        test itself waits on something else (a fault's restore that blocks until a broker is
        back) is watched too, so "ready throughout" covers it."""
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                self.observe()
                stop.wait(POLL_S)

        thread = threading.Thread(target=watch, name=f"watch: {self.title}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)

    def watch_until(self, what: str, condition: Callable[[Moment], bool], timeout: float) -> Moment:
        """Observe every POLL_S until `condition` holds for a moment; return that moment."""

        def check() -> Moment | None:
            moment = self.observe()
            return moment if condition(moment) else None

        return wait_until(what, check, timeout=timeout, poll=POLL_S)

    def watch_for(self, duration: float) -> None:
        """Observe every POLL_S for `duration` seconds (a fault held for a fixed time)."""
        until = self.now() + duration
        while self.now() < until:
            self.observe()
            time.sleep(min(POLL_S, max(0.0, until - self.now())))  # wait-ok: the poll interval

    @property
    def duration_s(self) -> float:
        """From the start to the last moment or mark."""
        return max([m.t for m in self.moments] + list(self.marks.values()) + [0.0])

    def first(self, condition: Callable[[Moment], bool], after: float = 0.0) -> Moment | None:
        return next((m for m in self.moments if m.t >= after and condition(m)), None)

    def between(self, start: float, end: float) -> list[Moment]:
        return [m for m in self.moments if start <= m.t < end]

    def longest_gap(self, condition: Callable[[Moment], bool], start: float, end: float) -> float:
        """The longest time in [start, end) between two moments where `condition` held (or an
        edge of the span): how long something went unseen, to the poll's resolution."""
        held = [m.t for m in self.between(start, end) if condition(m)]
        edges = [start, *held, end]
        return max(later - earlier for earlier, later in itertools.pairwise(edges))

    def min_observations(self, duration: float) -> int:
        """How many moments a watch of `duration` must hold at least: one per evaluation of the
        probe (its cache TTL on this stack), so that no evaluation went unseen."""
        ttl = self.stack.probe_ttl_s
        return max(1, math.floor(duration / max(ttl, POLL_S)))

    def assert_ready_throughout(self, start: float, end: float) -> list[Moment]:
        """Every moment in [start, end) was a ready answer, and there were enough of them."""
        seen = self.between(start, end)
        not_ready = [m for m in seen if not m.ready]
        assert not_ready == [], f"/ready not 200 (or no answer) during the span: {not_ready[:3]}"
        needed = self.min_observations(end - start)
        assert len(seen) >= needed, (
            f"only {len(seen)} observations in {end - start:.1f}s, at least {needed} needed"
        )
        return seen

    def to_json(self) -> list[dict[str, object]]:
        return [
            {
                "t": round(m.t, 2),
                "status": m.status_code,
                "members": m.members,
                "failed": list(m.failed),
            }
            | m.extra
            for m in self.moments
        ]


# Every episode of this run, in the order they began: the report's timelines.
JOURNAL: list[Episode] = []

"""Watching an episode: what the probe and the group looked like, moment by moment."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.clients import ProbeClient
from harness.stack import Stack
from harness.waits import wait_until

POLL_S = 0.25


@dataclass(frozen=True)
class Moment:
    t: float  # seconds since the episode started
    status_code: int
    failed: tuple[str, ...]  # the probe's failed-check messages
    members: float | None  # group members as kafka_exporter reports them
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status_code == 200


@dataclass
class Episode:
    """Moments observed during one fault episode, on one clock."""

    stack: Stack
    probe: ProbeClient
    extra: Callable[[], dict[str, object]] | None = None
    moments: list[Moment] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self._t0

    def mark(self, name: str) -> float:
        """Note when something was done (e.g. 'consumer stopped'); returns the episode time."""
        self.marks[name] = self.now()
        return self.marks[name]

    def observe(self) -> Moment:
        answer = self.probe.ready()
        moment = Moment(
            t=self.now(),
            status_code=answer.status_code,
            failed=tuple(answer.failed_messages),
            members=self.stack.group_members(),
            extra=self.extra() if self.extra else {},
        )
        self.moments.append(moment)
        return moment

    def watch_until(self, what: str, condition: Callable[[Moment], bool], timeout: float) -> Moment:
        """Observe every POLL_S until `condition` holds for a moment; return that moment."""

        def check() -> Moment | None:
            moment = self.observe()
            return moment if condition(moment) else None

        return wait_until(what, check, timeout=timeout, poll=POLL_S)

    def first(self, condition: Callable[[Moment], bool], after: float = 0.0) -> Moment | None:
        return next((m for m in self.moments if m.t >= after and condition(m)), None)

    def between(self, start: float, end: float) -> list[Moment]:
        return [m for m in self.moments if start <= m.t < end]

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

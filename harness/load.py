"""Bounded background production of CRM events, for drills that break things under traffic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from harness.clients import EventProducer
from harness.waits import wait_until


class SteadyProducer:
    """Produces `rate` events a second in a background thread, until stopped or until the bounds
    (`max_seconds`, `max_events`) are reached. Collects the ids Kafka acknowledged."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        rate: float,
        prefix: str,
        max_seconds: float = 300,
        max_events: int = 20_000,
    ) -> None:
        self._producer = EventProducer(bootstrap, topic)
        self._interval = 1 / rate
        self._prefix = prefix
        self._max_seconds = max_seconds
        self._max_events = max_events
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sent: list[str] = []
        self.acked: list[str] = []
        self.failed: list[str] = []
        self._thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _on_delivery(self, message_id: str, error: object) -> None:
        with self._lock:
            (self.failed if error else self.acked).append(message_id)

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            if len(self.sent) >= self._max_events:
                break
            self.sent.append(self._producer.send_one(None, None, self._prefix, self._on_delivery))
            self._stop.wait(self._interval)

    def stop_and_flush(self, timeout_s: float = 150.0) -> list[str]:
        """Stop producing, wait for every outstanding acknowledgement; return the acked ids."""
        self.__exit__()
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise AssertionError(f"{remaining} events still unacknowledged after {timeout_s}s")
        return list(self.acked)


def wait_until_consumed(
    acked: list[str], consumed: Callable[[], Iterable[str]], timeout: float = 120
) -> None:
    """Wait until a consumer has processed every acknowledged event id (`consumed()` lists the
    ids the consumers logged)."""

    def missing() -> set[str]:
        return set(acked) - set(consumed())

    wait_until(
        "every acknowledged event consumed",
        lambda: not missing(),
        timeout=timeout,
        describe=lambda: f"{len(missing())} not yet consumed",
    )

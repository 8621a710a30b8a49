"""Many callers, one evaluation: a short-lived cached evaluation shared by every caller."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from probe.checks import Evaluation

log = logging.getLogger("probe")


class SharedEvaluation:
    """Serves the last evaluation while it is younger than `ttl_s`; otherwise one caller evaluates
    and every caller that arrived meanwhile takes that same result. Prometheus therefore sees at
    most one evaluation per TTL, however many containers poll `/ready`.
    """

    def __init__(self, evaluate: Callable[[], Evaluation], ttl_s: float, wait_limit_s: float):
        self._evaluate = evaluate
        self._ttl_s = ttl_s
        # A caller never waits longer than one whole evaluation may take, plus a margin.
        self._wait_limit_s = wait_limit_s
        self._lock = threading.Lock()
        self._last: Evaluation | None = None
        self._last_finished = 0.0  # monotonic
        self._generation = 0

    @property
    def last(self) -> Evaluation | None:
        return self._last

    def get(self) -> Evaluation | None:
        """The current evaluation, or None when the one in flight overran the wait limit."""
        arrived_generation = self._generation
        fresh = self._fresh()
        if fresh:
            return fresh
        if not self._lock.acquire(timeout=self._wait_limit_s):
            log.error("evaluation in flight overran its budget", extra={"event": "overrun"})
            return None
        try:
            # Another caller finished an evaluation while this one waited: share it.
            if self._generation != arrived_generation and self._last is not None:
                return self._last
            fresh = self._fresh()
            if fresh:
                return fresh
            evaluation = self._evaluate()
            self._last, self._last_finished = evaluation, time.monotonic()
            self._generation += 1
            return evaluation
        finally:
            self._lock.release()

    def _fresh(self) -> Evaluation | None:
        last = self._last
        if last is not None and time.monotonic() - self._last_finished < self._ttl_s:
            return last
        return None

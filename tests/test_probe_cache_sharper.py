"""Sharper cache tests: the single flight and the TTL edge of probe/readiness.py (found by
mutation testing, harness/mutants).

- Callers that arrive while an evaluation is in flight take its result even with a TTL of 0:
  sharing does not depend on the cache, Prometheus sees one evaluation per burst.
- An evaluation is served while it is younger than the TTL, and not at exactly the TTL: checked
  on a clock the test moves, so the edge is exact.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from probe import readiness
from tests.test_probe_cache import PER_EVALUATION
from tests.test_probe_prometheus_failures import hang

pytestmark = [pytest.mark.claim("probe.ready")]

CALLERS = 8


def test_callers_arriving_during_an_evaluation_share_it_with_a_ttl_of_zero(
    prometheus, settings, serve
):
    prometheus.skew = hang(0.5)  # keep the evaluation in flight while the others arrive
    client = serve(settings(cache_ttl_seconds=0))
    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        list(pool.map(lambda _: client.get("/ready").status_code, range(CALLERS)))
    # One evaluation for the burst; a straggler arriving after it ended may start a second one,
    # never one per caller.
    assert len(prometheus.queries) <= 2 * PER_EVALUATION, len(prometheus.queries)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_an_evaluation_is_served_while_younger_than_the_ttl_and_not_at_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(readiness.time, "monotonic", clock.monotonic)
    evaluations: list[object] = []

    def evaluate() -> Any:
        evaluations.append(object())
        return evaluations[-1]

    ttl_s = 5.0
    shared = readiness.SharedEvaluation(evaluate, ttl_s=ttl_s, wait_limit_s=1.0)
    first = shared.get()
    finished = clock.now
    clock.now = finished + ttl_s - 0.5
    assert shared.get() is first and len(evaluations) == 1
    clock.now = finished + ttl_s  # exactly ttl_s old (whole numbers: no rounding)
    assert shared.get() is not first and len(evaluations) == 2

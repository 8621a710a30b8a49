"""The two readiness checks, evaluated against Prometheus with one shared deadline."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property

from probe.prometheus import PrometheusClient, QueryError, Sample
from probe.settings import ProbeSettings

SKEW = "skew"
CONSUMER_COUNT = "consumer_count"
PROGRESS = "progress"
NO_DATA = "no_data"
STALLED = "stalled"
EXPORTER_DOWN = "exporter_down"


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    value: float | None
    limit: float
    # None when passed; otherwise one of: threshold_exceeded, below_minimum, stalled (messages
    # waited the whole window and the group committed nothing), no_data, exporter_down (no data
    # or a stall, and kafka_exporter is not up), invalid_value (NaN or Inf),
    # prometheus_unavailable.
    reason: str | None = None
    detail: str = ""

    @property
    def message(self) -> str:
        return f"{self.check} check {'passed' if self.passed else 'failed'}"

    def to_json(self) -> dict[str, object]:
        return asdict(self) | {"message": self.message}


@dataclass(frozen=True)
class Evaluation:
    checks: tuple[CheckResult, ...]
    evaluated_at: float
    duration_s: float
    prometheus_answered: bool
    window: str
    queries: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    @cached_property
    def body(self) -> bytes:
        """The /ready answer, serialised once per evaluation: callers served from the cache
        cost a lookup, not a JSON encoding."""
        return json.dumps(self.to_json()).encode()

    def to_json(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "failed": [check.to_json() for check in self.failed],
            "checks": {check.check: check.to_json() for check in self.checks},
            "window": self.window,
            "evaluated_at": datetime.fromtimestamp(self.evaluated_at, UTC).isoformat(),
            "duration_ms": round(self.duration_s * 1000, 1),
            "queries": self.queries,
        }


def evaluate(settings: ProbeSettings, client: PrometheusClient) -> Evaluation:
    """Run every check. Prometheus failing after its attempts fails them all: no unverified
    ready."""
    started = time.monotonic()
    deadline = started + settings.evaluation_budget_s
    queries = settings.queries
    try:
        skew = client.query(queries[SKEW], deadline)
        consumers = client.query(queries[CONSUMER_COUNT], deadline)
        progress = client.query(queries[PROGRESS], deadline)
    except QueryError as error:
        checks = tuple(
            CheckResult(name, False, None, limit, "prometheus_unavailable", str(error))
            for name, limit in (
                (SKEW, settings.skew_threshold),
                (CONSUMER_COUNT, settings.min_consumers),
                (PROGRESS, 0),
            )
        )
        answered = False
    else:
        checks = (
            skew_check(skew, settings.skew_threshold, settings.window),
            consumer_count_check(consumers, settings.min_consumers, settings.window),
            progress_check(progress, settings.window),
        )
        if any(check.reason in (NO_DATA, STALLED) for check in checks):
            checks = _name_a_missing_exporter(checks, settings, client, deadline)
        answered = True
    return Evaluation(
        checks=checks,
        evaluated_at=time.time(),
        duration_s=time.monotonic() - started,
        prometheus_answered=answered,
        window=settings.window,
        queries=queries,
    )


def skew_check(samples: list[Sample], threshold: float, window: str) -> CheckResult:
    """Fails when the (worst series') windowed skew is above the threshold."""
    problem = _unusable(SKEW, samples, threshold)
    if problem:
        return problem
    worst = max(sample.value for sample in samples)
    if worst > threshold:
        return CheckResult(
            SKEW,
            False,
            worst,
            threshold,
            "threshold_exceeded",
            f"skew {worst:g} > {threshold:g} over the {window} window",
        )
    return CheckResult(SKEW, True, worst, threshold)


def consumer_count_check(samples: list[Sample], minimum: int, window: str) -> CheckResult:
    """Fails when the (worst series') windowed consumer count is below the minimum."""
    problem = _unusable(CONSUMER_COUNT, samples, minimum)
    if problem:
        return problem
    worst = min(sample.value for sample in samples)
    if worst < minimum:
        return CheckResult(
            CONSUMER_COUNT,
            False,
            worst,
            minimum,
            "below_minimum",
            f"{worst:g} consumers < {minimum} over the {window} window",
        )
    return CheckResult(CONSUMER_COUNT, True, worst, minimum)


def progress_check(samples: list[Sample], window: str) -> CheckResult:
    """Fails when messages waited through the whole window and the group committed nothing."""
    problem = _unusable(PROGRESS, samples, 0)
    if problem:
        return problem
    waiting = max(sample.value for sample in samples)
    if waiting > 0:
        return CheckResult(
            PROGRESS,
            False,
            waiting,
            0,
            STALLED,
            f"{waiting:g} messages waited the whole {window} window and the group committed none",
        )
    return CheckResult(PROGRESS, True, waiting, 0)


def _name_a_missing_exporter(
    checks: tuple[CheckResult, ...],
    settings: ProbeSettings,
    client: PrometheusClient,
    deadline: float,
) -> tuple[CheckResult, ...]:
    """No series, or offsets that never moved: when kafka_exporter is down or not scraped, say so
    instead of `no_data` or `stalled` (a stopped exporter's last samples never move either).
    Only a clear answer changes the reason: a failing query leaves the reason as it is."""
    try:
        up = client.query(settings.exporter_up_query, deadline)
    except QueryError:
        return checks
    if up and all(sample.value >= 1 for sample in up):
        return checks
    found = ", ".join(f"{sample.value:g}" for sample in up) or "no series"
    detail = f"kafka_exporter is not up ({settings.exporter_up_query}: {found})"
    return tuple(
        replace(check, reason=EXPORTER_DOWN, detail=detail)
        if check.reason in (NO_DATA, STALLED)
        else check
        for check in checks
    )


def _unusable(check: str, samples: list[Sample], limit: float) -> CheckResult | None:
    # A missing series, NaN or Inf is never healthy: it means the pipeline that should prove
    # health is itself broken.
    if not samples:
        return CheckResult(check, False, None, limit, NO_DATA, "the query returned no series")
    bad = [
        sample.value for sample in samples if math.isnan(sample.value) or math.isinf(sample.value)
    ]
    if bad:
        return CheckResult(
            check, False, None, limit, "invalid_value", f"value {bad[0]} in the result"
        )
    return None

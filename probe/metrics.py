"""The probe's own metrics: what it decided, how long it took, how Prometheus behaved."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from probe.checks import Evaluation
from probe.prometheus import QueryError

# The *_created series only double the size of every scrape.
disable_created_metrics()


class ProbeMetrics:
    """Six metrics on one registry per app, so every test app starts from zero."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.checks = Counter(
            "health_probe_checks_total",
            "Readiness check results.",
            ["check", "result"],
            registry=self.registry,
        )
        self.status = Gauge(
            "health_probe_status",
            "1 when the last evaluation was ready, else 0.",
            registry=self.registry,
        )
        self.duration = Histogram(
            "health_probe_duration_seconds",
            "Time one evaluation took, queries included.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5),
            registry=self.registry,
        )
        self.prometheus_errors = Counter(
            "health_probe_prometheus_errors_total",
            "Failed Prometheus query attempts by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.prometheus_retries = Counter(
            "health_probe_prometheus_retries_total",
            "Prometheus query attempts after a failure.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "health_probe_last_success_timestamp_seconds",
            "Unix time of the last evaluation that Prometheus answered.",
            registry=self.registry,
        )
        for kind in ("connection", "timeout", "http_status", "bad_response"):
            self.prometheus_errors.labels(kind)

    def record(self, evaluation: Evaluation) -> None:
        for check in evaluation.checks:
            self.checks.labels(check.check, "pass" if check.passed else "fail").inc()
        self.status.set(1 if evaluation.ready else 0)
        self.duration.observe(evaluation.duration_s)
        if evaluation.prometheus_answered:
            self.last_success.set(evaluation.evaluated_at)

    def record_error(self, error: QueryError) -> None:
        self.prometheus_errors.labels(error.kind).inc()

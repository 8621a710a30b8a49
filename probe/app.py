"""The readiness probe: a Flask application factory with four endpoints."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from probe.checks import Evaluation, evaluate
from probe.metrics import ProbeMetrics
from probe.prometheus import PrometheusClient
from probe.readiness import SharedEvaluation
from probe.settings import ProbeSettings

log = logging.getLogger("probe")

# Time allowed beyond the evaluation budget for everything that is not a Prometheus query.
MARGIN_S = 0.25

endpoints = Blueprint("probe", __name__)


class Probe:
    """Everything one probe instance holds: settings, Prometheus client, metrics, shared result."""

    def __init__(self, settings: ProbeSettings, client: PrometheusClient | None = None) -> None:
        self.settings = settings
        self.metrics = ProbeMetrics()
        self.client = client or PrometheusClient(
            settings.prom_urls,
            timeout_s=settings.timeout_s,
            attempts=settings.prom_retries,
            backoff_s=settings.backoff_s,
            on_error=self.metrics.record_error,
            on_retry=self.metrics.prometheus_retries.inc,
        )
        self.shared = SharedEvaluation(
            self._evaluate_and_record,
            ttl_s=settings.cache_ttl_seconds,
            wait_limit_s=settings.evaluation_budget_s + MARGIN_S,
        )

    def _evaluate_and_record(self) -> Evaluation:
        evaluation = evaluate(self.settings, self.client)
        self.metrics.record(evaluation)
        log.info(
            "readiness evaluated",
            extra={
                "event": "evaluation",
                "ready": evaluation.ready,
                "checks": {
                    c.check: {"value": c.value, "reason": c.reason} for c in evaluation.checks
                },
                "duration_ms": round(evaluation.duration_s * 1000, 1),
            },
        )
        return evaluation


def create_app(settings: ProbeSettings, client: PrometheusClient | None = None) -> Flask:
    """Build the probe app; pass `client` to point it at a Prometheus of the caller's choice."""
    app = Flask("probe")
    app.extensions["probe"] = Probe(settings, client)
    app.register_blueprint(endpoints)
    return app


def _probe() -> Probe:
    return current_app.extensions["probe"]


@endpoints.get("/health")
def health() -> tuple[Response, int]:
    """Liveness: the process answers. Never asks Prometheus."""
    return jsonify(status="ok"), 200


@endpoints.get("/ready")
def ready() -> tuple[Response, int]:
    """Readiness: 200 when every check passes over the window, else 500 naming each failed one."""
    evaluation = _probe().shared.get()
    if evaluation is None:
        body = {
            "status": "not_ready",
            "failed": [
                {
                    "check": "evaluation",
                    "reason": "prometheus_unavailable",
                    "message": "evaluation did not finish within its time budget",
                }
            ],
        }
        return jsonify(body), 500
    status_code = 200 if evaluation.ready else 500
    return Response(evaluation.body, status=status_code, mimetype="application/json"), status_code


@endpoints.get("/status")
def status() -> tuple[Response, int]:
    """Settings in force and the last evaluation, for people debugging the probe."""
    probe = _probe()
    settings = probe.settings
    last = probe.shared.last
    return jsonify(
        consumer_group=settings.consumer_group,
        window_minutes=settings.window_minutes,
        window=settings.window,
        skew_threshold=settings.skew_threshold,
        min_consumers=settings.min_consumers,
        prometheus_url=settings.prom_url,
        prom_timeout_ms=settings.prom_timeout_ms,
        prom_retries=settings.prom_retries,
        prom_backoff_ms=settings.prom_backoff_ms,
        cache_ttl_seconds=settings.cache_ttl_seconds,
        queries=settings.queries,
        last_evaluation=last.to_json() | {"ready": last.ready} if last else None,
    ), 200


@endpoints.get("/metrics")
def metrics() -> Response:
    """The probe's own metrics in the Prometheus text format."""
    return Response(generate_latest(_probe().metrics.registry), mimetype=CONTENT_TYPE_LATEST)

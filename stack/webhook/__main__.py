"""`python -m stack.webhook`: receive Alertmanager notifications on :9096 and keep them."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import waitress
from flask import Flask, Response, jsonify, request

from probe.logs import configure_logging

log = logging.getLogger("webhook")


def create_app() -> Flask:
    """POST /alerts records a notification; GET /alerts lists them; DELETE /alerts forgets."""
    app = Flask("webhook")
    notifications: list[dict[str, object]] = []
    lock = threading.Lock()

    @app.post("/alerts")
    def receive() -> tuple[Response, int]:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict) or "alerts" not in payload:
            return jsonify(error="not an Alertmanager webhook payload"), 400
        with lock:
            notifications.append({"received_at": time.time(), "payload": payload})
        log.info(
            "notification",
            extra={
                "event": "notification",
                "status": payload.get("status"),
                "alerts": [a.get("labels", {}).get("alertname") for a in payload["alerts"]],
            },
        )
        return jsonify(ok=True), 200

    @app.get("/alerts")
    def read() -> Response:
        with lock:
            return jsonify(notifications=list(notifications))

    @app.delete("/alerts")
    def forget() -> Response:
        with lock:
            notifications.clear()
        return jsonify(ok=True)

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    return app


def main() -> int:
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    waitress.serve(
        create_app(), host="0.0.0.0", port=int(os.environ.get("PORT", "9096")), threads=4
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Unit-test fixtures: a real HTTP fake Prometheus on 127.0.0.1 and a probe served over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import waitress
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from probe.app import create_app
from probe.settings import ProbeSettings


def vector(*values: float, group: str = "crm-events-sse") -> dict[str, object]:
    """A Prometheus instant-query answer with one series per value."""
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"consumergroup": group, "replica": str(i)}, "value": [1.0, str(v)]}
                for i, v in enumerate(values)
            ],
        },
    }


class FakePrometheus:
    """Answers the probe's two queries with values a test sets; records every query it got."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.skew: object = vector(1.0)
        self.consumers: object = vector(2)
        self.queries: list[str] = []
        self._lock = threading.Lock()
        server.expect_request("/api/v1/query").respond_with_handler(self._answer)

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def _answer(self, request: Request) -> Response:
        query = request.args["query"]
        with self._lock:
            self.queries.append(query)
        answer = self.skew if "skew" in query else self.consumers
        if callable(answer):
            return answer(request)
        if isinstance(answer, Response):
            return answer
        return Response(json.dumps(answer), content_type="application/json")


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[HTTPServer]:
    """One HTTP server for the whole run: stopping one takes half a second (its poll interval),
    which every probe test would otherwise pay."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def prometheus(prometheus_server: HTTPServer) -> Iterator[FakePrometheus]:
    """A fake Prometheus on 127.0.0.1 that serves threads in parallel (so one can hang); a fresh
    one per test (the handlers and recorded queries of the previous test are cleared)."""
    prometheus_server.clear()
    try:
        yield FakePrometheus(prometheus_server)
    finally:
        prometheus_server.clear()


@pytest.fixture
def settings(prometheus: FakePrometheus) -> Callable[..., ProbeSettings]:
    """Probe settings pointing at the fake Prometheus; keyword arguments override fields."""

    def make(**overrides: object) -> ProbeSettings:
        values: dict[str, object] = {"prom_url": prometheus.url, "cache_ttl_seconds": 0.0}
        return ProbeSettings(**(values | overrides))  # type: ignore[arg-type]

    return make


@pytest.fixture
def serve() -> Iterator[Callable[[ProbeSettings], httpx.Client]]:
    """Serve a probe app under waitress on 127.0.0.1; hands back an HTTP client for it."""
    servers = []
    clients = []

    def start(probe_settings: ProbeSettings) -> httpx.Client:
        server = waitress.create_server(
            create_app(probe_settings), host="127.0.0.1", port=0, threads=16
        )
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        client = httpx.Client(base_url=f"http://127.0.0.1:{server.effective_port}", timeout=10)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.close()

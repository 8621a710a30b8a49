"""Unit-test fixtures: a real HTTP fake Prometheus on 127.0.0.1 and a probe served over HTTP."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import waitress
from pytest_httpserver import HTTPServer
from waitress import wasyncore
from werkzeug import Request, Response

from harness.contract import CHECKLIST
from probe.app import create_app
from probe.settings import ProbeSettings


def vector(*values: float | str, group: str = CHECKLIST.group) -> dict[str, object]:
    """A Prometheus instant-query answer with one series per value (a string as it is: "NaN")."""
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
    """Answers the probe's queries with values a test sets; records every query it got."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        # Healthy by default: no skew, the checklist's minimum of consumers.
        self.skew: object = vector(1.0)
        self.consumers: object = vector(CHECKLIST.min_consumers)
        self.progress: object = vector(0)  # no message waited the whole window uncommitted
        self.exporter_up: object = vector(1)  # asked only when a check finds no series
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
        if "up{job=" in query:
            answer = self.exporter_up
        elif "current_offset" in query:
            answer = self.progress
        else:
            answer = self.skew if "skew" in query else self.consumers
        if isinstance(answer, Response):  # before callable(): a Response is a WSGI app too
            return answer
        if callable(answer):
            return answer(request)
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
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        client = httpx.Client(base_url=f"http://127.0.0.1:{server.effective_port}", timeout=10)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for server, thread in servers:
        # Close the sockets from the server's own loop (closing them from here races its select,
        # which then fails on a closed descriptor); the loop ends once it has none left.
        # pull_trigger appends the thunk, then writes to the trigger's pipe: when a worker's own
        # pull has already woken the loop, the loop can run the thunk, and so close that pipe,
        # before this write lands (EBADF). The loop has stopped either way; the join says so.
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(lambda server=server: wasyncore.close_all(server._map))
        thread.join(timeout=5)
        assert not thread.is_alive(), "the probe's waitress loop did not stop within 5 s"
        server.task_dispatcher.shutdown()

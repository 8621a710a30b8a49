"""A small Prometheus instant-query client with attempts, backoff and a hard deadline."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

log = logging.getLogger("probe")

# A readiness answer is a handful of series; anything this large is not an answer to our query.
MAX_RESPONSE_BYTES = 1_000_000


class QueryError(Exception):
    """One failed attempt. `kind` is a small fixed vocabulary used as a metric label."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class PrometheusClient:
    """Runs instant queries. Every failure kind is retried: refused, timed out, HTTP error, garbage.

    With several base URLs (replicas of one Prometheus pair), the attempts of a query go round
    them in order: the first URL first, the next one on its failure. No attempt starts or runs
    past the caller's deadline, so a slow or hanging Prometheus bounds the caller's latency
    instead of stretching it.
    """

    def __init__(
        self,
        base_urls: Sequence[str],
        timeout_s: float,
        attempts: int,
        backoff_s: float,
        on_error: Callable[[QueryError], None] = lambda error: None,
        on_retry: Callable[[], None] = lambda: None,
    ) -> None:
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._on_error = on_error
        self._on_retry = on_retry
        self._clients = [httpx.Client(base_url=url, timeout=timeout_s) for url in base_urls]

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def query(self, promql: str, deadline: float) -> list[Sample]:
        """All series of an instant query; QueryError (of the last attempt) when none succeeded."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_fixed(self.backoff_s),
            retry=retry_if_exception_type(QueryError),
            before_sleep=lambda state: self._before_retry(deadline),
            reraise=True,
        )
        clients = itertools.cycle(self._clients)
        return retrying(lambda: self._attempt(next(clients), promql, deadline))

    def _before_retry(self, deadline: float) -> None:
        if time.monotonic() + self.backoff_s >= deadline:
            raise QueryError("timeout", "no time left for another attempt")
        self._on_retry()

    def _attempt(self, http: httpx.Client, promql: str, deadline: float) -> list[Sample]:
        try:
            body = self._fetch(http, promql, deadline)
            return parse_vector(body)
        except QueryError as error:
            self._on_error(error)
            log.warning(
                "prometheus query failed",
                extra={
                    "event": "prometheus_error",
                    "kind": error.kind,
                    "detail": error.detail,
                    "url": str(http.base_url),
                },
            )
            raise

    def _fetch(self, http: httpx.Client, promql: str, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise QueryError("timeout", "deadline passed before the attempt")
        timeout = httpx.Timeout(min(self.timeout_s, remaining))
        try:
            with http.stream(
                "GET", "/api/v1/query", params={"query": promql}, timeout=timeout
            ) as response:
                body = bytearray()
                # httpx times each read, not the whole response: a server that trickles bytes is
                # cut off here by the deadline.
                for chunk in response.iter_bytes():
                    body += chunk
                    if time.monotonic() > deadline:
                        raise QueryError("timeout", "response still arriving at the deadline")
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise QueryError("bad_response", "response larger than 1 MB")
                if response.status_code != 200:
                    raise QueryError("http_status", f"HTTP {response.status_code}")
                return bytes(body)
        except httpx.TimeoutException as error:
            raise QueryError("timeout", type(error).__name__) from None
        except httpx.HTTPError as error:
            raise QueryError("connection", f"{type(error).__name__}: {error}") from None


def parse_vector(body: bytes) -> list[Sample]:
    """Samples of a Prometheus instant-vector answer; QueryError for anything else."""
    try:
        document = json.loads(body)
        if document.get("status") != "success":
            raise QueryError("bad_response", f"status {document.get('status')!r}")
        data = document["data"]
        if data["resultType"] != "vector":
            raise QueryError("bad_response", f"resultType {data['resultType']!r}")
        return [
            Sample(labels=dict(item["metric"]), value=float(item["value"][1]))
            for item in data["result"]
        ]
    except QueryError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise QueryError("bad_response", f"not a Prometheus vector: {error!r}") from None

"""Clients for what the suites talk to: probe, Prometheus, Alertmanager, webhook, Kafka."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_api_client import PrometheusConnect
from prometheus_client.parser import text_string_to_metric_families

HTTP_TIMEOUT_S = 5.0


@functools.cache
def _scraper() -> httpx.Client:
    """The one client of every scrape: a client costs about 60 ms to build (its TLS context),
    more than a scrape, and polls scrape every half second."""
    return httpx.Client(timeout=HTTP_TIMEOUT_S)


@dataclass(frozen=True)
class ProbeAnswer:
    status_code: int
    body: dict
    elapsed_s: float

    @property
    def ready(self) -> bool:
        return self.status_code == 200

    @property
    def failed_messages(self) -> list[str]:
        return [failed.get("message", "") for failed in self.body.get("failed", [])]

    @property
    def failed_details(self) -> list[str]:
        return [failed.get("detail", "") for failed in self.body.get("failed", [])]

    @property
    def failed_reasons(self) -> set[str]:
        return {failed.get("reason", "") for failed in self.body.get("failed", [])}


class ProbeClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)

    def ready(self) -> ProbeAnswer:
        started = time.monotonic()
        response = self._http.get("/ready")
        return ProbeAnswer(response.status_code, response.json(), time.monotonic() - started)

    def health(self) -> int:
        return self._http.get("/health").status_code

    def status(self) -> dict:
        response = self._http.get("/status")
        response.raise_for_status()
        return response.json()

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, keyed like `name{label="value"}` (labels sorted)."""
        response = self._http.get("/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)


def parse_metrics(text: str) -> dict[str, float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


class PrometheusApi:
    """Instant queries and the alert API of one Prometheus."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connect = PrometheusConnect(url=url, disable_ssl=True)
        self._http = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        """An instant query, now or at the Unix time `at` (several queries at one `at` see
        one instant of the TSDB)."""
        params = {} if at is None else {"time": f"{at:.3f}"}
        return self._connect.custom_query(query=promql, params=params)

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict]:
        """A range query: each series' [unix time, value] pairs from `start` to `end`."""
        answer = self._http.get(
            "/api/v1/query_range",
            params={"query": promql, "start": start, "end": end, "step": f"{step:.3f}"},
        )
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def values(self, promql: str, at: float | None = None) -> list[float]:
        return [float(item["value"][1]) for item in self.query(promql, at)]

    def value(self, promql: str, at: float | None = None) -> float | None:
        """The value of a query that should return at most one series (None when empty)."""
        values = self.values(promql, at)
        if len(values) > 1:
            raise AssertionError(f"{promql} returned {len(values)} series, expected at most one")
        return values[0] if values else None

    def alerts(self) -> list[dict]:
        """Alerts Prometheus holds (pending and firing), from /api/v1/alerts."""
        response = self._http.get("/api/v1/alerts")
        response.raise_for_status()
        return response.json()["data"]["alerts"]

    def alert_state(self, name: str) -> str:
        """'firing', 'pending' or 'inactive' for an alert name (the worst of its series)."""
        states = {a["state"] for a in self.alerts() if a["labels"].get("alertname") == name}
        for state in ("firing", "pending"):
            if state in states:
                return state
        return "inactive"


class AlertmanagerApi:
    """The parts of the Alertmanager v2 API the suites use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)

    def alerts(self, name: str | None = None) -> list[dict]:
        params = {"filter": f'alertname="{name}"'} if name else {}
        response = self._http.get("/api/v2/alerts", params=params)
        response.raise_for_status()
        return response.json()

    def create_silence(self, matchers: dict[str, str], minutes: float, comment: str) -> str:
        now = datetime.now(UTC)
        silence = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in matchers.items()
            ],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
            "createdBy": "crm-cert",
            "comment": comment,
        }
        response = self._http.post("/api/v2/silences", json=silence)
        response.raise_for_status()
        return response.json()["silenceID"]

    def expire_silence(self, silence_id: str) -> None:
        self._http.delete(f"/api/v2/silence/{silence_id}").raise_for_status()

    def active_silences(self) -> set[str]:
        response = self._http.get("/api/v2/silences")
        response.raise_for_status()
        return {s["id"] for s in response.json() if s["status"]["state"] == "active"}

    def cluster_peers(self) -> list[str]:
        """The names of the cluster's peers this Alertmanager sees (itself included)."""
        response = self._http.get("/api/v2/status")
        response.raise_for_status()
        return [peer["name"] for peer in response.json()["cluster"].get("peers") or []]


class WebhookClient:
    """Reads back what Alertmanager delivered to the webhook receiver."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)

    def notifications(self) -> list[dict]:
        response = self._http.get("/alerts")
        response.raise_for_status()
        return response.json()["notifications"]

    def delivered(self, alertname: str, status: str = "firing") -> list[dict]:
        """Each delivered alert of that name and status, with the notification's time."""
        found = []
        for notification in self.notifications():
            for alert in notification["payload"]["alerts"]:
                if alert["labels"].get("alertname") == alertname and alert["status"] == status:
                    found.append(alert | {"received_at": notification["received_at"]})
        return found

    def clear(self) -> None:
        self._http.delete("/alerts").raise_for_status()


class ConsumerControl:
    """Sets the processing delay of one consumer replica, pauses or resumes it, makes it leave
    its group; reads its own account of itself."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)

    def set_delay_ms(self, delay_ms: int) -> None:
        self._http.put("/control", json={"processing_delay_ms": delay_ms}).raise_for_status()

    def set_paused(self, paused: bool) -> None:
        self._http.put("/control", json={"paused": paused}).raise_for_status()

    def leave_group(self) -> None:
        self._http.put("/control", json={"leave_group": True}).raise_for_status()

    def processing_delay_ms(self) -> int:
        response = self._http.get("/control")
        response.raise_for_status()
        return int(response.json()["processing_delay_ms"])

    def rejoin_deadline_s(self) -> float:
        response = self._http.get("/control")
        response.raise_for_status()
        return float(response.json()["rejoin_deadline_s"])

    def in_group(self) -> bool:
        response = self._http.get("/health")
        response.raise_for_status()
        return bool(response.json()["in_group"])

    def client_rebuilds(self) -> float:
        return scrape_metrics(self.url).get("crm_events_consumer_client_rebuilds_total", 0.0)


@functools.cache
def consumer_control(url: str) -> ConsumerControl:
    """The one control client of the consumer replica at `url`, for the whole run."""
    return ConsumerControl(url)


def scrape_metrics(url: str) -> dict[str, float]:
    """Every sample of a component's /metrics (an exporter, an Alertmanager, a consumer)."""
    response = _scraper().get(f"{url}/metrics")
    response.raise_for_status()
    return parse_metrics(response.text)


class EventProducer:
    """Produces CRM events with unique ids in a header; returns the ids Kafka acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                # Long enough to ride out a broker restart in the broker-loss drill.
                "message.timeout.ms": 120_000,
            }
        )

    def produce(
        self,
        count: int,
        key: str | None = None,
        partition: int | None = None,
        prefix: str = "evt",
        flush_timeout_s: float = 60.0,
    ) -> list[str]:
        """Send `count` events and wait for their acknowledgements; return the acked ids.
        Fails unless every event was acknowledged: a test never builds on events Kafka refused."""
        acked: list[str] = []
        failed: list[str] = []
        errors: list[str] = []

        def on_delivery(message_id: str, error: object) -> None:
            (failed if error else acked).append(message_id)
            if error:
                errors.append(str(error))

        for _ in range(count):
            self.send_one(key, partition, prefix, on_delivery)
        remaining = self._producer.flush(flush_timeout_s)
        if remaining or len(acked) != count:
            raise AssertionError(
                f"{len(acked)} of {count} events acknowledged ({remaining} still queued after "
                f"{flush_timeout_s}s, {len(failed)} refused: {errors[:3]})"
            )
        return acked

    def send_one(
        self,
        key: str | None,
        partition: int | None,
        prefix: str,
        on_delivery: Callable[[str, object], None],
    ) -> str:
        """Queue one event; `on_delivery(id, error)` runs when Kafka acknowledges or gives up."""
        message_id = f"{prefix}-{uuid.uuid4().hex[:12]}"
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=f'{{"id":"{message_id}","type":"crm.event"}}'.encode(),
                    key=key.encode() if key else None,
                    headers={"id": message_id},
                    on_delivery=lambda error, _message: on_delivery(message_id, error),
                    partition=-1 if partition is None else partition,  # -1: the partitioner
                )
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain
        self._producer.poll(0)
        return message_id

    def flush(self, timeout_s: float) -> int:
        return self._producer.flush(timeout_s)


def ensure_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create the topic unless it exists."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=timeout_s).topics:
        return
    future = admin.create_topics(
        [NewTopic(topic, partitions, replication_factor, config=config or {})]
    )
    try:
        future[topic].result(timeout=timeout_s)
    except KafkaException as error:
        if "TOPIC_ALREADY_EXISTS" not in str(error):
            raise

"""Consume, process (with a delay drills can set), commit, record: one message at a time.

Drills can also pause consumption: the replica stays in the group (it keeps polling, so it
heartbeats and serves rebalances) but fetches nothing, as a consumer blocked on a downstream
dependency does.

A replica that stays out of its group for a whole rejoin deadline builds a new Kafka client.
librdkafka rejoins on its own after a session timeout, but not always: after a broker loss a
replica was seen polling, healthy by its own account, and out of its group for good (docs/design.md,
section 12). A process restart cured it; a new client is the same cure without the restart.

At-least-once: the offset of a message is committed only after it was processed, so a crash
between the two replays the message instead of losing it. Every processed message is logged as
one JSON line with its id, which is how the drills count deliveries.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import waitress
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from flask import Flask, Response, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

from probe.logs import configure_logging

log = logging.getLogger("consumer")
disable_created_metrics()

SESSION_TIMEOUT_MS = 10_000
SESSION_TIMEOUT_S = SESSION_TIMEOUT_MS / 1000
# Three session timeouts out of the group: longer than a normal rejoin after an outage (the
# session times out, the coordinator comes back, the join takes a few seconds), short enough to
# be back before the group's readiness window notices one member missing for long.
DEFAULT_REJOIN_DEADLINE_S = 3 * SESSION_TIMEOUT_S


@dataclass(frozen=True)
class ConsumerSettings:
    bootstrap_servers: str
    group: str
    topic: str
    metrics_port: int
    processing_delay_ms: int
    instance: str
    # PUT /control changes how the consumer behaves: drills only, never on by default.
    control_enabled: bool
    rejoin_deadline_s: float = DEFAULT_REJOIN_DEADLINE_S

    @classmethod
    def from_env(cls) -> ConsumerSettings:
        return cls(
            bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "kafka:19092"),
            group=os.environ.get("CONSUMER_GROUP", "crm-events-sse"),
            topic=os.environ.get("TOPIC", "crm.events"),
            metrics_port=int(os.environ.get("METRICS_PORT", "9400")),
            processing_delay_ms=int(os.environ.get("PROCESSING_DELAY_MS", "0")),
            instance=os.environ.get("INSTANCE", socket.gethostname()),
            control_enabled=os.environ.get("CONTROL_ENABLED", "false").lower() == "true",
            rejoin_deadline_s=rejoin_deadline(os.environ.get("REJOIN_DEADLINE_S")),
        )


def rejoin_deadline(value: str | None) -> float:
    """REJOIN_DEADLINE_S, refused unless it is a number of seconds above one session timeout: a
    shorter deadline would rebuild clients that are rejoining normally."""
    if value is None or value == "":
        return DEFAULT_REJOIN_DEADLINE_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > SESSION_TIMEOUT_S:
        raise ValueError(
            f"REJOIN_DEADLINE_S={value!r}: give seconds above the session timeout "
            f"({SESSION_TIMEOUT_S:g} s), e.g. {DEFAULT_REJOIN_DEADLINE_S:g}"
        )
    return seconds


class MembershipWatch:
    """How long this replica has been out of its group, and whether that is past the deadline.

    Out of the group means no member id: librdkafka clears it when the session times out and
    when the replica leaves, and sets it when a join succeeds. A member that is assigned nothing
    (more replicas than partitions) is in its group."""

    def __init__(self, deadline_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self.deadline_s = deadline_s
        self._now = now
        self._out_since: float | None = now()  # a new client has not joined yet

    @property
    def in_group(self) -> bool:
        return self._out_since is None

    def out_for_s(self) -> float:
        return 0.0 if self._out_since is None else self._now() - self._out_since

    def overdue(self, member_id: str | None) -> bool:
        """Record what the client reports; True once it has been out for the whole deadline."""
        if member_id:
            self._out_since = None
            return False
        if self._out_since is None:
            self._out_since = self._now()
        return self.out_for_s() >= self.deadline_s

    def new_client(self) -> None:
        """A new client starts out of the group, with a whole deadline to join."""
        self._out_since = self._now()


class ConsumerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["topic", "partition"]
        self.processed = Counter(
            "crm_events_consumer_messages_processed",
            "Messages processed and committed.",
            labels,
            registry=self.registry,
        )
        self.bytes = Counter(
            "crm_events_consumer_bytes_processed",
            "Bytes of message values processed.",
            labels,
            registry=self.registry,
        )
        self.last_processed = Gauge(
            "crm_events_consumer_last_processed_timestamp_seconds",
            "Unix time the last message of a partition was processed.",
            labels,
            registry=self.registry,
        )
        self.delay = Gauge(
            "crm_events_consumer_processing_delay_seconds",
            "Processing delay applied to every message.",
            registry=self.registry,
        )
        self.assigned = Gauge(
            "crm_events_consumer_assigned_partitions",
            "Partitions assigned to this consumer.",
            registry=self.registry,
        )
        self.client_rebuilds = Counter(
            "crm_events_consumer_client_rebuilds",
            "Kafka clients rebuilt because the replica was out of its group past the deadline.",
            registry=self.registry,
        )


class CrmEventsConsumer:
    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self.metrics = ConsumerMetrics()
        self.stopping = threading.Event()
        self.consuming = threading.Event()  # set while the consume loop runs
        self._delay_s = settings.processing_delay_ms / 1000
        self.metrics.delay.set(self._delay_s)
        self.paused = False  # set from the control thread, applied by the consume loop
        self._paused_applied = False
        self.leave_requested = False  # set from the control thread, applied by the consume loop
        self.membership = MembershipWatch(settings.rejoin_deadline_s)
        self._kafka = self._new_client()

    def _new_client(self) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap_servers,
                "group.id": self.settings.group,
                "group.protocol": "classic",
                "client.id": self.settings.instance,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": 1_000,
            }
        )

    @property
    def delay_ms(self) -> int:
        return round(self._delay_s * 1000)

    @delay_ms.setter
    def delay_ms(self, value: int) -> None:
        self._delay_s = value / 1000
        self.metrics.delay.set(self._delay_s)
        log.info("processing delay set", extra={"event": "delay", "delay_ms": value})

    def _subscribe(self) -> None:
        self._kafka.subscribe(
            [self.settings.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def run(self) -> None:
        self._subscribe()
        log.info("consuming", extra={"event": "start", "topic": self.settings.topic})
        self.consuming.set()
        try:
            while not self.stopping.is_set():
                self._apply_leave()
                if self.membership.overdue(self._kafka.memberid()):
                    self._rebuild_client()
                self._apply_pause()
                message = self._kafka.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning(
                            "consume error", extra={"event": "kafka_error", "error": str(error)}
                        )
                    continue
                if self._paused_applied:
                    # Fetched before the pause took effect: leave it for after the resume.
                    self._rewind(message)
                    continue
                self._process(message)
        finally:
            self.consuming.clear()
            # close() leaves the group at once, so the others rebalance without waiting for the
            # session timeout. Offsets are already committed message by message.
            self._kafka.close()
            log.info("left the group", extra={"event": "stop"})

    def _apply_leave(self) -> None:
        """Leave the group and stay out, the consume loop running on: a client whose rejoin is
        stuck, made on purpose (drills only). The rejoin deadline is what brings it back."""
        if not self.leave_requested:
            return
        self.leave_requested = False
        self._kafka.unsubscribe()
        log.info("left the group on request", extra={"event": "leave_group"})

    def _rebuild_client(self) -> None:
        out_for_s = self.membership.out_for_s()
        log.warning(
            "out of the group past the rejoin deadline: building a new client",
            extra={
                "event": "client_rebuilt",
                "out_for_s": round(out_for_s, 3),
                "deadline_s": self.membership.deadline_s,
            },
        )
        old = self._kafka
        # close() of a client whose group state is stuck may itself never return: give it one
        # session timeout in a thread of its own, then go on without it.
        closing = threading.Thread(target=old.close, daemon=True, name="close-stuck-client")
        closing.start()
        closing.join(SESSION_TIMEOUT_S)
        if closing.is_alive():
            log.warning("the old client did not close", extra={"event": "close_timed_out"})
        self._kafka = self._new_client()
        self.membership.new_client()
        self._subscribe()
        self.metrics.client_rebuilds.inc()

    def _apply_pause(self) -> None:
        """Pause or resume the assigned partitions from the consume loop, which owns the
        client; partitions assigned while paused are paused on assignment (_on_assign)."""
        wanted = self.paused
        if wanted == self._paused_applied:
            return
        assignment = self._kafka.assignment()
        if assignment:
            (self._kafka.pause if wanted else self._kafka.resume)(assignment)
        self._paused_applied = wanted
        log.info("paused" if wanted else "resumed", extra={"event": "pause", "paused": wanted})

    def _rewind(self, message: Message) -> None:
        partition, offset = message.partition(), message.offset()
        if partition is None or offset is None:
            return
        try:
            self._kafka.seek(TopicPartition(message.topic() or "", partition, offset))
        except KafkaException as error:
            log.warning("rewind failed", extra={"event": "rewind_failed", "error": str(error)})

    def _process(self, message: Message) -> None:
        if self._delay_s:
            self.stopping.wait(self._delay_s)
        try:
            self._kafka.commit(message=message, asynchronous=False)
        except KafkaException as error:
            # The broker is unreachable or the group is rebalancing: the offset stays where it
            # was and the message is delivered again later (at-least-once), never lost.
            log.warning("commit failed", extra={"event": "commit_failed", "error": str(error)})
        topic, partition = message.topic() or "", str(message.partition())
        value = message.value() or b""
        self.metrics.processed.labels(topic, partition).inc()
        self.metrics.bytes.labels(topic, partition).inc(len(value))
        self.metrics.last_processed.labels(topic, partition).set(time.time())
        header = dict(message.headers() or []).get("id")
        message_id = header.decode() if isinstance(header, bytes) else header
        log.info(
            "processed",
            extra={
                "event": "processed",
                "id": message_id,
                "partition": message.partition(),
                "offset": message.offset(),
            },
        )

    def _on_assign(self, consumer: Consumer, partitions: list) -> None:
        self.metrics.assigned.set(len(partitions))
        self._commit_starting_positions(consumer, partitions)
        if self._paused_applied and partitions:
            consumer.pause(partitions)
        # Series from the first assignment on, at 0: rates over them are 0, not absent.
        for assigned in partitions:
            labels = (assigned.topic, str(assigned.partition))
            self.metrics.processed.labels(*labels)
            self.metrics.bytes.labels(*labels)
        log.info(
            "assigned", extra={"event": "assigned", "partitions": [p.partition for p in partitions]}
        )

    def _commit_starting_positions(self, consumer: Consumer, partitions: list) -> None:
        """Commit where the group starts on every partition it has never committed on, as
        Kafka's console consumer does: the exporter publishes lag only for partitions with a
        committed offset, so without this a fresh group on a quiet topic has no lag series and
        the readiness probe no data to call it healthy (docs/design.md, section 4)."""
        try:
            committed = consumer.committed(partitions, timeout=10)
            starts = [
                TopicPartition(
                    p.topic, p.partition, consumer.get_watermark_offsets(p, timeout=10)[0]
                )
                for p in committed
                if p.offset < 0  # OFFSET_INVALID: nothing committed yet
            ]
            if starts:
                consumer.commit(offsets=starts, asynchronous=False)
                log.info(
                    "starting positions committed",
                    extra={
                        "event": "committed_start",
                        "partitions": {p.partition: p.offset for p in starts},
                    },
                )
        except KafkaException as error:
            # Not fatal: the first processed message commits its partition anyway.
            log.warning(
                "starting positions not committed",
                extra={"event": "commit_start_failed", "error": str(error)},
            )

    def _on_revoke(self, consumer: Consumer, partitions: list) -> None:
        self.metrics.assigned.set(0)
        log.info(
            "revoked", extra={"event": "revoked", "partitions": [p.partition for p in partitions]}
        )


CONTROL_FIELDS = {"processing_delay_ms", "paused", "leave_group"}


def control_app(consumer: CrmEventsConsumer) -> Flask:
    """/metrics for Prometheus; /health for this replica's own liveness and readiness; /control
    to read and (drills only) set the processing delay, pause consumption and leave the group."""
    app = Flask("consumer")

    @app.get("/health")
    def health() -> tuple[Response, int]:
        # This replica, not the group: the group's health is the readiness probe's /ready, which
        # gates rollouts in a step of their own (docs/HEALTH_PROBE_INTEGRATION.md).
        # in_group is information, not a verdict: the consume loop itself rebuilds a client
        # that stays out of the group past its deadline.
        consuming = consumer.consuming.is_set() and not consumer.stopping.is_set()
        return jsonify(
            consuming=consuming,
            in_group=consumer.membership.in_group,
            instance=consumer.settings.instance,
        ), (200 if consuming else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(consumer.metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/control")
    def read_control() -> Response:
        return jsonify(
            processing_delay_ms=consumer.delay_ms,
            paused=consumer.paused,
            rejoin_deadline_s=consumer.membership.deadline_s,
            instance=consumer.settings.instance,
        )

    @app.put("/control")
    def write_control() -> tuple[Response, int]:
        if not consumer.settings.control_enabled:
            return jsonify(error="control is disabled (CONTROL_ENABLED=true enables it)"), 403
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body.keys() & CONTROL_FIELDS:
            return jsonify(error="send processing_delay_ms, paused, leave_group or several"), 400
        unknown = sorted(body.keys() - CONTROL_FIELDS)
        if unknown:
            return jsonify(error=f"unknown fields: {', '.join(unknown)}"), 400
        delay = body.get("processing_delay_ms", consumer.delay_ms)
        # bool is an int in Python: refuse true/false as a delay.
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 60_000:
            return jsonify(error="processing_delay_ms must be an integer from 0 to 60000"), 400
        paused = body.get("paused", consumer.paused)
        if not isinstance(paused, bool):
            return jsonify(error="paused must be true or false"), 400
        leave = body.get("leave_group", False)
        if leave is not True and "leave_group" in body:
            return jsonify(error="leave_group can only be true"), 400
        if delay != consumer.delay_ms:
            consumer.delay_ms = delay
        consumer.paused = paused
        if leave:
            consumer.leave_requested = True
        return jsonify(
            processing_delay_ms=consumer.delay_ms,
            paused=consumer.paused,
            leave_group=bool(leave),
        ), 200

    return app


def main() -> int:
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        settings = ConsumerSettings.from_env()
    except ValueError as error:
        log.error("bad setting", extra={"event": "bad_setting", "error": str(error)})
        return 2
    consumer = CrmEventsConsumer(settings)
    signal.signal(signal.SIGTERM, lambda *_: consumer.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: consumer.stopping.set())
    server = waitress.create_server(
        control_app(consumer), host="0.0.0.0", port=settings.metrics_port, threads=2
    )
    threading.Thread(target=server.run, daemon=True, name="metrics").start()
    consumer.run()
    return 0

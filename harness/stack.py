"""The stack under certification: started in containers for one run, or an existing deployment.

Both kinds give the suites the same things: endpoints on 127.0.0.1 (or the deployment's), the
time scale, and named faults used as context managers that always roll back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

import docker
import httpx
from testcontainers.core.network import Network

from harness import services as svc
from harness.clients import (
    ProbeClient,
    PrometheusApi,
    consumer_control,
    ensure_topic,
    scrape_metrics,
)
from harness.contract import CHECKLIST, Clock, Contract
from harness.contract import load as load_contract
from harness.images import ImageSet
from harness.settings import Endpoints
from harness.timescale import render_alertmanager_config, render_prometheus_config, render_rules
from harness.waits import console, wait_until

# Inside the toxiproxy container: the access route to the internal-only probe, and the route
# from a drill probe to Prometheus that can be slowed down.
PROBE_ACCESS_PORT = 19011
PROMETHEUS_PROXY_PORT = 19090
STACK_START_TIMEOUT_S = 180
MACHINE_LOCK = Path(tempfile.gettempdir()) / "crm-cert-stack.lock"


@dataclass(frozen=True)
class FreshStart:
    """How the stack came up with no event produced: the first minutes of a new deployment."""

    ready_after_join_s: float  # /ready 200 after kafka_exporter reported the whole group
    firing: list[str]  # alerts firing at that moment


class FaultUnavailable(Exception):
    """The fault cannot be injected here (external mode without a command or an opt-in)."""


class Stack:
    """What both kinds of stack offer the suites."""

    mode: str
    endpoints: Endpoints
    contract: Contract
    clock: Clock

    @property
    def scale(self) -> Fraction:
        return self.clock.scale

    def seconds(self, production: float | str) -> float:
        """A production duration (seconds, or a duration such as "12m") as it runs here."""
        return self.clock.seconds(production)

    @property
    def scrape_s(self) -> float:
        return self.seconds(self.contract.scrape_s)

    @property
    def window_s(self) -> float:
        return self.seconds(self.contract.window_s)

    @property
    def evaluation_s(self) -> float:
        return self.seconds(self.contract.evaluation_s)

    @property
    def probe_ttl_s(self) -> float:
        return self.seconds(self.contract.probe_cache_ttl_s)

    @property
    def answer_lag_s(self) -> float:
        """The longest from a change in what kafka_exporter serves to a /ready answer showing
        it: a scrape, a rule evaluation, the probe's cache TTL and its worst evaluation, plus a
        second for the host."""
        return (
            self.scrape_s
            + self.evaluation_s
            + self.probe_ttl_s
            + self.contract.probe_worst_case_s
            + 1
        )

    def alert_for_s(self, alert: str) -> float:
        """An alert's `for:` as it runs here."""
        return self.seconds(self.contract.alert(alert).for_s)

    def hot_key_delay_ms(self, events: int) -> int:
        """A per-message processing delay slow enough that a hot-key backlog of `events`
        outlives the skew alert's for: and the probe's window, with a margin."""
        drain_s = self.alert_for_s(CHECKLIST.skew_alert) + self.window_s + 20 * self.scrape_s + 20
        return max(50, round(drain_s / events * 1000))

    def members_series(self) -> str:
        return f'kafka_consumergroup_members{{consumergroup="{self.contract.group}"}}'

    def fault(self, name: str, **params: object) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def group_members(self) -> float | None:
        """Members of the group now: from kafka_exporter itself when reachable (no scrape
        delay), else as Prometheus last scraped it."""
        if self.endpoints.exporter_url:
            return scrape_metrics(self.endpoints.exporter_url).get(self.members_series())
        return PrometheusApi(self.endpoints.prometheus_url).value(self.members_series())

    def stop(self) -> None:
        """Release what the stack holds."""


class ContainerStack(Stack):
    """The whole stack in containers on one docker network, removed at the end of the run."""

    mode = "containers"

    def __init__(self, images: ImageSet, scale: Fraction, contract: Contract | None = None) -> None:
        self.images = images
        self.clock = Clock(scale)
        self.contract = contract or load_contract()
        self.run_id = uuid.uuid4().hex[:8]
        self.workdir = Path(tempfile.mkdtemp(prefix=f"crm-cert-{self.run_id}-"))
        self.network = Network(
            docker_network_kw={"labels": {svc.LABEL: self.run_id, svc.OWNER_LABEL: svc.owner()}}
        )
        self.run = svc.Run(
            self.run_id, self.network, self.contract, self.clock, self.workdir / "rendered"
        )
        self.containers: dict[str, svc.StackContainer] = {}
        self.startup_s: dict[str, float] = {}
        self.fresh: FreshStart | None = None
        self._docker = docker.from_env()
        self._lock_file: IO[str] | None = None

    # -- start and stop -------------------------------------------------------------------

    def start(self) -> ContainerStack:
        self._hold_machine_lock()
        self._remove_abandoned()
        started = time.monotonic()
        try:
            self._start()
        except BaseException as error:
            # The containers are about to go: keep what they said in the error.
            for service, text in self.all_logs(tail=40).items():
                error.add_note(f"--- {service} (last 40 lines) ---\n{text}")
            self.stop()
            raise
        self.startup_s["total"] = time.monotonic() - started
        console.print(
            f"stack {self.run_id} ready in {self.startup_s['total']:.1f}s "
            f"(time scale {self.scale}): "
            + ", ".join(f"{k} {v:.1f}s" for k, v in self.startup_s.items() if k != "total"),
            highlight=False,
        )
        return self

    def _start(self) -> None:
        self._render_configs()
        self.network.create()
        image, run, contract = self.images, self.run, self.contract
        self._start_together(
            *(svc.KafkaBroker(image.kafka, run, name) for name in contract.replicas("KAFKA")),
            *(
                svc.Prometheus(image.prometheus, run, name)
                for name in contract.replicas("PROMETHEUS")
            ),
            *(
                svc.Alertmanager(image.alertmanager, run, name)
                for name in contract.replicas("ALERTMANAGER")
            ),
            svc.AlertWebhook(image.app, run),
            svc.Toxiproxy(image.toxiproxy, run, [PROBE_ACCESS_PORT, PROMETHEUS_PROXY_PORT]),
        )
        ensure_topic(
            self.kafka_bootstrap,
            contract.topic,
            contract.partitions,
            contract.replication_factor,
            contract.topic_config,
        )
        self._start_together(
            *(
                svc.KafkaExporter(image.kafka_exporter, run, name)
                for name in contract.replicas("KAFKA_EXPORTER")
            ),
            svc.HealthProbe(image.app, run),
            *(
                svc.CrmEventsConsumer(image.app, run, i)
                for i in range(1, contract.consumer_count + 1)
            ),
        )
        self._add_proxy("probe", PROBE_ACCESS_PORT, f"{svc.PROBE}:{svc.PROBE_PORT}")
        self._add_proxy(
            "prometheus", PROMETHEUS_PROXY_PORT, f"{svc.PROMETHEUS}:{svc.Prometheus.PORT}"
        )
        self.endpoints = self._endpoints()
        self._wait_until_healthy()

    @property
    def kafka_bootstrap(self) -> str:
        """Every Kafka node's host listener: clients reach the cluster while any one is up."""
        brokers = [self.containers[name] for name in self.contract.replicas("KAFKA")]
        return ",".join(b.get_bootstrap_server() for b in brokers if isinstance(b, svc.KafkaBroker))

    def url(self, service: str) -> str:
        """A replica's main port on 127.0.0.1 (Prometheus, Alertmanager, kafka_exporter)."""
        container = self.containers[service]
        assert isinstance(container, svc.Prometheus | svc.Alertmanager | svc.KafkaExporter), service
        return container.get_url(container.PORT)

    def _start_together(self, *containers: svc.StackContainer) -> None:
        """Start independent services in parallel; each start waits on its own readiness."""

        def start(container: svc.StackContainer) -> None:
            began = time.monotonic()
            self.containers[container.service] = container
            container.start()
            self.startup_s[container.service] = time.monotonic() - began
            console.print(
                f"  {container.service} ready ({self.startup_s[container.service]:.1f}s)",
                highlight=False,
                soft_wrap=True,
            )

        with ThreadPoolExecutor(max_workers=len(containers)) as pool:
            for future in [pool.submit(start, c) for c in containers]:
                future.result()

    def _wait_until_healthy(self) -> None:
        """Wait until the fresh stack, with no event produced yet, reports what a healthy stack
        reports; note how long /ready took after the consumers joined, and what was firing."""
        contract = self.contract
        prometheus = PrometheusApi(self.endpoints.prometheus_url)
        probe = ProbeClient(self.endpoints.probe_url)
        wait_until(
            f"kafka_exporter to report {contract.group} with {contract.consumer_count} members",
            lambda: self.group_members() == contract.consumer_count,
            timeout=STACK_START_TIMEOUT_S,
        )
        # Imported here: the timeline module builds on this one.
        from harness.timeline import Episode

        # No floor: the exporter may have been scraped with the whole group before it is seen
        # here. The episode is part of the stack's start-up time.
        episode = Episode("fresh stack, no event produced", self, probe)
        joined = episode.mark(f"{contract.consumer_count} consumers joined")
        ready = episode.watch_until("/ready 200", lambda m: m.ready, timeout=STACK_START_TIMEOUT_S)
        self.fresh = FreshStart(
            ready_after_join_s=ready.t - joined,
            firing=sorted(
                alert["labels"]["alertname"]
                for alert in prometheus.alerts()
                if alert["state"] == "firing"
            ),
        )
        rules = contract.recording_rules

        def missing() -> list[str]:
            return [rule for rule in rules if not prometheus.query(rule)]

        wait_until(
            f"series for all {len(rules)} recording rules in Prometheus",
            lambda: not missing(),
            timeout=STACK_START_TIMEOUT_S,
            describe=lambda: "missing: " + ", ".join(missing()),
        )

    def _hold_machine_lock(self) -> None:
        """One stack at a time on a machine: timings mean nothing when two share the cores.
        A second run waits here until the first one's stack is gone."""
        self._lock_file = MACHINE_LOCK.open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print(f"another run holds {MACHINE_LOCK}: waiting for its stack to go")
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)

    def _remove_abandoned(self) -> None:
        """Remove what earlier runs on this host left behind when they were killed (their owner
        process is gone); never anything of a live run or of anyone else."""
        host = socket.gethostname()

        def abandoned(labels: dict[str, str] | None) -> bool:
            owner_host, _, pid = (labels or {}).get(svc.OWNER_LABEL, "").partition(":")
            return owner_host == host and pid.isdigit() and not _alive(int(pid))

        for container in self._docker.containers.list(all=True, filters={"label": svc.OWNER_LABEL}):
            if abandoned(container.labels):
                console.print(f"removing {container.name}: left behind by a killed run")
                container.remove(force=True, v=True)
        for network in self._docker.networks.list(filters={"label": svc.OWNER_LABEL}):
            if abandoned(network.attrs.get("Labels")):
                network.remove()

    def stop(self) -> None:
        """Remove every container and the network of this run, found by the run's label."""
        for container in self._docker.containers.list(
            all=True, filters={"label": f"{svc.LABEL}={self.run_id}"}
        ):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
        for network in self._docker.networks.list(filters={"label": f"{svc.LABEL}={self.run_id}"}):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the machine lock
            self._lock_file = None

    # -- configuration --------------------------------------------------------------------

    def _render_configs(self) -> None:
        """Time-scaled copies of the config files Prometheus and Alertmanager mount."""
        source, rendered, scale = self.contract.stack_dir, self.run.rendered, self.scale
        rules = rendered / "prometheus" / "rules"
        rules.mkdir(parents=True)
        (rendered / "alertmanager").mkdir()
        for config in sorted((source / "prometheus").glob("prometheus*.yml")):  # each topology's
            (rendered / "prometheus" / config.name).write_text(
                render_prometheus_config(config.read_text(), scale)
            )
        for rule_file in sorted((source / "prometheus" / "rules").glob("*.yml")):
            (rules / rule_file.name).write_text(render_rules(rule_file.read_text(), scale))
        (rendered / "alertmanager" / "alertmanager.yml").write_text(
            render_alertmanager_config(
                (source / "alertmanager" / "alertmanager.yml").read_text(), scale
            )
        )
        # Readable by the non-root users the images run as.
        for path in [self.workdir, *self.workdir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

    def _endpoints(self) -> Endpoints:
        c, contract = self.containers, self.contract
        return Endpoints(
            kafka_bootstrap=self.kafka_bootstrap,
            prometheus_url=self.url(contract.replicas("PROMETHEUS")[0]),
            alertmanager_url=self.url(contract.replicas("ALERTMANAGER")[0]),
            probe_url=c[svc.TOXIPROXY].get_url(PROBE_ACCESS_PORT),
            exporter_url=self.url(contract.replicas("KAFKA_EXPORTER")[0]),
            webhook_url=c[svc.WEBHOOK].get_url(svc.WEBHOOK_PORT),
            consumer_urls={
                name: container.get_url(svc.CONSUMER_METRICS_PORT)
                for name, container in c.items()
                if name.startswith(svc.CONSUMERS)
            },
        )

    # -- toxiproxy ------------------------------------------------------------------------

    @property
    def _toxiproxy_api(self) -> str:
        return self.containers[svc.TOXIPROXY].get_url(svc.Toxiproxy.API_PORT)

    def _add_proxy(self, name: str, listen_port: int, upstream: str) -> None:
        response = httpx.post(
            f"{self._toxiproxy_api}/proxies",
            json={
                "name": name,
                "listen": f"0.0.0.0:{listen_port}",
                "upstream": upstream,
                "enabled": True,
            },
            timeout=5,
        )
        response.raise_for_status()

    def add_latency(self, proxy: str, latency_ms: int) -> None:
        httpx.post(
            f"{self._toxiproxy_api}/proxies/{proxy}/toxics",
            json={
                "name": "latency",
                "type": "latency",
                "stream": "downstream",
                "attributes": {"latency": latency_ms, "jitter": 0},
            },
            timeout=5,
        ).raise_for_status()

    def remove_latency(self, proxy: str) -> None:
        response = httpx.delete(f"{self._toxiproxy_api}/proxies/{proxy}/toxics/latency", timeout=5)
        if response.status_code != 404:
            response.raise_for_status()

    # -- service control (fault hooks) ----------------------------------------------------

    def docker_container(self, service: str):
        return self.containers[service].get_wrapped_container()

    def stop_services(self, *services: str) -> None:
        """Stop without removing, all at once: the containers keep their state and host ports."""
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            list(pool.map(lambda name: self.docker_container(name).stop(timeout=10), services))

    def start_services(self, *services: str) -> None:
        """Start stopped services together, then wait for each one's readiness."""
        for service in services:
            self.docker_container(service).start()
        for service in services:
            self.wait_service_ready(service)

    def pause_service(self, service: str) -> None:
        self.docker_container(service).pause()

    def unpause_service(self, service: str) -> None:
        self.docker_container(service).unpause()

    def wait_service_ready(self, service: str) -> None:
        nodes = self.contract.replicas("KAFKA")
        if service in nodes:
            from confluent_kafka.admin import AdminClient

            admin = AdminClient({"bootstrap.servers": self.endpoints.kafka_bootstrap})

            def cluster_whole() -> bool:
                metadata = admin.list_topics(timeout=2)
                return self.contract.topic in metadata.topics and len(metadata.brokers) == len(
                    nodes
                )

            wait_until(
                f"Kafka to list the topic and all {len(nodes)} brokers again",
                cluster_whole,
                timeout=svc.STARTUP_TIMEOUT_S,
            )
            return
        container = self.containers[service]
        if container._wait_strategy is not None:  # the wait it declared at first start
            container._wait_strategy.wait_until_ready(container)

    def logs(self, service: str, tail: int = 200) -> str:
        try:
            return self.docker_container(service).logs(tail=tail).decode(errors="replace")
        except docker.errors.NotFound:
            return "(container gone)"

    def processed_ids(self, service: str, prefix: str) -> list[str]:
        """Ids of the events a consumer logged as processed (one JSON line each), in order."""
        ids = []
        for line in self.docker_container(service).logs().decode(errors="replace").splitlines():
            if '"event": "processed"' not in line:
                continue
            with contextlib.suppress(ValueError):
                message_id = json.loads(line).get("id") or ""
                if message_id.startswith(prefix):
                    ids.append(message_id)
        return ids

    def consumed_ids(self, prefix: str, services: Iterable[str] | None = None) -> list[str]:
        """Ids the consumers (default: the deployed replicas) logged as processed, in order."""
        chosen = self.contract.consumer_services if services is None else services
        return [i for service in chosen for i in self.processed_ids(service, prefix)]

    def all_logs(self, tail: int = 80) -> dict[str, str]:
        return {service: self.logs(service, tail) for service in self.containers}

    # -- extra containers for drills ------------------------------------------------------

    def start_probe(self, name: str, **env: str) -> ProbeClient:
        """A second probe on the stack network (published on 127.0.0.1), e.g. with other queries."""
        probe = svc.DrillProbe(
            self.images.app, self.run, name, svc.scaled_probe_env(self.run, **env)
        )
        self._start_together(probe)
        return ProbeClient(probe.get_url(svc.PROBE_PORT))

    def start_grafana(self) -> str:
        """Grafana on the stack network with the stack's provisioning; its URL on 127.0.0.1."""
        assert self.images.grafana, "no Grafana image in this image set"
        self._start_together(svc.Grafana(self.images.grafana, self.run))
        return self.containers[svc.GRAFANA].get_url(svc.Grafana.PORT)

    def start_consumer(self, index: int) -> str:
        consumer = svc.CrmEventsConsumer(self.images.app, self.run, index)
        self._start_together(consumer)
        url = consumer.get_url(svc.CONSUMER_METRICS_PORT)
        self.endpoints.consumer_urls[consumer.service] = url
        return consumer.service

    def remove(self, service: str) -> None:
        container = self.containers.pop(service)
        container.get_wrapped_container().remove(force=True, v=True)
        self.endpoints.consumer_urls.pop(service, None)

    # -- named faults ---------------------------------------------------------------------

    @contextlib.contextmanager
    def fault(self, name: str, **params: object) -> Iterator[None]:
        """Inject a named fault; restore it on exit, whatever happened inside."""
        inject, restore = self._faults(str(params.get("service", "")))[name]
        try:
            inject(**params)
            yield
        finally:
            restore()

    def _faults(self, service: str) -> dict[str, tuple[Callable[..., None], Callable[[], None]]]:
        """Each fault's inject and restore; `service` is the replica `replica-down` names."""
        consumers = list(self.contract.consumer_services)

        def outage(*services: str) -> tuple[Callable[..., None], Callable[[], None]]:
            return (lambda **_: self.stop_services(*services)), (
                lambda: self.start_services(*services)
            )

        replicas = self.contract.replicas
        return {
            "one-consumer-down": outage(consumers[0]),
            "consumers-down": outage(*consumers),
            # Every replica: the component as a whole is down, in either topology.
            "prometheus-down": outage(*replicas("PROMETHEUS")),
            "exporter-down": outage(*replicas("KAFKA_EXPORTER")),
            "kafka-down": outage(*replicas("KAFKA")),
            # One replica of the HA topology: `service` names it (kafka-2, prometheus-2, ...).
            "replica-down": (
                lambda kill=False, **_: (
                    self.docker_container(service).kill() if kill else self.stop_services(service)
                ),
                lambda: self.start_services(service),
            ),
            "prometheus-slow": (
                lambda latency_ms=3000, **_: self.add_latency("prometheus", int(latency_ms)),
                lambda: self.remove_latency("prometheus"),
            ),
            "consumers-slow": (
                lambda delay_ms=250, **_: self._set_delays(int(delay_ms)),
                lambda: self._set_delays(0),
            ),
            "consumers-paused": (
                lambda **_: self._set_paused(True),
                lambda: self._set_paused(False),
            ),
            # Stopped, then replaced by a new container of the same definition: a Prometheus
            # rescheduled without its volume.
            "prometheus-empty-tsdb": (
                lambda **_: self.stop_services(svc.PROMETHEUS),
                self._replace_prometheus,
            ),
        }

    def _set_delays(self, delay_ms: int) -> None:
        for url in self.endpoints.consumer_urls.values():
            consumer_control(url).set_delay_ms(delay_ms)

    def _set_paused(self, paused: bool) -> None:
        for url in self.endpoints.consumer_urls.values():
            consumer_control(url).set_paused(paused)

    def _replace_prometheus(self) -> None:
        """Every replica, as if all were rescheduled without their volume."""
        replacements = []
        for service in self.contract.replicas("PROMETHEUS"):
            old = self.containers.pop(service)
            old.get_wrapped_container().remove(force=True, v=True)
            new = svc.Prometheus(self.images.prometheus, self.run, service)
            new.ports = old.ports  # the suites and the timeline keep their URL
            replacements.append(new)
        self._start_together(*replacements)


class ExternalStack(Stack):
    """An existing deployment: its endpoints, real durations unless told otherwise, and faults
    only through the user's own commands, only with an explicit opt-in."""

    mode = "external"

    def __init__(
        self,
        endpoints: Endpoints,
        scale: Fraction,
        allow_destructive: bool,
        fault_commands: dict[str, dict[str, str]],
    ) -> None:
        self.endpoints = endpoints
        self.clock = Clock(scale)
        self.contract = load_contract()
        self.allow_destructive = allow_destructive
        self.fault_commands = fault_commands

    @contextlib.contextmanager
    def fault(self, name: str, **params: object) -> Iterator[None]:
        if not self.allow_destructive:
            raise FaultUnavailable(f"fault {name!r} needs --allow-destructive in external mode")
        commands = self.fault_commands.get(name, {})
        if "inject" not in commands or "restore" not in commands:
            raise FaultUnavailable(
                f"fault {name!r} needs --fault-command {name}:inject=... and {name}:restore=..."
            )
        try:
            run_command(commands["inject"])
            yield
        finally:
            run_command(commands["restore"])


def run_command(command: str, timeout_s: float = 300) -> None:
    """Run a user-given fault command; fail with its output when it fails."""
    console.print(f"running: {command}", highlight=False)
    result = subprocess.run(
        shlex.split(command), capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if result.returncode != 0:
        raise AssertionError(
            f"fault command failed ({result.returncode}): {command}\n{result.stdout}{result.stderr}"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

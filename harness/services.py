"""One small class per stack service, each built from its definition in stack/compose.yaml.

What runs is what is deployed (docs/design.md, "What is certified is what is deployed"): a
container takes its command, environment, CPU and memory limits, restart policy, healthcheck,
user, read-only root, tmpfs, capabilities, security options, bind mounts and network aliases from
its compose service. The harness changes only what `OVERRIDES` declares, each with its reason; the
report prints that list.

Every container is labelled with the run it belongs to, joins the run's network under its compose
service name, and publishes ports on 127.0.0.1 only, at a host port chosen before start so that a
stopped and restarted container keeps it.
"""

from __future__ import annotations

import functools
import os
import random
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

from harness.contract import Clock, Contract, byte_size, environment, interpolate, seconds

LABEL = "crm-cert.run"
SERVICE_LABEL = "crm-cert.service"
# host and pid of the process that started the container: lets a later run remove what a killed
# run left behind, and only that.
OWNER_LABEL = "crm-cert.owner"
STARTUP_TIMEOUT_S = 90

# The stack's host names: the compose service names, which the configs under stack/ use.
KAFKA = "kafka"
EXPORTER = "kafka-exporter"
PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"
PROBE = "crm-events-health"
CONSUMERS = "crm-events-consumer"
WEBHOOK = "alert-webhook"
TOXIPROXY = "toxiproxy"
GRAFANA = "grafana"

KAFKA_INTERNAL = f"{KAFKA}:19092"
CONSUMER_METRICS_PORT = 9400
PROBE_PORT = 9011
WEBHOOK_PORT = 9096


@dataclass(frozen=True)
class Override:
    """One way the live stack differs from stack/compose.yaml, and why."""

    services: str
    what: str
    why: str


OVERRIDES = (
    Override(
        "all",
        "image names",
        "the run's image set (offline: built here; upstream: the compose defaults' pins)",
    ),
    Override(
        "prometheus, alertmanager",
        "mounted config and rule files",
        "rendered with every duration x the time scale, and nothing else changed",
    ),
    Override(
        PROBE,
        "WINDOW_MINUTES, CACHE_TTL_SECONDS",
        "x the time scale (the probe's window and cache follow the compressed clock)",
    ),
    Override(
        "all",
        "host ports",
        "the ports the suites read (Kafka, exporter, Prometheus, Alertmanager, consumers' "
        "metrics, webhook) are published on 127.0.0.1 at free ports; the probe publishes none",
    ),
    Override(
        "all",
        "networks",
        "one bridge network per run instead of crm-internal + crm-access: an internal network "
        "cannot publish the ports the suites read; compose's aliases are kept",
    ),
    Override(
        "kafka (each node)",
        "an EXTERNAL listener on 127.0.0.1",
        "the suites produce and read offsets from the host",
    ),
    Override(
        "kafka-init",
        "not started",
        "the harness creates the same topic (name, partitions, replication factor from "
        "kafka-init's command) through the admin API, without another JVM start",
    ),
    Override(
        "kafka, prometheus, alertmanager, grafana",
        "named volumes not mounted",
        "the container's own filesystem keeps the data across a drill's stop and start, and "
        "goes with the run (the empty-TSDB drill replaces the Prometheus container)",
    ),
    Override(
        TOXIPROXY,
        "added",
        "the suites' only way in to the internal-only probe, and latency between a drill's "
        "probe and Prometheus",
    ),
    Override(
        CONSUMERS,
        "CONTROL_ENABLED=true",
        "the drills slow down or pause the consumers through their control endpoint",
    ),
)


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# A published port is fixed when its container is defined (a replica restarted by a drill keeps
# it) and bound by Docker later. Picked inside the kernel's ephemeral range, it can be taken in
# between as the source port of any outgoing connection ("Bind for 127.0.0.1:33091 failed: port
# is already allocated", seen once at an HA start-up); below that range no connection takes it,
# and none is handed out twice.
PUBLISHED_PORTS_FROM = 20_000
_handed_out: set[int] = set()


@functools.cache
def ephemeral_ports_start() -> int:
    """The first port of the kernel's range for outgoing connections (Linux; else IANA's)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49_152


def free_port() -> int:
    """A port free on 127.0.0.1 now, below the ephemeral range, not handed out before."""
    candidates = range(PUBLISHED_PORTS_FROM, max(ephemeral_ports_start(), PUBLISHED_PORTS_FROM + 1))
    for port in random.sample(candidates, min(len(candidates), 200)):
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port on 127.0.0.1 in {candidates}")


@dataclass(frozen=True)
class Run:
    """What every container of one run shares."""

    run_id: str
    network: Network
    contract: Contract
    clock: Clock
    rendered: Path  # time-scaled copies of the files under stack/ that services mount


def compose_kwargs(definition: dict[str, Any]) -> dict[str, Any]:
    """Docker keyword arguments for what a compose service says about its container."""
    kwargs: dict[str, Any] = {}
    limits = definition.get("deploy", {}).get("resources", {}).get("limits", {})
    if "cpus" in limits:
        kwargs["nano_cpus"] = round(float(limits["cpus"]) * 1e9)
    if "memory" in limits:
        kwargs["mem_limit"] = byte_size(limits["memory"])
    if "memswap_limit" in definition:
        kwargs["memswap_limit"] = byte_size(definition["memswap_limit"])
    restart = definition.get("restart", "no")
    if restart != "no":
        kwargs["restart_policy"] = {"Name": restart}
    for key in ("user", "cap_add", "cap_drop", "security_opt", "read_only"):
        if key in definition:
            kwargs[key] = definition[key]
    if "healthcheck" in definition:
        kwargs["healthcheck"] = healthcheck(definition["healthcheck"])
    return kwargs


def healthcheck(spec: dict[str, Any]) -> dict[str, Any]:
    """Compose's healthcheck in the Engine API's form (durations in nanoseconds)."""
    result: dict[str, Any] = {"test": spec["test"]}
    for key in ("interval", "timeout", "start_period"):
        if key in spec:
            result[key] = round(seconds(spec[key]) * 1e9)
    if "retries" in spec:
        result["retries"] = int(spec["retries"])
    return result


def aliases(definition: dict[str, Any]) -> list[str]:
    networks = definition.get("networks") or {}
    if not isinstance(networks, dict):
        return []
    return [alias for network in networks.values() for alias in (network or {}).get("aliases", [])]


class StackContainer(DockerContainer):
    """A container of one run of the stack, as its compose service defines it."""

    def __init__(
        self, image: str, service: str, run: Run, definition: dict[str, Any] | None = None
    ) -> None:
        definition = definition or {}
        labels = {LABEL: run.run_id, SERVICE_LABEL: service, OWNER_LABEL: owner()}
        super().__init__(image, labels=labels, **compose_kwargs(definition))
        self.service = service
        self.run = run
        self.with_network(run.network).with_network_aliases(service, *aliases(definition))
        self.with_name(f"crm-cert-{run.run_id}-{service}")
        if "command" in definition:
            self.with_command([str(part) for part in definition["command"]])
        self.with_envs(**{k: interpolate(v) for k, v in environment(definition).items()})
        for path in definition.get("tmpfs", []):
            self.with_tmpfs_mount(path)
        for volume in definition.get("volumes", []):
            self._mount(str(volume))
        for port in definition.get("ports", []):
            self.with_published_port(int(str(port).rsplit(":", 1)[-1]))

    def _mount(self, volume: str) -> None:
        """Bind mounts of files under stack/ (their time-scaled copy where there is one); named
        volumes are not mounted (OVERRIDES)."""
        source, target, *mode = volume.split(":")
        if not source.startswith("."):
            return
        rendered = self.run.rendered / source
        host = rendered if rendered.exists() else self.run.contract.stack_dir / source
        self.with_volume_mapping(str(host.resolve()), target, mode[0] if mode else "rw")

    def with_published_port(self, container_port: int) -> Self:
        """Publish `container_port` on 127.0.0.1 only, at a host port fixed now."""
        self.ports[f"{container_port}/tcp"] = ("127.0.0.1", free_port())  # type: ignore[assignment]
        return self

    def get_published_port(self, container_port: int) -> int:
        return int(self.ports[f"{container_port}/tcp"][1])  # type: ignore[index]

    def get_url(self, container_port: int) -> str:
        return f"http://127.0.0.1:{self.get_published_port(container_port)}"

    def with_http_wait(self, port: int, path: str, timeout: float = STARTUP_TIMEOUT_S) -> Self:
        return self.waiting_for(
            HttpWaitStrategy(port, path).with_startup_timeout(int(timeout)).with_poll_interval(0.25)
        )


class ComposeService(StackContainer):
    """A service of stack/compose.yaml, by name."""

    def __init__(self, image: str, service: str, run: Run) -> None:
        super().__init__(image, service, run, run.contract.service(service))


class KafkaBroker(ComposeService):
    """The Kafka node of compose.yaml, plus a listener the host reaches (OVERRIDES)."""

    EXTERNAL_PORT = 9094

    def __init__(self, image: str, run: Run, service: str = KAFKA) -> None:
        super().__init__(image, service, run)
        self.with_published_port(self.EXTERNAL_PORT)
        external = f"EXTERNAL://127.0.0.1:{self.get_published_port(self.EXTERNAL_PORT)}"
        self.env["KAFKA_LISTENERS"] += f",EXTERNAL://:{self.EXTERNAL_PORT}"
        self.env["KAFKA_ADVERTISED_LISTENERS"] += f",{external}"
        self.env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"] += ",EXTERNAL:PLAINTEXT"
        self.waiting_for(
            LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(STARTUP_TIMEOUT_S)
        )

    def get_bootstrap_server(self) -> str:
        return f"127.0.0.1:{self.get_published_port(self.EXTERNAL_PORT)}"


# kafka_exporter's Kafka client waits this long on one broker connection (sarama's default dial,
# read and write timeouts). A broker killed without closing its connections holds a whole
# collection that long: a tenth of the probe's 5m window in production, but unscaled at 1/15
# longer than the whole 20s window. The offline image takes its share of the run's clock
# (stack/images/kafka-exporter/internal-kafka.patch); the upstream image ignores the variable.
KAFKA_CLIENT_TIMEOUT_S = 30.0
KAFKA_CLIENT_TIMEOUT_ENV = "KAFKA_EXPORTER_NETWORK_TIMEOUT"


def exporter_env(clock: Clock) -> dict[str, str]:
    return {KAFKA_CLIENT_TIMEOUT_ENV: f"{clock.seconds(KAFKA_CLIENT_TIMEOUT_S) * 1000:.0f}ms"}


class KafkaExporter(ComposeService):
    PORT = 9308

    def __init__(self, image: str, run: Run, service: str = EXPORTER) -> None:
        super().__init__(image, service, run)
        self.with_envs(**exporter_env(run.clock))
        self.with_published_port(self.PORT).with_http_wait(self.PORT, "/metrics")


class Prometheus(ComposeService):
    PORT = 9090

    def __init__(self, image: str, run: Run, service: str = PROMETHEUS) -> None:
        super().__init__(image, service, run)
        self.with_published_port(self.PORT).with_http_wait(self.PORT, "/-/ready")


class Alertmanager(ComposeService):
    PORT = 9093

    def __init__(self, image: str, run: Run, service: str = ALERTMANAGER) -> None:
        super().__init__(image, service, run)
        self.with_published_port(self.PORT).with_http_wait(self.PORT, "/-/ready")


class Grafana(ComposeService):
    PORT = 3000

    def __init__(self, image: str, run: Run) -> None:
        super().__init__(image, GRAFANA, run)
        self.with_http_wait(self.PORT, "/api/health")


class HealthProbe(ComposeService):
    """The readiness probe as deployed: its environment, limits and restart policy, no host
    port (the suites reach it through toxiproxy), its window and cache on the run's clock."""

    def __init__(self, image: str, run: Run) -> None:
        super().__init__(image, PROBE, run)
        self.with_envs(**scaled_probe_env(run))


def scaled_probe_env(run: Run, **overrides: str) -> dict[str, str]:
    """The deployed probe's environment with its window and cache TTL on the run's clock."""
    env = run.contract.probe_env
    return (
        env
        | {
            "WINDOW_MINUTES": f"{run.clock.seconds(float(env['WINDOW_MINUTES']) * 60) / 60:.6f}",
            "CACHE_TTL_SECONDS": f"{run.clock.seconds(float(env['CACHE_TTL_SECONDS'])):.3f}",
        }
        | overrides
    )


class DrillProbe(StackContainer):
    """A second probe for a drill (other queries, no limits), published on 127.0.0.1."""

    def __init__(self, image: str, run: Run, name: str, env: dict[str, str]) -> None:
        definition = run.contract.service(PROBE)
        super().__init__(image, name, run, {"command": definition["command"]})
        self.with_envs(**env)
        self.with_published_port(PROBE_PORT).with_http_wait(PROBE_PORT, "/health")


class CrmEventsConsumer(StackContainer):
    """A consumer replica of compose.yaml; `index` beyond the compose replicas is a copy of the
    first one with its own INSTANCE (the rebalance drill's extra consumer)."""

    def __init__(self, image: str, run: Run, index: int) -> None:
        names = run.contract.consumer_services
        service = f"{CONSUMERS}-{index}"
        definition = run.contract.service(names[index - 1] if index <= len(names) else names[0])
        super().__init__(image, service, run, definition)
        self.with_envs(INSTANCE=service, CONTROL_ENABLED="true")
        port = int(self.env.get("METRICS_PORT", CONSUMER_METRICS_PORT))
        self.with_published_port(port).with_http_wait(port, "/metrics")


class AlertWebhook(ComposeService):
    def __init__(self, image: str, run: Run) -> None:
        super().__init__(image, WEBHOOK, run)
        port = int(self.env["PORT"])
        self.with_published_port(port).with_http_wait(port, "/health")


class Toxiproxy(StackContainer):
    """A TCP proxy the suites control (not in compose.yaml: OVERRIDES)."""

    API_PORT = 8474

    def __init__(self, image: str, run: Run, listen_ports: list[int]) -> None:
        super().__init__(image, TOXIPROXY, run)
        self.with_command(["-host=0.0.0.0", f"-port={self.API_PORT}"])
        self.with_env("LOG_LEVEL", "warn")  # its default logs every connection at trace level
        self.with_published_port(self.API_PORT)
        for port in listen_ports:
            self.with_published_port(port)
        self.with_http_wait(self.API_PORT, "/version")

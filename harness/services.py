"""One small class per stack service: pinned image, `with_*` setters, `get_*` getters, one wait.

Every container is labelled with the run it belongs to, joins the run's network under the host
name the stack's configs use, and publishes its ports on 127.0.0.1 only, at a host port chosen
before start so that a stopped and restarted container keeps it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Self

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import HttpWaitStrategy, LogMessageWaitStrategy

LABEL = "crm-cert.run"
SERVICE_LABEL = "crm-cert.service"
# host and pid of the process that started the container: lets a later run remove what a killed
# run left behind, and only that.
OWNER_LABEL = "crm-cert.owner"
STARTUP_TIMEOUT_S = 90

# The stack's host names (the configs under stack/ use them).
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


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StackContainer(DockerContainer):
    """A container of one run of the stack."""

    def __init__(
        self, image: str, service: str, run_id: str, network: Network, **docker_kwargs: Any
    ) -> None:
        labels = {LABEL: run_id, SERVICE_LABEL: service, OWNER_LABEL: owner()}
        super().__init__(image, labels=labels, **docker_kwargs)
        self.service = service
        self.with_network(network).with_network_aliases(service)
        self.with_name(f"crm-cert-{run_id}-{service}")

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


class KafkaBroker(StackContainer):
    """One KRaft node (broker and controller), configured like the upstream apache/kafka image."""

    EXTERNAL_PORT = 9094

    def __init__(self, image: str, run_id: str, network: Network) -> None:
        super().__init__(image, KAFKA, run_id, network)
        self.with_published_port(self.EXTERNAL_PORT)
        external = self.get_published_port(self.EXTERNAL_PORT)
        self.with_envs(
            CLUSTER_ID="crm-cert-kraft-cluster1",
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS=f"INTERNAL://:19092,EXTERNAL://:{self.EXTERNAL_PORT},CONTROLLER://:9093",
            KAFKA_ADVERTISED_LISTENERS=f"INTERNAL://{KAFKA_INTERNAL},EXTERNAL://127.0.0.1:{external}",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=(
                "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_INTER_BROKER_LISTENER_NAME="INTERNAL",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="3",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
            KAFKA_HEAP_OPTS="-Xmx512m -Xms256m",
        )
        self.waiting_for(
            LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(STARTUP_TIMEOUT_S)
        )

    def get_bootstrap_server(self) -> str:
        return f"127.0.0.1:{self.get_published_port(self.EXTERNAL_PORT)}"


class KafkaExporter(StackContainer):
    """kafka_exporter (or the offline image with its command line), on :9308."""

    PORT = 9308

    def __init__(self, image: str, run_id: str, network: Network, kafka_version: str) -> None:
        super().__init__(image, EXPORTER, run_id, network)
        self.with_command(
            [
                f"--kafka.server={KAFKA_INTERNAL}",
                f"--kafka.version={kafka_version}",
                f"--web.listen-address=:{self.PORT}",
            ]
        )
        self.with_published_port(self.PORT).with_http_wait(self.PORT, "/metrics")


class Prometheus(StackContainer):
    PORT = 9090

    def __init__(self, image: str, run_id: str, network: Network, config_dir: Path) -> None:
        super().__init__(image, PROMETHEUS, run_id, network)
        self.with_volume_mapping(str(config_dir), "/etc/prometheus", "ro")
        self.with_command(
            [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                "--web.enable-lifecycle",
            ]
        )
        self.with_published_port(self.PORT).with_http_wait(self.PORT, "/-/ready")


class Alertmanager(StackContainer):
    PORT = 9093

    def __init__(self, image: str, run_id: str, network: Network, config_dir: Path) -> None:
        super().__init__(image, ALERTMANAGER, run_id, network)
        self.with_volume_mapping(str(config_dir), "/etc/alertmanager", "ro")
        self.with_command(
            [
                "--config.file=/etc/alertmanager/alertmanager.yml",
                "--storage.path=/alertmanager",
                "--cluster.listen-address=",
            ]  # one instance: no gossip port
        )
        self.with_published_port(self.PORT).with_http_wait(self.PORT, "/-/ready")


class Toxiproxy(StackContainer):
    """A TCP proxy the suites control: the way in to internal-only services, and latency faults."""

    API_PORT = 8474

    def __init__(self, image: str, run_id: str, network: Network, listen_ports: list[int]) -> None:
        super().__init__(image, TOXIPROXY, run_id, network)
        self.with_command(["-host=0.0.0.0", f"-port={self.API_PORT}"])
        self.with_env("LOG_LEVEL", "warn")  # its default logs every connection at trace level
        self.with_published_port(self.API_PORT)
        for port in listen_ports:
            self.with_published_port(port)
        self.with_http_wait(self.API_PORT, "/version")


class Grafana(StackContainer):
    """Grafana with the stack's provisioning mounted: datasource and dashboard load at start-up."""

    PORT = 3000

    def __init__(self, image: str, run_id: str, network: Network, grafana_dir: Path) -> None:
        super().__init__(image, GRAFANA, run_id, network)
        self.with_volume_mapping(str(grafana_dir / "provisioning"), "/etc/grafana/provisioning")
        self.with_volume_mapping(str(grafana_dir / "dashboards"), "/var/lib/grafana/dashboards")
        self.with_envs(
            GF_SECURITY_ADMIN_PASSWORD="crm-cert",
            GF_ANALYTICS_REPORTING_ENABLED="false",
            GF_ANALYTICS_CHECK_FOR_UPDATES="false",
            GF_PLUGINS_PREINSTALL_DISABLED="true",
        )
        self.with_published_port(self.PORT).with_http_wait(self.PORT, "/api/health")


class AppContainer(StackContainer):
    """The project's own image: probe, consumer and webhook receiver, non-root."""

    def __init__(
        self,
        image: str,
        service: str,
        run_id: str,
        network: Network,
        module: str,
        **docker_kwargs: object,
    ) -> None:
        super().__init__(image, service, run_id, network, **docker_kwargs)
        self.with_command(["python3", "-m", module])
        self.with_env("PYTHONUNBUFFERED", "1")


class HealthProbe(AppContainer):
    """The readiness probe with the seed's limits: 0.10 CPU, 64M, restart unless-stopped, and
    no host port: the suites reach it through the toxiproxy access route, like any client on the
    internal network would."""

    CPU_LIMIT_NANO = 100_000_000
    MEMORY_LIMIT = "64m"

    def __init__(
        self,
        image: str,
        run_id: str,
        network: Network,
        env: dict[str, str],
        name: str = PROBE,
        limited: bool = True,
    ) -> None:
        limits: dict[str, object] = (
            {
                "nano_cpus": self.CPU_LIMIT_NANO,
                "mem_limit": self.MEMORY_LIMIT,
                "memswap_limit": self.MEMORY_LIMIT,
                "restart_policy": {"Name": "unless-stopped"},
            }
            if limited
            else {}
        )
        super().__init__(image, name, run_id, network, "probe", **limits)
        self.with_envs(**env)


class CrmEventsConsumer(AppContainer):
    """One replica of the CRM events consumer; all replicas share the DNS name Prometheus
    discovers them by."""

    def __init__(
        self, image: str, run_id: str, network: Network, index: int, delay_ms: int = 0
    ) -> None:
        super().__init__(image, f"{CONSUMERS}-{index}", run_id, network, "stack.consumer")
        self.with_network_aliases(f"{CONSUMERS}-{index}", CONSUMERS)
        self.with_envs(
            KAFKA_BOOTSTRAP_SERVERS=KAFKA_INTERNAL,
            METRICS_PORT=str(CONSUMER_METRICS_PORT),
            CONTROL_ENABLED="true",  # drills set the processing delay
            PROCESSING_DELAY_MS=str(delay_ms),
            INSTANCE=f"{CONSUMERS}-{index}",
        )
        self.with_published_port(CONSUMER_METRICS_PORT).with_http_wait(
            CONSUMER_METRICS_PORT, "/metrics"
        )


class AlertWebhook(AppContainer):
    def __init__(self, image: str, run_id: str, network: Network) -> None:
        super().__init__(image, WEBHOOK, run_id, network, "stack.webhook")
        self.with_env("PORT", str(WEBHOOK_PORT))
        self.with_published_port(WEBHOOK_PORT).with_http_wait(WEBHOOK_PORT, "/health")

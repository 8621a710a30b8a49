"""stack/compose-ha.yaml, the production (HA) topology: what `docker compose -f compose.yaml -f
compose-ha.yaml` runs is what the harness reads, the replicas are copies of one another, and the
redundancy is wired (quorum, replication, every Alertmanager, every Prometheus, every broker).
(The rules' and the dashboard's own tests refuse a `sum` over an exporter's series, which two
exporters would double: tests/tools.py, exporter_series_summed.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from harness.contract import HA, SINGLE, Contract, environment, interpolate, load
from probe.settings import ProbeSettings
from tests.test_compose import compose_config, flag
from tests.tools import STACK, exporter_series_summed

pytestmark = pytest.mark.claim("ha.topology")

# What one replica may say differently from the first: its identity and its own storage.
PER_REPLICA = {
    "KAFKA": {"KAFKA_NODE_ID", "KAFKA_ADVERTISED_LISTENERS"},
    "PROMETHEUS": {"PROMETHEUS_REPLICA"},
    "ALERTMANAGER": set(),
    "KAFKA_EXPORTER": set(),
}


@pytest.fixture(scope="module")
def ha() -> Contract:
    return load(topology_name=HA)


@pytest.fixture(scope="module")
def single() -> Contract:
    return load(topology_name=SINGLE)


def docker_compose_config() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        compose_config(STACK / "compose.yaml", STACK / "compose-ha.yaml")
    )
    return document


def targets(service: dict[str, Any], key: str) -> set[str]:
    """Container paths of volumes, container ports of ports ('127.0.0.1:9092:9090/tcp')."""
    found = set()
    for entry in service.get(key, []):
        text = str(entry)
        found.add(text.split(":")[1] if key == "volumes" else text.split(":")[-1].split("/")[0])
    return found


def test_the_harness_merges_the_two_files_as_docker_compose_does(ha: Contract) -> None:
    merged = docker_compose_config()["services"]
    assert set(merged) == set(ha.services)
    for name, expected in merged.items():
        ours = ha.services[name]
        assert interpolate(ours["image"]) == expected["image"], name
        assert [str(c) for c in ours.get("command", [])] == expected.get("command", []), name
        assert {k: interpolate(v) for k, v in environment(ours).items()} == {
            k: str(v) for k, v in expected.get("environment", {}).items()
        }, name
        assert set(ours.get("depends_on", {})) == set(expected.get("depends_on", {})), name
        assert targets(ours, "volumes") == targets(expected, "volumes"), name
        assert targets(ours, "ports") == targets(expected, "ports"), name


def without(service: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """A service's definition without its own storage, published ports and per-replica
    environment."""
    copy = {k: v for k, v in service.items() if k not in ("volumes", "ports")}
    copy["environment"] = {k: v for k, v in environment(service).items() if k not in keys}
    copy["volumes"] = sorted(v for v in service.get("volumes", []) if str(v).startswith("."))
    return copy


@pytest.mark.parametrize("image", sorted(PER_REPLICA))
def test_every_replica_is_a_copy_of_the_first_but_for_its_identity(
    ha: Contract, single: Contract, image: str
) -> None:
    replicas = ha.replicas(image)
    assert len(replicas) >= 2, f"one {image} replica only: {replicas}"
    assert replicas[0] == single.replicas(image)[0]  # the single topology's service, extended
    first = without(ha.service(replicas[0]), PER_REPLICA[image])
    for name in replicas[1:]:
        assert without(ha.service(name), PER_REPLICA[image]) == first, name
    for key in PER_REPLICA[image]:
        values = [environment(ha.service(name))[key] for name in replicas]
        assert len(set(values)) == len(values), f"{key} is not unique per replica: {values}"


def test_kafka_is_a_three_node_quorum_that_keeps_acknowledged_writes(ha: Contract) -> None:
    nodes = ha.replicas("KAFKA")
    assert len(nodes) == 3
    ids = {name: environment(ha.service(name))["KAFKA_NODE_ID"] for name in nodes}
    for name in nodes:
        env = environment(ha.service(name))
        voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        assert sorted(voters) == sorted(f"{ids[n]}@{n}:9093" for n in nodes), name
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"INTERNAL://{name}:19092"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
    assert ha.replication_factor == len(nodes)
    # acks=all survives one broker down and refuses a write only two would lose.
    assert int(ha.topic_config["min.insync.replicas"]) == len(nodes) - 1
    bootstrap = flag_words(ha.service("kafka-init")["command"], "--bootstrap-server")
    assert sorted(bootstrap.split(",")) == sorted(f"{n}:19092" for n in nodes)
    for consumer in ha.consumer_services:
        servers = environment(ha.service(consumer))["KAFKA_BOOTSTRAP_SERVERS"]
        assert sorted(servers.split(",")) == sorted(f"{n}:19092" for n in nodes), consumer
    for exporter in ha.replicas("KAFKA_EXPORTER"):
        command = [str(c) for c in ha.service(exporter)["command"]]
        servers = [c.split("=", 1)[1] for c in command if c.startswith("--kafka.server=")]
        assert sorted(servers) == sorted(f"{n}:19092" for n in nodes), exporter


def flag_words(command: list[Any], name: str) -> str:
    words = [str(word) for word in command]
    return words[words.index(name) + 1]


def test_every_prometheus_scrapes_every_exporter_and_alerts_every_alertmanager(
    ha: Contract,
) -> None:
    config = ha.prometheus
    exporters = {f"{name}:9308" for name in ha.replicas("KAFKA_EXPORTER")}
    peers = {f"{name}:9093" for name in ha.replicas("ALERTMANAGER")}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    scraped = {t for s in jobs["kafka_exporter"]["static_configs"] for t in s["targets"]}
    assert scraped == exporters
    alerted = {
        t
        for am in config["alerting"]["alertmanagers"]
        for s in am["static_configs"]
        for t in s["targets"]
    }
    assert alerted == peers
    # Both replicas send the same alerts: without the replica label Alertmanager sees one.
    assert config["global"]["external_labels"] == {"replica": "${PROMETHEUS_REPLICA}"}
    assert {"action": "labeldrop", "regex": "replica"} in config["alerting"][
        "alert_relabel_configs"
    ]
    for name in ha.replicas("PROMETHEUS"):
        assert environment(ha.service(name))["PROMETHEUS_REPLICA"] == name


def test_the_ha_prometheus_config_differs_from_the_single_one_only_in_its_replicas(
    ha: Contract, single: Contract
) -> None:
    def comparable(config: dict[str, Any]) -> dict[str, Any]:
        copy = json.loads(json.dumps(config))
        copy["global"].pop("external_labels", None)
        copy["alerting"] = {}
        for job in copy["scrape_configs"]:
            if job["job_name"] in ("kafka_exporter", "alertmanager"):
                job.pop("static_configs")
        return copy

    assert comparable(ha.prometheus) == comparable(single.prometheus)


def test_the_alertmanagers_gossip_with_every_peer(ha: Contract) -> None:
    peers = ha.replicas("ALERTMANAGER")
    for name in peers:
        command = [str(c) for c in ha.service(name)["command"]]
        listen = flag(command, "--cluster.listen-address")
        port = listen.rsplit(":", 1)[1]
        assert port in {str(p) for p in ha.service(name).get("expose", [])}, name
        joined = [c.split("=", 1)[1] for c in command if c.startswith("--cluster.peer=")]
        assert sorted(joined) == sorted(f"{peer}:{port}" for peer in peers), name


def test_the_probe_asks_every_prometheus_replica_within_its_attempts(ha: Contract) -> None:
    settings = ProbeSettings.from_env(ha.probe_env)
    assert settings.prom_urls == [f"http://{name}:9090" for name in ha.replicas("PROMETHEUS")]
    assert settings.prom_retries >= len(settings.prom_urls)


def test_the_lint_finds_a_sum_over_an_exporter_series() -> None:
    """tests/tools.py's exporter_series_summed, which the rules' and the dashboard's tests run
    (where the mutation tier sees them): the HA topology's two exporters double such a sum."""
    offsets = "rate(kafka_topic_partition_current_offset[5m])"
    assert exporter_series_summed(f"sum by (topic) ({offsets})")
    assert exporter_series_summed("avg(kafka_consumergroup_members)")
    assert not exporter_series_summed(f"sum by (topic) (max by (topic, partition) ({offsets}))")
    assert not exporter_series_summed("sum by (topic) (kafka:group_partition_lag)")
    assert not exporter_series_summed('max(up{job="kafka_exporter"})')

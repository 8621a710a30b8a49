"""stack/compose.yaml, the local stack for users with a registry: valid, and what the checklist
says about it (probe internal only, limits, restart policy, the consumers' health check), with
the images, host names and config files the certification suites use. No Docker needed.

Validation: the Compose Specification's JSON schema as check-jsonschema vendors it (offline); when
a compose CLI is installed (`docker compose` or Debian's `docker-compose`), its `config` too.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest

from harness import images
from harness import services as svc
from harness.contract import CHECKLIST, Contract, load
from probe.settings import ProbeSettings
from tests.tools import GRAFANA, PROMETHEUS_YML, STACK, load_yaml

COMPOSE = STACK / "compose.yaml"
PUBLISHED = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000}
CONSUMER_HEALTHCHECK = ["CMD", "curl", "-fsS", CHECKLIST.consumer_healthcheck_url]
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::-(?P<default>[^}]*))?\}")


@pytest.fixture(scope="module")
def contract() -> Contract:
    """What stack/compose.yaml (and the other deployable files) say, as the harness reads it."""
    return load()


@pytest.fixture(scope="module")
def compose(contract: Contract) -> dict[str, Any]:
    return contract.compose


@pytest.fixture(scope="module")
def services(contract: Contract) -> dict[str, dict[str, Any]]:
    return contract.services


def interpolate(value: str) -> str:
    """What Compose makes of `${NAME:-default}` with no variable set."""
    return _VARIABLE.sub(lambda m: m["default"] or "", value)


def duration_s(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"([0-9.]+)(ms|s|m|h)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a Compose duration: {value}"
    return sum(float(n) * units[u] for n, u in parts)


def networks_of(service: dict[str, Any]) -> list[str]:
    networks = service.get("networks", [])
    return list(networks) if isinstance(networks, dict) else networks


def aliases_of(service: dict[str, Any], network: str) -> list[str]:
    networks = service.get("networks", {})
    if isinstance(networks, dict):
        return list((networks.get(network) or {}).get("aliases", []))
    return []


def consumers(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {name: services[name] for name in load().consumer_services}
    for name, service in found.items():
        assert service["command"] == ["python", "-m", "stack.consumer"], name
    return found


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to stack/) of the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = source
    return mounts


def flag_value(command: list[str], name: str) -> str:
    """The value after `name` in a command given as separate words (`--topic`, `t`)."""
    words = [str(word) for word in command]
    assert words.count(name) == 1, f"{name} given {words.count(name)} times in {command}"
    return words[words.index(name) + 1]


def flag(command: list[str], name: str) -> str:
    values = [c.split("=", 1)[1] for c in command if c.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} given {len(values)} times in {command}"
    return values[0]


# --- the file is valid ----------------------------------------------------------------------


def compose_spec_schema() -> dict[str, Any]:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendored.joinpath("compose-spec.json").read_text())
    return schema


@pytest.mark.claim("deploy.compose")
def test_the_compose_file_validates_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    schema = compose_spec_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)
    # The schema is strict enough to catch a misspelt key.
    broken = {**compose, "services": {"kafka": {**compose["services"]["kafka"], "restrat": "no"}}}
    assert not validator.is_valid(broken)


@pytest.mark.claim("deploy.compose")
def test_every_variable_has_a_default_so_up_works_with_no_environment() -> None:
    text = COMPOSE.read_text()
    for match in _VARIABLE.finditer(text):
        assert match["default"], f"${{{match['name']}}} has no default"
    assert "$" not in _VARIABLE.sub("", text), "a variable not in the ${NAME:-default} form"


def compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        result = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def compose_config(*files: Path, quiet: bool = False) -> str:
    """`docker compose -f ... config` of the files, as a user with no variable set runs it: the
    merged model it prints. Skips when no compose CLI is installed."""
    cli = compose_cli()
    if cli is None:
        pytest.skip("no `docker compose` or `docker-compose` here: the schema test stands alone")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_CERT_IMAGE_")}
    arguments = [word for file in files for word in ("-f", str(file))]
    result = subprocess.run(
        [*cli, *arguments, "config", *(["-q"] if quiet else [])],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.claim("deploy.compose")
def test_the_compose_cli_accepts_the_file_when_one_is_installed() -> None:
    compose_config(COMPOSE, quiet=True)


# --- the probe: internal only, limits, restart policy, settings -------------------------------


@pytest.mark.claim("docker.probe_internal")
def test_the_probe_publishes_no_port_and_only_exposes_its_port(contract: Contract) -> None:
    probe = contract.service(contract.probe_service)
    assert "ports" not in probe
    assert [str(p) for p in probe["expose"]] == [str(CHECKLIST.probe_port)]
    assert "network_mode" not in probe


@pytest.mark.claim("docker.probe_internal")
def test_the_probe_is_on_internal_networks_only(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    networks = networks_of(services[CHECKLIST.probe_service])
    assert networks
    for network in networks:
        assert (compose["networks"][network] or {}).get("internal") is True, network
    # ...and everything that calls it shares one of them: Prometheus (scrape) and the consumers.
    for caller in [svc.PROMETHEUS, *consumers(services)]:
        assert set(networks_of(services[caller])) & set(networks), caller


@pytest.mark.claim("docker.probe_internal")
def test_the_probe_restart_policy_is_the_checklists(contract: Contract) -> None:
    assert contract.probe_limits["restart"] == CHECKLIST.probe_restart


@pytest.mark.claim("security.limits")
def test_the_probe_limits_are_the_checklists(contract: Contract) -> None:
    limits = contract.probe_limits
    assert limits["cpus"] == CHECKLIST.probe_cpus
    assert limits["memory_bytes"] == CHECKLIST.probe_memory_bytes
    # No swap beyond the memory limit (unset, Docker lets the container swap as much again).
    assert limits["memswap_bytes"] == CHECKLIST.probe_memory_bytes


@pytest.mark.claim("deploy.compose")
def test_the_only_published_ports_are_the_user_interfaces_on_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            host_ip, host_port, container_port = str(port).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            assert host_port == container_port
            published[name] = int(container_port)
    assert published == PUBLISHED


@pytest.mark.claim("safety.settings")
def test_the_probe_environment_holds_only_probe_settings_and_changes_no_default(
    contract: Contract,
) -> None:
    probe = contract.service(contract.probe_service)
    assert probe["command"] == ["python", "-m", "probe"]
    env = contract.probe_env
    known = {f.name.upper() for f in dataclasses.fields(ProbeSettings)}
    assert set(env) <= known, f"unknown probe settings: {set(env) - known}"
    assert env["PROM_URL"] == f"http://{svc.PROMETHEUS}:{svc.Prometheus.PORT}"
    # Production values, no time scale: the file and the probe's defaults say the same.
    assert ProbeSettings.from_env(env) == ProbeSettings(prom_url=env["PROM_URL"])


# Each checklist value the probe's environment must give, as the probe parses it.
REQUIRED_PROBE_ENV = {
    "WINDOW_MINUTES": CHECKLIST.window_s / 60,
    "PROM_TIMEOUT_MS": CHECKLIST.prom_timeout_ms,
    "PROM_RETRIES": CHECKLIST.prom_retries,
    "PROM_BACKOFF_MS": CHECKLIST.prom_backoff_ms,
    "SKEW_THRESHOLD": CHECKLIST.skew_threshold,
    "MIN_CONSUMERS": CHECKLIST.min_consumers,
    "CONSUMER_GROUP": CHECKLIST.group,
}
# The values that decide what /ready answers.
READINESS_ENV = {"SKEW_THRESHOLD", "MIN_CONSUMERS", "CONSUMER_GROUP"}


@pytest.mark.parametrize(
    "variable",
    [
        pytest.param(
            variable,
            marks=[
                pytest.mark.claim("safety.settings"),
                *([pytest.mark.claim("probe.ready")] if variable in READINESS_ENV else []),
            ],
        )
        for variable in REQUIRED_PROBE_ENV
    ],
)
def test_the_probe_is_deployed_with_the_checklist_value_of(
    contract: Contract, variable: str
) -> None:
    env = contract.probe_env
    assert variable in env, f"compose.yaml leaves {variable} to the probe's default: set it"
    deployed = getattr(ProbeSettings.from_env({variable: env[variable]}), variable.lower())
    required = REQUIRED_PROBE_ENV[variable]
    assert deployed == required, f"compose.yaml: {variable}={env[variable]}; required {required}"


# --- the consumers ----------------------------------------------------------------------------


@pytest.mark.claim("docker.consumer_healthcheck")
def test_each_consumer_healthcheck_calls_the_probe_ready_endpoint(
    services: dict[str, dict[str, Any]],
) -> None:
    found = consumers(services)
    # Exactly the minimum: one consumer stopped must fail the probe (the smoke test's drill).
    assert len(found) == CHECKLIST.min_consumers, sorted(found)
    budget = ProbeSettings.from_env(load().probe_env).evaluation_budget_s
    for name, consumer in found.items():
        check = consumer["healthcheck"]
        assert check["test"] == CONSUMER_HEALTHCHECK, name
        timeout = duration_s(check["timeout"])
        # The probe may take its whole evaluation budget (every attempt timing out) to answer.
        assert budget < timeout <= duration_s(check["interval"]), name
        assert 1 <= check["retries"] <= 5, name
        assert duration_s(check.get("start_period", "0s")) >= duration_s(check["interval"]), name
        depends = consumer["depends_on"][CHECKLIST.probe_service]
        assert depends["condition"] == "service_started", name


@pytest.mark.claim("deploy.compose")
def test_the_consumers_share_the_name_prometheus_discovers(
    services: dict[str, dict[str, Any]],
) -> None:
    job = next(
        j
        for j in load_yaml(PROMETHEUS_YML)["scrape_configs"]
        if j["job_name"] == "crm_events_consumer"
    )
    dns = job["dns_sd_configs"][0]
    for name, consumer in consumers(services).items():
        assert any(dns["names"][0] in aliases_of(consumer, n) for n in networks_of(consumer)), name
        env = consumer["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == svc.KAFKA_INTERNAL
        assert env["CONSUMER_GROUP"] == CHECKLIST.group, name
        assert int(env["METRICS_PORT"]) == dns["port"] == svc.CONSUMER_METRICS_PORT
        assert env["INSTANCE"] == name
        assert consumer["restart"] == "unless-stopped"


# --- host names, images, config files ---------------------------------------------------------


@pytest.mark.claim("deploy.compose")
def test_services_are_named_with_the_stack_host_names(services: dict[str, dict[str, Any]]) -> None:
    for host in (svc.KAFKA, svc.EXPORTER, svc.PROMETHEUS, svc.ALERTMANAGER, svc.PROBE, svc.WEBHOOK):
        assert host in services, host
    exporter = services[svc.EXPORTER]["command"]
    assert flag(exporter, "--kafka.server") == svc.KAFKA_INTERNAL
    assert flag(exporter, "--kafka.version") == images.UPSTREAM.kafka.rsplit(":", 1)[1]
    assert flag(exporter, "--web.listen-address") == f":{svc.KafkaExporter.PORT}"
    kafka = services[svc.KAFKA]["environment"]
    assert f"INTERNAL://{svc.KAFKA_INTERNAL}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    webhook = services[svc.WEBHOOK]
    assert int(webhook["environment"]["PORT"]) == svc.WEBHOOK_PORT
    assert webhook["command"] == ["python", "-m", "stack.webhook"]


@pytest.mark.claim("deploy.compose")
def test_every_scrape_target_is_a_service_of_the_file(services: dict[str, dict[str, Any]]) -> None:
    hosts = set(services) | {
        alias for s in services.values() for n in networks_of(s) for alias in aliases_of(s, n)
    }
    for job in load_yaml(PROMETHEUS_YML)["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host = target.rsplit(":", 1)[0]
                assert host == "localhost" or host in hosts, f"{job['job_name']}: {target}"


def image_defaults(services: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Service -> (the variable that overrides its image, the default image)."""
    found = {}
    for name, service in services.items():
        match = _VARIABLE.fullmatch(service["image"])
        assert match and match["default"], f"{name}: image {service['image']} is not overridable"
        found[name] = (match["name"], match["default"])
    return found


@pytest.mark.claim("deploy.compose")
def test_image_defaults_are_the_harness_upstream_images(
    services: dict[str, dict[str, Any]],
) -> None:
    upstream = dataclasses.asdict(images.UPSTREAM)
    by_repository = {
        image.rsplit(":", 1)[0]: field for field, image in upstream.items() if image is not None
    }
    used = set()
    for name, (variable, default) in image_defaults(services).items():
        # The project's own image is built here (crm-cert/app or crm-cert/app-python), tagged by
        # its inputs' hash: the file names a stable tag (see its header).
        field = (
            "app"
            if default == "crm-cert/app:latest"
            else by_repository.get(default[: default.rindex(":")])
        )
        assert field is not None, f"{name}: {default} is none of harness.images.UPSTREAM"
        assert variable == images.OVERRIDE_ENV_PREFIX + field.upper(), name
        used.add(field)
        if field != "app":
            assert default == upstream[field], name
    assert used == {"kafka", "kafka_exporter", "prometheus", "alertmanager", "grafana", "app"}


@pytest.mark.claim("deploy.compose")
def test_the_mounted_config_files_exist_where_the_services_read_them(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            assert (STACK / source).exists(), f"{name}: {source} (for {target}) is missing"
    prometheus = services[svc.PROMETHEUS]
    mounts = bind_mounts(prometheus)
    config = flag(prometheus["command"], "--config.file")
    assert mounts[config] == "./prometheus/prometheus.yml"
    for pattern in load_yaml(PROMETHEUS_YML)["rule_files"]:
        rules_dir = str(PurePosixPath(config).parent / PurePosixPath(pattern).parent)
        assert mounts[rules_dir] == "./prometheus/rules"
    alertmanager = services[svc.ALERTMANAGER]
    config = flag(alertmanager["command"], "--config.file")
    assert bind_mounts(alertmanager)[config] == "./alertmanager/alertmanager.yml"


@pytest.mark.claim("deploy.compose")
def test_grafana_mounts_provisioning_and_dashboards_where_the_provisioning_names_them(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = bind_mounts(services["grafana"])
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "crm-events.yml")["providers"]
    for provider in providers:
        assert mounts[provider["options"]["path"]] == "./grafana/dashboards"
    datasource = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    url = datasource["datasources"][0]["url"]
    assert url == f"http://{svc.PROMETHEUS}:{svc.Prometheus.PORT}"
    # Grafana reaches Prometheus on a network they share.
    assert set(networks_of(services["grafana"])) & set(networks_of(services[svc.PROMETHEUS]))


@pytest.mark.claim("deploy.compose")
def test_the_topic_the_consumers_read_exists_before_they_start(
    contract: Contract, services: dict[str, dict[str, Any]]
) -> None:
    init = services["kafka-init"]
    assert "--create" in init["command"]
    assert flag_value(init["command"], "--topic") == contract.topic
    # Enough partitions for every consumer to own one, and for one to be hot.
    assert contract.partitions > contract.consumer_count
    assert init["depends_on"][svc.KAFKA]["condition"] == "service_healthy"
    for name, consumer in consumers(services).items():
        assert consumer["depends_on"]["kafka-init"]["condition"] == (
            "service_completed_successfully"
        ), name


@pytest.mark.claim("deploy.compose")
def test_the_app_services_are_locked_down(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if image_defaults(services)[name][1].startswith("crm-cert/app"):
            assert service["read_only"] is True, name
            assert service["cap_drop"] == ["ALL"], name
            assert "no-new-privileges:true" in service["security_opt"], name
            assert interpolate(service["image"]) == "crm-cert/app:latest"

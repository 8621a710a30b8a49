"""The contract: what the checklist requires, what the deployable files say, and one clock.

Two kinds of fact live here and nowhere else (docs/design.md, "One contract, one clock"):

- `CHECKLIST`: what the original certificate claims the stack does (skew <= 4, >= 2 consumers,
  PROM_TIMEOUT_MS=1500, ...). These are requirements, typed once; tests compare what is deployed
  and what runs against them.
- `Contract`: what the deployable files under `stack/` say (compose.yaml, prometheus.yml, the
  rule files, alertmanager.yml). It is read from the files, never typed: change a file and every
  suite, the live stack, the report and the Kubernetes generator follow.

`Clock` applies the time scale of a run: one way of turning a production duration into the time it
takes on the live stack, used by the harness, the suites, the report and the pytest timeouts.

The stack directory is `stack/` of this checkout, or CRM_CERT_STACK_DIR (a scratch copy under
test, or a user's own stack directory).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import promql_parser as pp
import yaml

from harness.paths import PROJECT as REPO
from harness.timescale import parse_duration, scale_milliseconds

STACK_DIR_ENV = "CRM_CERT_STACK_DIR"
TOPOLOGY_ENV = "CRM_CERT_TOPOLOGY"
SINGLE, HA = "single", "ha"
TOPOLOGIES = (SINGLE, HA)
# The compose files of each topology, applied in order (docker compose -f ... -f ...).
COMPOSE_FILES = {SINGLE: ("compose.yaml",), HA: ("compose.yaml", "compose-ha.yaml")}


def stack_dir() -> Path:
    """The deployable files under certification."""
    return Path(os.environ.get(STACK_DIR_ENV) or REPO / "stack").resolve()


def topology() -> str:
    """The topology under certification: `single` (compose.yaml) or `ha` (compose.yaml with
    compose-ha.yaml over it)."""
    chosen = os.environ.get(TOPOLOGY_ENV) or SINGLE
    if chosen not in TOPOLOGIES:
        raise ContractError(f"{TOPOLOGY_ENV}={chosen!r}: must be one of {', '.join(TOPOLOGIES)}")
    return chosen


# --- what the checklist requires -------------------------------------------------------------


@dataclass(frozen=True)
class Checklist:
    """The original certificate's claims, as values (../shared/seed, docs/design.md)."""

    group: str = "crm-events-sse"
    skew_threshold: float = 4
    min_consumers: int = 2
    window: str = "5m"
    prom_timeout_ms: int = 1500
    prom_retries: int = 2
    prom_backoff_ms: int = 100
    scrape_interval: str = "15s"
    probe_service: str = "crm-events-health"
    probe_port: int = 9011
    probe_cpus: float = 0.10
    probe_memory_bytes: int = 64 * 1024 * 1024
    probe_restart: str = "unless-stopped"
    consumer_healthcheck_url: str = "http://crm-events-health:9011/ready"
    recording_rules: int = 8
    alerts: int = 12
    clean_labels: tuple[tuple[str, str], ...] = (
        ("team", "crm"),
        ("service", "crm-events-sse"),
        ("product", "aetherlink"),
    )
    inhibiting_alert: str = "CrmEventsServiceDown"
    inhibited_alert: str = "CrmEventsUnderReplicatedConsumers"
    skew_alert: str = "CrmEventsHotKeySkewHigh"
    # The `for:` of the alerts the live suites drill: the seed's 12m for the skew alert, and the
    # project's own paging policy for the other two (also certified by the promtool tests).
    alert_for: tuple[tuple[str, str], ...] = (
        ("CrmEventsHotKeySkewHigh", "12m"),
        ("CrmEventsUnderReplicatedConsumers", "7m"),
        ("CrmEventsServiceDown", "5m"),
    )
    hot_key: str = "TESTKEY"
    hot_key_events: int = 300
    # "Panel 17 showed unbalanced partition lag (partition 2 > 300 lag)": reported beside what
    # 300 events can produce (docs/design.md, "What the checklist gets wrong").
    hot_partition_lag_claimed: int = 300
    # The project's paging policy (beyond the seed): critical alerts page again every hour while
    # unresolved, warnings (tickets) every 4 hours.
    critical_repeat_interval: str = "1h"
    warning_repeat_interval: str = "4h"
    dashboard_uid: str = "crm-events-pipeline"
    dashboard_panels: int = 19

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.clean_labels)

    def for_s(self, alert: str) -> float:
        """The `for:` an alert must have, in production seconds."""
        return parse_duration(dict(self.alert_for)[alert]) / 1000

    @property
    def skew_alert_for(self) -> str:
        return dict(self.alert_for)[self.skew_alert]

    @property
    def window_s(self) -> float:
        return parse_duration(self.window) / 1000

    @property
    def scrape_s(self) -> float:
        return parse_duration(self.scrape_interval) / 1000


CHECKLIST = Checklist()


# --- what the deployable files say ------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_s: float
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class Route:
    """One Alertmanager route with what it inherits from its parents."""

    receiver: str
    matchers: tuple[str, ...]
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float


@dataclass(frozen=True)
class Contract:
    """The facts of the deployable stack, read from its files."""

    stack_dir: Path
    topology: str
    compose: dict[str, Any]  # the compose model of the topology's files, merged as Compose does
    prometheus: dict[str, Any]
    rule_files: dict[str, dict[str, Any]]
    alertmanager: dict[str, Any]

    # -- compose.yaml --------------------------------------------------------------------

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = self.compose["services"]
        return found

    def service(self, name: str) -> dict[str, Any]:
        if name not in self.services:
            files = " + ".join(COMPOSE_FILES[self.topology])
            raise ContractError(f"{files} has no service {name!r}")
        return self.services[name]

    def replicas(self, image: str) -> tuple[str, ...]:
        """The services that run one image (`KAFKA`, `PROMETHEUS`, ... as in CRM_CERT_IMAGE_<X>),
        in file order: replica 1 first. Kafka's are its nodes, not the topic-creating job."""
        return tuple(
            name
            for name, service in self.services.items()
            if f"CRM_CERT_IMAGE_{image}:" in str(service.get("image", ""))
            and not (image == "KAFKA" and "command" in service)
        )

    @property
    def consumer_services(self) -> tuple[str, ...]:
        """The consumer replicas: the services that run the CRM events consumer."""
        return tuple(
            name
            for name, service in self.services.items()
            if "stack.consumer" in (service.get("command") or [])
        )

    @property
    def consumer_count(self) -> int:
        return len(self.consumer_services)

    @property
    def consumer_env(self) -> dict[str, str]:
        return environment(self.service(self.consumer_services[0]))

    @property
    def group(self) -> str:
        return self.consumer_env["CONSUMER_GROUP"]

    @property
    def topic(self) -> str:
        return self.consumer_env["TOPIC"]

    @property
    def partitions(self) -> int:
        """The topic's partitions, as the compose file's topic creation gives them."""
        return int(self._topic_option("--partitions"))

    @property
    def replication_factor(self) -> int:
        return int(self._topic_option("--replication-factor"))

    @property
    def topic_config(self) -> dict[str, str]:
        """The topic's `--config name=value` settings (e.g. min.insync.replicas)."""
        command = self._topic_command
        return dict(
            command[i + 1].split("=", 1) for i, part in enumerate(command) if part == "--config"
        )

    @property
    def _topic_command(self) -> list[str]:
        """kafka-init's command: the topic as the compose files create it."""
        return [str(part) for part in self.service("kafka-init")["command"]]

    def _topic_option(self, flag: str) -> str:
        command = self._topic_command
        return command[command.index(flag) + 1]

    @property
    def probe_service(self) -> str:
        return CHECKLIST.probe_service

    @property
    def probe_env(self) -> dict[str, str]:
        """The readiness probe's environment as deployed."""
        return environment(self.service(self.probe_service))

    @property
    def probe_limits(self) -> dict[str, Any]:
        """cpus (float), memory_bytes (int), memswap_bytes (int or None), restart (str)."""
        service = self.service(self.probe_service)
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        memswap = service.get("memswap_limit")
        return {
            "cpus": float(limits["cpus"]) if "cpus" in limits else None,
            "memory_bytes": byte_size(limits["memory"]) if "memory" in limits else None,
            "memswap_bytes": byte_size(memswap) if memswap is not None else None,
            "restart": service.get("restart"),
        }

    @property
    def skew_threshold(self) -> float:
        return float(self.probe_env["SKEW_THRESHOLD"])

    @property
    def min_consumers(self) -> int:
        return int(self.probe_env["MIN_CONSUMERS"])

    @property
    def window_s(self) -> float:
        """The probe's window, in production seconds."""
        return float(self.probe_env["WINDOW_MINUTES"]) * 60

    @property
    def probe_cache_ttl_s(self) -> float:
        return float(self.probe_env["CACHE_TTL_SECONDS"])

    @property
    def prom_timeout_s(self) -> float:
        return int(self.probe_env["PROM_TIMEOUT_MS"]) / 1000

    @property
    def prom_attempts(self) -> int:
        return int(self.probe_env["PROM_RETRIES"])

    @property
    def prom_backoff_s(self) -> float:
        return int(self.probe_env.get("PROM_BACKOFF_MS", "100")) / 1000

    @property
    def probe_worst_case_s(self) -> float:
        """How long one /ready may take at most: timeout x attempts + backoff between them."""
        return self.prom_timeout_s * self.prom_attempts + self.prom_backoff_s * (
            self.prom_attempts - 1
        )

    # -- prometheus.yml and the rule files -----------------------------------------------

    @property
    def scrape_s(self) -> float:
        return seconds(self.prometheus["global"]["scrape_interval"])

    @property
    def evaluation_s(self) -> float:
        return seconds(self.prometheus["global"]["evaluation_interval"])

    def _rules(self) -> list[dict[str, Any]]:
        return [
            rule
            for document in self.rule_files.values()
            for group in document.get("groups") or []
            for rule in group.get("rules") or []
        ]

    @property
    def recording_rules(self) -> tuple[str, ...]:
        return tuple(rule["record"] for rule in self._rules() if "record" in rule)

    @property
    def alerts(self) -> dict[str, Alert]:
        return {
            rule["alert"]: Alert(
                rule["alert"],
                rule["expr"],
                seconds(rule.get("for", "0s")),
                dict(rule.get("labels") or {}),
                dict(rule.get("annotations") or {}),
            )
            for rule in self._rules()
            if "alert" in rule
        }

    def alert(self, name: str) -> Alert:
        if name not in self.alerts:
            raise ContractError(f"the rule files have no alert {name!r}")
        return self.alerts[name]

    def alert_longest_range_s(self, name: str) -> float:
        """The longest range an alert's expression selects (`rate(x[5m])` gives 300)."""
        ranges: list[float] = []

        def visit(node: Any) -> None:
            if isinstance(node, pp.MatrixSelector):
                ranges.append(node.range.total_seconds())

        pp.walk(pp.parse(self.alert(name).expr), visit)
        if not ranges:
            raise ContractError(f"alert {name}: no range selector in {self.alert(name).expr}")
        return max(ranges)

    def alert_threshold(self, name: str) -> float:
        """The number an alert's expression compares against (`... > 4` gives 4)."""
        match = re.search(r"(?:>=|<=|==|>|<)\s*([0-9.]+)\s*$", self.alert(name).expr.strip())
        if not match:
            raise ContractError(f"alert {name}: no trailing comparison in {self.alert(name).expr}")
        return float(match.group(1))

    # -- alertmanager.yml ----------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Every route of the tree, depth first, each with the settings it inherits."""
        found: list[Route] = []

        def visit(node: dict[str, Any], parent: dict[str, Any]) -> None:
            merged = {
                key: node.get(key, parent.get(key))
                for key in ("receiver", "group_by", "group_wait", "group_interval")
            }
            merged["repeat_interval"] = node.get("repeat_interval", parent.get("repeat_interval"))
            matchers = (*parent.get("matchers", ()), *node.get("matchers", ()))
            merged["matchers"] = matchers
            found.append(
                Route(
                    str(merged["receiver"]),
                    tuple(matchers),
                    tuple(merged["group_by"] or ()),
                    seconds(merged["group_wait"] or "30s"),
                    seconds(merged["group_interval"] or "5m"),
                    seconds(merged["repeat_interval"] or "4h"),
                )
            )
            for child in node.get("routes") or []:
                visit(child, merged)

        visit(self.alertmanager["route"], {})
        return found

    def route_for(self, labels: dict[str, str]) -> Route:
        """The route an alert with these labels ends on, found as Alertmanager finds it: from
        the root, the first child whose matchers all match, depth first; a `continue: true`
        child that matches lets its later siblings match too, and the first route found wins
        (the one whose repeat_interval applies to the first notification)."""

        def settings(node: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
            keys = ("receiver", "group_by", "group_wait", "group_interval", "repeat_interval")
            merged = {key: node.get(key, parent.get(key)) for key in keys}
            merged["matchers"] = (*parent.get("matchers", ()), *node.get("matchers", ()))
            return merged

        def found(node: dict[str, Any], parent: dict[str, Any]) -> list[Route]:
            merged = settings(node, parent)
            routes: list[Route] = []
            for child in node.get("routes") or []:
                if all(_matches(m, labels) for m in child.get("matchers") or ()):
                    routes += found(child, merged)
                    if not child.get("continue", False):
                        break
            if routes:
                return routes
            return [
                Route(
                    str(merged["receiver"]),
                    tuple(merged["matchers"]),
                    tuple(merged["group_by"] or ()),
                    seconds(merged["group_wait"] or "30s"),
                    seconds(merged["group_interval"] or "5m"),
                    seconds(merged["repeat_interval"] or "4h"),
                )
            ]

        return found(self.alertmanager["route"], {})[0]


_MATCHER = re.compile(
    r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$'
)


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    """One Alertmanager matcher (`name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`)."""
    parsed = _MATCHER.match(matcher)
    if parsed is None:
        raise ContractError(f"alertmanager.yml: cannot read the matcher {matcher!r}")
    name, operator, quoted, bare = parsed.groups()
    value = quoted if quoted is not None else bare
    actual = labels.get(name, "")
    if operator in ("=~", "!~"):
        hit = re.fullmatch(value, actual) is not None  # Alertmanager anchors its regexes
        return hit if operator == "=~" else not hit
    return (actual == value) if operator == "=" else (actual != value)


class ContractError(ValueError):
    """The deployable files do not say what the harness needs to know; names what is missing."""


def load(directory: Path | None = None, topology_name: str | None = None) -> Contract:
    """The contract of the stack directory (default: `stack_dir()`) in a topology (default:
    `topology()`), read once per directory and topology."""
    return _load((directory or stack_dir()).resolve(), topology_name or topology())


def _read(path: Path) -> Any:
    if not path.is_file():
        raise ContractError(f"missing deployable file: {path}")
    return yaml.safe_load(path.read_text())


@functools.cache
def _load(directory: Path, topology_name: str) -> Contract:
    compose = compose_model(directory, COMPOSE_FILES[topology_name])
    rules = directory / "prometheus" / "rules"
    return Contract(
        stack_dir=directory,
        topology=topology_name,
        compose=compose,
        prometheus=_read(
            mounted(directory, compose, "prometheus", "/etc/prometheus/prometheus.yml")
        ),
        rule_files={path.name: _read(path) for path in sorted(rules.glob("*.yml"))},
        alertmanager=_read(
            mounted(directory, compose, "alertmanager", "/etc/alertmanager/alertmanager.yml")
        ),
    )


def mounted(directory: Path, compose: dict[str, Any], service: str, target: str) -> Path:
    """The file under the stack directory that a service mounts at `target`."""
    for volume in compose["services"][service].get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == target and source.startswith("."):
            return directory / source
    raise ContractError(f"service {service!r} mounts no file of the stack at {target}")


# --- Compose's merge of several files ---------------------------------------------------------

# Keys whose value an override replaces (docs.docker.com/reference/compose-file/merge); mappings
# merge key by key, `volumes` by container path, `ports` and `expose` as a union.
_MERGED_BY_TARGET = ("volumes",)
_UNION = ("ports", "expose")


def compose_model(directory: Path, files: tuple[str, ...]) -> dict[str, Any]:
    """The services, networks and volumes that `docker compose -f A -f B ...` runs: each file
    merged over the previous ones, `extends` resolved (a service of another file, before any
    override)."""
    model: dict[str, Any] = {}
    for name in files:
        document = _read(directory / name)
        for section, entries in document.items():
            if section.startswith("x-") or not isinstance(entries, dict):
                continue
            merged = model.setdefault(section, {})
            for key, value in entries.items():
                if section == "services":
                    value = _extended(directory, value)
                merged[key] = _merge(merged[key], value) if key in merged else value
    return model


def _extended(directory: Path, service: dict[str, Any]) -> dict[str, Any]:
    if "extends" not in service:
        return service
    source = service["extends"]
    base = _read(directory / source["file"])["services"][source["service"]]
    own = {key: value for key, value in service.items() if key != "extends"}
    return _merge(_extended(directory, base), own)


def _merge(base: Any, override: Any, key: str = "") -> Any:
    if key == "environment" or (isinstance(base, dict) and isinstance(override, dict)):
        if key == "environment":
            base, override = environment({key: base}), environment({key: override})
        return {k: _merge(base[k], v, k) if k in base else v for k, v in override.items()} | {
            k: v for k, v in base.items() if k not in override
        }
    if key in _MERGED_BY_TARGET:
        by_target = {str(v).split(":")[1]: v for v in [*base, *override]}
        return list(by_target.values())
    if key in _UNION:
        return list(dict.fromkeys([*base, *override]))
    return override


# --- readers of the files' formats ------------------------------------------------------------

_COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::-(?P<default>[^}]*))?\}")
_BYTE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def interpolate(value: str, environ: dict[str, str] | None = None) -> str:
    """What Compose makes of `${NAME:-default}` (no variable set, unless `environ` has it)."""
    environ = {} if environ is None else environ
    return _COMPOSE_VARIABLE.sub(lambda m: environ.get(m["name"]) or m["default"] or "", value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as a dict of strings (list or mapping form)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def byte_size(text: str | int) -> int:
    """Compose's byte values: 64M, 512m, 1g, 1048576."""
    match = re.fullmatch(r"([0-9]+)\s*([bkmg]?)b?", str(text).strip().lower())
    if not match:
        raise ContractError(f"not a byte size: {text!r}")
    return int(match.group(1)) * _BYTE_UNITS[match.group(2)]


def seconds(duration: str) -> float:
    """A Prometheus or Compose duration (`15s`, `5m`, `1h30m`, `1500ms`) in seconds."""
    return parse_duration(str(duration)) / 1000


# --- the clock --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """Production durations as they run on a stack at `scale` (1/15: 12m -> 48s)."""

    scale: Fraction

    def seconds(self, production: float | str) -> float:
        """`production` (seconds, or a duration such as "12m") on this stack, rounded to the
        millisecond exactly as the renderers round it."""
        ms = parse_duration(production) if isinstance(production, str) else production * 1000
        return scale_milliseconds(round(ms), self.scale) / 1000

    def label(self, production: float | str) -> str:
        """`48s (12m)`: the scaled time with the production time it stands for."""
        text = production if isinstance(production, str) else _duration_text(production)
        return f"{self.seconds(production):g}s ({text})"


def _duration_text(production_s: float) -> str:
    if production_s >= 60 and production_s % 60 == 0:
        return f"{production_s / 60:g}m"
    return f"{production_s:g}s"

"""Harness settings, resolved in one order: command-line option, then environment, then default.

Every option is declared once here; the plugin (crm_events_cert) registers them with pytest from
this table, so the option, its environment variable and its help text never drift apart.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from harness.contract import TOPOLOGIES

STACK_MODES = ("containers", "external")
IMAGE_SETS = ("auto", "upstream", "offline")
UNIT_TIER_MODES = ("background", "inline")
# Between the entries of a repeatable option in its environment variable.
ENTRY_SEPARATOR = ";;"
# Production durations divided by 15: 15 s scrape -> 1 s, 5 m window -> 20 s, 12 m for: -> 48 s.
DEFAULT_CONTAINER_SCALE = Fraction(1, 15)


@dataclass(frozen=True)
class Option:
    flag: str
    env: str
    help: str
    default: str | None = None
    is_flag: bool = False
    repeatable: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS = (
    Option(
        "--stack",
        "CRM_CERT_STACK",
        "where the stack comes from: 'containers' (started by the suite) or 'external' "
        "(an existing deployment given by the endpoint options)",
        "containers",
    ),
    Option(
        "--images",
        "CRM_CERT_IMAGES",
        "image set for --stack=containers: 'upstream' (public images, pulled), 'offline' "
        "(built here by `nox -s images`, no registry needed) or 'auto' (upstream when their "
        "registries answer, else offline; the choice is printed with its reason)",
        "auto",
    ),
    Option(
        "--topology",
        "CRM_CERT_TOPOLOGY",
        "the topology for --stack=containers: 'single' (stack/compose.yaml: one of each) or "
        "'ha' (stack/compose-ha.yaml over it: three Kafka nodes, two exporters, two Prometheus, "
        "two clustered Alertmanagers)",
        "single",
    ),
    Option(
        "--time-scale",
        "CRM_CERT_TIME_SCALE",
        "factor applied to every duration of the live stack, e.g. 1/15 (default for "
        "containers) or 1 (default for external: real durations)",
    ),
    Option("--kafka-bootstrap", "CRM_CERT_KAFKA_BOOTSTRAP", "external: Kafka bootstrap servers"),
    Option("--prometheus-url", "CRM_CERT_PROMETHEUS_URL", "external: Prometheus base URL"),
    Option("--alertmanager-url", "CRM_CERT_ALERTMANAGER_URL", "external: Alertmanager base URL"),
    Option("--probe-url", "CRM_CERT_PROBE_URL", "external: readiness probe base URL"),
    Option("--exporter-url", "CRM_CERT_EXPORTER_URL", "external: kafka_exporter base URL"),
    Option(
        "--webhook-url",
        "CRM_CERT_WEBHOOK_URL",
        "external: a webhook receiver of this project that Alertmanager delivers to "
        "(alert delivery checks are NOT RUN without it)",
    ),
    Option(
        "--allow-destructive",
        "CRM_CERT_ALLOW_DESTRUCTIVE",
        "external: allow drills that break the deployment (with --fault-command)",
        is_flag=True,
    ),
    Option(
        "--fault-command",
        "CRM_CERT_FAULT_COMMANDS",
        "external: NAME:inject=COMMAND or NAME:restore=COMMAND for a named fault, e.g. "
        "'one-consumer-down:inject=kubectl scale deploy/crm-events-consumer --replicas=1' "
        "(repeat the option; in the environment, separate entries with ';;')",
        repeatable=True,
    ),
    Option(
        "--certify",
        "CRM_CERT_CERTIFY",
        "write the certification report (reports/) at the end of the run",
        is_flag=True,
    ),
    Option("--reports-dir", "CRM_CERT_REPORTS_DIR", "where reports are written", "reports"),
    Option(
        "--unit-tier",
        "CRM_CERT_UNIT_TIER",
        "how a certify run that has both runs the unit tier beside the live suites: "
        "'background' (a second pytest at a lower CPU priority, its output in "
        "<reports-dir>/unit-tier.log) or 'inline' (first, in this process)",
        "background",
    ),
    Option(
        "--stack-dir",
        "CRM_CERT_STACK_DIR",
        "the deployable files to certify, laid out like this project's stack/ (compose.yaml, "
        "prometheus/, alertmanager/, grafana/); default: the project's own stack/",
    ),
)


def add_options(add: Any) -> None:
    """Declare every option through `add(flag, **kwargs)`: pytest's `addoption` or argparse's
    `add_argument`, which take the same arguments."""
    for option in OPTIONS:
        text = f"{option.help} [env {option.env}]"
        if option.is_flag:
            add(option.flag, action="store_true", default=False, help=text)
        elif option.repeatable:
            add(option.flag, action="append", default=[], help=text)
        else:
            add(option.flag, default=None, help=text)


class HarnessSettingsError(ValueError):
    """A bad option; the message names the option or variable and the value."""


@dataclass
class Endpoints:
    """Where the suites reach the stack: 127.0.0.1 ports of the containers, or a deployment's."""

    kafka_bootstrap: str
    prometheus_url: str
    alertmanager_url: str
    probe_url: str
    exporter_url: str | None = None
    webhook_url: str | None = None
    consumer_urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HarnessSettings:
    stack: str = "containers"
    images: str = "auto"
    topology: str = "single"
    time_scale: Fraction = DEFAULT_CONTAINER_SCALE
    external: Endpoints | None = None
    allow_destructive: bool = False
    fault_commands: dict[str, dict[str, str]] = field(default_factory=dict)
    certify: bool = False
    reports_dir: str = "reports"
    stack_dir: str | None = None
    unit_tier: str = "background"


def resolve(get_option: Any, environ: dict[str, str] | None = None) -> HarnessSettings:
    """Settings from `get_option(dest)` (pytest's config.getoption), then environment, then
    defaults. Raises HarnessSettingsError naming the source of a bad value."""
    environ = dict(os.environ) if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}
    for option in OPTIONS:
        value = get_option(option.dest)
        if value not in (None, False, []):
            raw[option.dest] = (value, option.flag)
        elif option.env in environ and environ[option.env] != "":
            text = environ[option.env]
            if option.is_flag:
                parsed: Any = text.lower() in ("1", "true", "yes")
            elif option.repeatable:
                parsed = [part.strip() for part in text.split(ENTRY_SEPARATOR) if part.strip()]
            else:
                parsed = text
            raw[option.dest] = (parsed, option.env)
        elif option.default is not None:
            raw[option.dest] = (option.default, "default")

    def take(dest: str) -> Any:
        return raw.get(dest, (None, ""))[0]

    stack = _choice(raw, "stack", STACK_MODES)
    images = _choice(raw, "images", IMAGE_SETS)
    topology = _choice(raw, "topology", TOPOLOGIES)
    unit_tier = _choice(raw, "unit_tier", UNIT_TIER_MODES)
    scale = _scale(raw.get("time_scale"), stack)
    external = None
    if stack == "external":
        missing = [
            name
            for name in ("kafka_bootstrap", "prometheus_url", "alertmanager_url", "probe_url")
            if not take(name)
        ]
        if missing:
            flags = ", ".join(f"--{m.replace('_', '-')}" for m in missing)
            raise HarnessSettingsError(
                f"--stack=external needs {flags} (or their CRM_CERT_ variables)"
            )
        external = Endpoints(
            kafka_bootstrap=take("kafka_bootstrap"),
            prometheus_url=take("prometheus_url").rstrip("/"),
            alertmanager_url=take("alertmanager_url").rstrip("/"),
            probe_url=take("probe_url").rstrip("/"),
            exporter_url=(take("exporter_url") or "").rstrip("/") or None,
            webhook_url=(take("webhook_url") or "").rstrip("/") or None,
        )
    return HarnessSettings(
        stack=stack,
        images=images,
        topology=topology,
        time_scale=scale,
        external=external,
        allow_destructive=bool(take("allow_destructive")),
        fault_commands=_fault_commands(raw.get("fault_command")),
        certify=bool(take("certify")),
        reports_dir=take("reports_dir") or "reports",
        stack_dir=take("stack_dir") or None,
        unit_tier=unit_tier,
    )


def environment_of(get_option: Any, leave_out: frozenset[str] = frozenset()) -> dict[str, str]:
    """The inverse of resolve: the options `get_option(dest)` gives (not their defaults), as the
    variables that make another process resolve the same settings; `leave_out` names dests."""
    environment = {}
    for option in OPTIONS:
        value = get_option(option.dest)
        if option.dest in leave_out or value in (None, False, []):
            continue
        if option.is_flag:
            environment[option.env] = "1"
        elif option.repeatable:
            environment[option.env] = ENTRY_SEPARATOR.join(value)
        else:
            environment[option.env] = str(value)
    return environment


def _choice(raw: dict[str, tuple[Any, str]], dest: str, allowed: tuple[str, ...]) -> str:
    value, source = raw[dest]
    if value not in allowed:
        raise HarnessSettingsError(f"{source}={value!r}: must be one of {', '.join(allowed)}")
    return str(value)


def _scale(entry: tuple[Any, str] | None, stack: str) -> Fraction:
    if entry is None:
        return DEFAULT_CONTAINER_SCALE if stack == "containers" else Fraction(1)
    value, source = entry
    try:
        scale = Fraction(str(value)).limit_denominator(10_000)
    except (ValueError, ZeroDivisionError):
        raise HarnessSettingsError(
            f"{source}={value!r}: must be a number or fraction like 1/15"
        ) from None
    if not 0 < scale <= 1:
        raise HarnessSettingsError(f"{source}={value!r}: must be greater than 0 and at most 1")
    return scale


def _fault_commands(entry: tuple[Any, str] | None) -> dict[str, dict[str, str]]:
    commands: dict[str, dict[str, str]] = {}
    if entry is None:
        return commands
    values, source = entry
    for item in values:
        name_action, sep, command = item.partition("=")
        name, _, action = name_action.partition(":")
        if not sep or action not in ("inject", "restore") or not name or not command.strip():
            raise HarnessSettingsError(
                f"{source}={item!r}: expected NAME:inject=COMMAND or NAME:restore=COMMAND"
            )
        shlex.split(command)  # a command that does not parse is an error now, not mid-drill
        commands.setdefault(name.strip(), {})[action] = command.strip()
    return commands

"""Shared by the stack-file tests: paths, YAML loading, promtool/amtool runs, PromQL names."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import promql_parser as pp
import pytest
import yaml

from harness import engines
from harness.contract import stack_dir
from harness.engines import CURRENT

REPO = Path(__file__).resolve().parents[1]
# The deployable files under certification: stack/ of this checkout, or CRM_CERT_STACK_DIR (the
# same directory harness.contract.load() reads).
STACK = stack_dir()
PROMETHEUS_YML = STACK / "prometheus" / "prometheus.yml"
RULES_DIR = STACK / "prometheus" / "rules"
RECORDING_RULES = RULES_DIR / "crm_events_recording.yml"
ALERT_RULES = RULES_DIR / "crm_events_alerts.yml"
PROMTOOL_TESTS_DIR = STACK / "prometheus" / "tests"
ALERTMANAGER_YML = STACK / "alertmanager" / "alertmanager.yml"
ROUTE_TESTS = STACK / "alertmanager" / "route_tests.yml"
GRAFANA = STACK / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "crm_events_pipeline.json"

ENSURE_TOOLS = "scripts/ensure-tools.sh"
TOOL_TIMEOUT_S = 120

# Every series the stack's rules and dashboard may read that no recording rule produces: what
# kafka_exporter, the readiness probe and the CRM events consumers export, and Prometheus' `up`.
EXPORTER_METRICS = frozenset(
    {
        "kafka_brokers",
        "kafka_topic_partitions",
        "kafka_topic_partition_current_offset",
        "kafka_topic_partition_oldest_offset",
        "kafka_consumergroup_current_offset",
        "kafka_consumergroup_current_offset_sum",
        "kafka_consumergroup_lag",
        "kafka_consumergroup_lag_sum",
        "kafka_consumergroup_members",
    }
)
PROBE_METRICS = frozenset(
    {
        "health_probe_checks_total",
        "health_probe_status",
        "health_probe_duration_seconds_bucket",
        "health_probe_duration_seconds_sum",
        "health_probe_duration_seconds_count",
        "health_probe_prometheus_errors_total",
        "health_probe_prometheus_retries_total",
        "health_probe_last_success_timestamp_seconds",
    }
)
CONSUMER_METRICS = frozenset(
    {
        "crm_events_consumer_messages_processed_total",
        "crm_events_consumer_bytes_processed_total",
        "crm_events_consumer_last_processed_timestamp_seconds",
        "crm_events_consumer_processing_delay_seconds",
    }
)
SCRAPED_METRICS = EXPORTER_METRICS | PROBE_METRICS | CONSUMER_METRICS | {"up"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RECORDING_RULES)["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"]]


def tool_path(name: str, engine: str = CURRENT) -> str:
    """The engine's promtool or amtool; fails the test (never skips it) when it is missing.

    `current`: the pinned release harness.engines builds (CRM_CERT_<NAME>, when set, stands in
    for it: the mutation runs put a selecting promtool there); `debian`: Debian's package.
    """
    if engine == CURRENT:
        override = os.environ.get(f"CRM_CERT_{name.upper()}")
        if override:
            return override
        try:
            return str(engines.tool(name))
        except engines.EngineBuildError as error:
            pytest.fail(f"{name} of the current engine could not be built: {error}", pytrace=False)
    path = engines.debian_tool(name)
    if path is None:
        pytest.fail(
            f"Debian's {name} is missing: run `sudo bash {ENSURE_TOOLS}` (it installs Debian's "
            "prometheus and prometheus-alertmanager packages, which bring promtool and amtool)",
            pytrace=False,
        )
    return str(path)


def run_tool(
    name: str, *args: object, engine: str = CURRENT, timeout: float = TOOL_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run promtool or amtool of an engine; its exit code is the caller's to judge."""
    command = [tool_path(name, engine), *map(str, args)]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"`{shlex.join(command)}` did not finish within {timeout}s:\n{error.output}")


def check_tool(
    name: str, *args: object, engine: str = CURRENT, timeout: float = TOOL_TIMEOUT_S
) -> str:
    """Run promtool or amtool, assert it exits 0 (its output in the message); return its output."""
    result = run_tool(name, *args, engine=engine, timeout=timeout)
    assert result.returncode == 0, describe(result)
    return result.stdout + result.stderr


def run_rule_tests(path: Path, document: dict[str, Any]) -> None:
    """Write a promtool rule-test document to `path` and assert `promtool test rules` passes it."""
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    output = check_tool("promtool", "test", "rules", path)
    assert "SUCCESS" in output, output


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"`{shlex.join(result.args)}` exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
    )


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
    }
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and labels left out)."""
    code = _STRING.sub('""', expr)
    code = re.sub(r"\{[^}]*\}", " ", code)
    code = re.sub(r"\[[^\]]*\]", " ", code)
    code = re.sub(r"#[^\n]*", " ", code)
    code = _GROUPING.sub(" ", code)
    names = set()
    for match in _IDENTIFIER.finditer(code):
        name = match.group()
        if code[match.end() :].lstrip().startswith("(") or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


# Aggregations that keep one exporter's value when two exporters (the HA topology) report the same
# series, and sums those two double harmlessly, with the reason.
DEDUPLICATING = frozenset({"max", "min"})
HARMLESS_SUMS = {
    "CrmEventsConsumerStalled": "its sum of commit rates is compared with == 0: twice 0 is 0",
}


def exporter_series_summed(expr: str) -> list[str]:
    """kafka_exporter series whose nearest enclosing aggregation adds up what two exporters both
    report (sum, avg, count...): the HA topology scrapes two, which doubles such a value."""
    found: list[str] = []
    stack: list[Any] = []

    def pre(node: Any) -> None:
        if isinstance(node, pp.VectorSelector) and node.name in EXPORTER_METRICS:
            aggregations = [n for n in stack if isinstance(n, pp.AggregateExpr)]
            if aggregations and str(aggregations[-1].op) not in DEDUPLICATING:
                found.append(f"{aggregations[-1].op} over {node.name}")
        stack.append(node)

    def post(node: Any) -> None:
        stack.pop()

    pp.walk(pp.parse(expr), pre, post)
    return found


def run_sample(
    tmp_path: Path, source: str, *options: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run pytest, with this project's plugin (crm_events_cert), on `source` written to
    tmp_path/test_sample.py. Only the harness settings given here apply: none of the running
    suite's own (CRM_CERT_*, as in external mode)."""
    sample = tmp_path / "test_sample.py"
    sample.write_text(textwrap.dedent(source))
    return run_plugin(tmp_path, *options, str(sample), env=env)


def run_plugin(
    rootdir: Path, *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """pytest with this project's plugin, rooted at `rootdir`, with `arguments` and only the
    harness settings `env` gives."""
    command = [sys.executable, "-m", "pytest", "-p", "crm_events_cert", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "--rootdir", str(rootdir), "-q", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("CRM_CERT_")} | (env or {}),
    )

"""Sharper dashboard tests: every panel query, run by `promtool test rules` on a synthetic world
beside the recording rules it reads, shows what its panel says it shows.

The world holds the service's consumer group (two topics: the contract's and another one) beside
another group, another topic, several consumers, probes and exporters, and counters whose
increase happens once, inside the last 5 minutes (or once, earlier), so that a query reading
another group or topic, aggregating the wrong way or over another range gives another value.
The expected value of each panel is computed here from the world, by what the panel means
(`EXPECTED`): the query text is never compared. Found by mutation testing (harness/mutants).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import services as svc
from harness.contract import load
from tests.tools import DASHBOARD, RECORDING_RULES, exporter_series_summed, run_rule_tests

pytestmark = [pytest.mark.claim("grafana.dashboard")]

STEP_S = 15
EVAL_S = 600  # the evaluation time: 10 minutes of samples
SAMPLES = EVAL_S // STEP_S
WINDOW_S = 300  # the rates' window, as every rate of the recording rules reads it
RECENT, OLD = SAMPLES - 16, 4  # where a counter's one increase starts (sample index)
TOLERANCE = 1e-6

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Series:
    metric: str
    labels: dict[str, str]
    value: float  # a gauge's value, or a counter's one increase
    increase_at: int | None = None  # a counter: the sample where its increase starts

    def values(self) -> str:
        if self.increase_at is None:
            return f"{self.value:g}x{SAMPLES}"
        ramp = " ".join(f"{self.value * k / 4:g}" for k in range(1, 5))
        after = SAMPLES - self.increase_at - 4
        return f"0x{self.increase_at} {ramp} {self.value:g}x{after}"

    def rate(self) -> float:
        """Its per-second rate over the last WINDOW_S at EVAL_S."""
        recent = self.increase_at is not None and self.increase_at * STEP_S >= EVAL_S - WINDOW_S
        return self.value / WINDOW_S if recent else 0.0

    def key(self, *names: str) -> Labels:
        return frozenset((name, self.labels[name]) for name in names)


@dataclass
class World:
    group: str
    topic: str
    series: list[Series] = field(default_factory=list)

    @property
    def other_group(self) -> str:
        return f"{self.group}-other"

    @property
    def other_topic(self) -> str:
        return f"{self.topic}-other"

    def add(self, metric: str, value: float, at: int | None = None, **labels: str) -> None:
        self.series.append(Series(metric, labels, value, at))

    def of(self, metric: str, **labels: str) -> list[Series]:
        return [
            s
            for s in self.series
            if s.metric == metric and all(s.labels.get(k) == v for k, v in labels.items())
        ]


def pipeline_jobs() -> list[str]:
    """prometheus.yml's jobs that scrape the pipeline (not Prometheus or Alertmanager)."""
    own = {svc.PROMETHEUS, svc.ALERTMANAGER, "localhost"}
    jobs = []
    for job in load().prometheus["scrape_configs"]:
        hosts = [
            str(target).split(":")[0]
            for config in job.get("static_configs") or []
            for target in config["targets"]
        ] + [str(name) for config in job.get("dns_sd_configs") or [] for name in config["names"]]
        if not set(hosts) <= own:
            jobs.append(str(job["job_name"]))
    return jobs


def world() -> World:
    contract = load()
    w = World(contract.group, contract.topic)
    g, g2, t, t2 = w.group, w.other_group, w.topic, w.other_topic
    lag = "kafka_consumergroup_lag"
    for partition, value in ((0, 30), (1, 15), (2, 0)):
        w.add(lag, value, consumergroup=g, topic=t, partition=str(partition))
    w.add(lag, 7, consumergroup=g, topic=t2, partition="0")
    w.add(lag, 1000, consumergroup=g2, topic=t, partition="0")
    offset = "kafka_consumergroup_current_offset"
    w.add(offset, 300, RECENT, consumergroup=g, topic=t, partition="0")
    w.add(offset, 150, RECENT, consumergroup=g, topic=t, partition="1")
    w.add(offset, 600, OLD, consumergroup=g, topic=t, partition="2")
    w.add(offset, 600, RECENT, consumergroup=g, topic=t2, partition="0")
    w.add(offset, 3000, RECENT, consumergroup=g2, topic=t, partition="0")
    w.add("kafka_consumergroup_members", 2, consumergroup=g)
    w.add("kafka_consumergroup_members", 5, consumergroup=g2)
    produced = "kafka_topic_partition_current_offset"
    w.add(produced, 600, RECENT, topic=t, partition="0")
    w.add(produced, 300, RECENT, topic=t, partition="1")
    w.add(produced, 900, OLD, topic=t, partition="2")
    w.add(produced, 1500, RECENT, topic=t2, partition="0")
    # Two exporters of the one cluster (a second one during a migration, say).
    for exporter in ("exporter-1", "exporter-2"):
        w.add("kafka_brokers", 3, instance=exporter)
    # Consumers: c1 and c2 of the service, both reporting partition 0 after a rebalance.
    processed, size = "crm_events_consumer_messages_processed_total", "crm_events_consumer_"
    w.add(processed, 300, RECENT, instance="c1", topic=t, partition="0")
    w.add(processed, 150, RECENT, instance="c1", topic=t, partition="1")
    w.add(processed, 900, OLD, instance="c1", topic=t, partition="2")
    w.add(processed, 600, RECENT, instance="c2", topic=t, partition="2")
    w.add(f"{size}bytes_processed_total", 3000, RECENT, instance="c1", topic=t, partition="0")
    w.add(f"{size}bytes_processed_total", 1500, RECENT, instance="c2", topic=t, partition="1")
    w.add(f"{size}bytes_processed_total", 6000, OLD, instance="c2", topic=t, partition="2")
    w.add(f"{size}bytes_processed_total", 30000, RECENT, instance="c1", topic=t2, partition="0")
    delay = f"{size}processing_delay_seconds"
    w.add(delay, 0.5, instance="c1")
    w.add(delay, 0.25, instance="c2")
    stamp = f"{size}last_processed_timestamp_seconds"
    w.add(stamp, 500, instance="c1", topic=t, partition="0")
    w.add(stamp, 550, instance="c2", topic=t, partition="0")
    w.add(stamp, 580, instance="c2", topic=t, partition="1")
    # Scrape targets: every job of prometheus.yml, three consumers of which one is down.
    for job in [str(j["job_name"]) for j in load().prometheus["scrape_configs"]]:
        w.add("up", 1, job=job, instance=f"{job}-1")
    consumers = [job for job in pipeline_jobs() if "consumer" in job]
    for job in consumers:
        w.add("up", 1, job=job, instance=f"{job}-2")
        w.add("up", 0, job=job, instance=f"{job}-3")
    # Probes: one ready, one not; their checks, errors, retries and evaluation times.
    w.add("health_probe_status", 1, instance="p1")
    w.add("health_probe_status", 0, instance="p2")
    checks = "health_probe_checks_total"
    w.add(checks, 300, RECENT, instance="p1", check="skew", result="fail")
    w.add(checks, 600, RECENT, instance="p1", check="consumer_count", result="fail")
    w.add(checks, 150, RECENT, instance="p2", check="skew", result="fail")
    w.add(checks, 300, OLD, instance="p2", check="consumer_count", result="fail")
    w.add(checks, 900, RECENT, instance="p1", check="skew", result="ok")
    errors = "health_probe_prometheus_errors_total"
    w.add(errors, 300, RECENT, instance="p1", kind="timeout")
    w.add(errors, 600, RECENT, instance="p2", kind="timeout")
    w.add(errors, 150, RECENT, instance="p2", kind="connection")
    w.add(errors, 600, OLD, instance="p1", kind="connection")
    retries = "health_probe_prometheus_retries_total"
    w.add(retries, 300, RECENT, instance="p1")
    w.add(retries, 150, RECENT, instance="p2")
    w.add(retries, 600, OLD, instance="p3")
    bucket = "health_probe_duration_seconds_bucket"
    for le, p1, p2 in (("0.1", 0, 300), ("0.5", 300, 300), ("+Inf", 300, 300)):
        w.add(bucket, p1, RECENT, instance="p1", le=le)
        w.add(bucket, p2, RECENT, instance="p2", le=le)
    for le, p3 in (("0.1", 0), ("0.5", 0), ("+Inf", 600)):
        w.add(bucket, p3, OLD, instance="p3", le=le)
    return w


# --- what each panel shows, computed from the world -------------------------------------------

Result = dict[Labels, float]


def by(
    series: Iterable[Series], names: tuple[str, ...], value: Callable[[Series], float]
) -> Result:
    found: dict[Labels, float] = defaultdict(float)
    for s in series:
        found[s.key(*names)] += value(s)
    return dict(found)


def rates(series: Iterable[Series], *names: str) -> Result:
    return by(series, names, Series.rate)


def group_lag(w: World) -> dict[Labels, list[float]]:
    lags: dict[Labels, list[float]] = defaultdict(list)
    for s in w.of("kafka_consumergroup_lag", consumergroup=w.group):
        lags[s.key("consumergroup", "topic")].append(max(s.value, 0.0))
    return lags


def drain_eta(w: World) -> Result:
    consumed = rates(w.of("kafka_consumergroup_current_offset"), "consumergroup", "topic")
    return {key: sum(lags) / max(consumed[key], 0.001) for key, lags in group_lag(w).items()}


def quantile(q: float, values: list[float]) -> float:
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    bounds = sorted(buckets)
    rank = q * buckets[math.inf]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == math.inf:
                return lower
            return lower + (bound - lower) * (rank - below) / (buckets[bound] - below)
        lower, below = bound, buckets[bound]
    return math.nan


def one(value: float) -> Result:
    return {frozenset(): value}


def topic_rate(w: World, metric: str) -> Result:
    return rates(w.of(metric, topic=w.topic), "topic")


def durations(w: World) -> Result:
    summed = rates(w.of("health_probe_duration_seconds_bucket"), "le")
    buckets = {float(dict(key)["le"]): value for key, value in summed.items()}
    return one(histogram_quantile(0.95, buckets))


EXPECTED: dict[str, Callable[[World], Result]] = {
    # Total lag of the service's group over every topic it reads.
    "1/A": lambda w: one(sum(sum(lags) for lags in group_lag(w).values())),
    # The group has drained when its slowest topic has.
    "2/A": lambda w: one(max(drain_eta(w).values())),
    # 0 as soon as one probe is not ready.
    "3/A": lambda w: one(min(s.value for s in w.of("health_probe_status"))),
    "4/A": lambda w: one(sum(topic_rate(w, "kafka_topic_partition_current_offset").values())),
    # Targets up per pipeline job.
    "5/A": lambda w: by(
        [s for s in w.of("up") if s.labels["job"] in pipeline_jobs()], ("job",), lambda s: s.value
    ),
    # The cluster's brokers, however many exporters report them.
    "6/A": lambda w: one(max(s.value for s in w.of("kafka_brokers"))),
    "7/A": lambda w: topic_rate(w, "kafka_topic_partition_current_offset"),
    "8/A": lambda w: topic_rate(w, "kafka_topic_partition_current_offset"),
    "8/B": lambda w: rates(
        w.of("kafka_consumergroup_current_offset", consumergroup=w.group, topic=w.topic), "topic"
    ),
    "9/A": lambda w: rates(w.of("crm_events_consumer_messages_processed_total"), "instance"),
    "10/A": lambda w: topic_rate(w, "crm_events_consumer_bytes_processed_total"),
    "11/A": lambda w: {key: quantile(0.95, lags) for key, lags in group_lag(w).items()},
    "12/A": drain_eta,
    "13/A": lambda w: {key: sum(lags) for key, lags in group_lag(w).items()},
    "13/B": lambda w: {key: 0.0 for key in group_lag(w)},  # the lag holds still
    "14/A": lambda w: by(
        w.of("crm_events_consumer_processing_delay_seconds"), ("instance",), lambda s: s.value
    ),
    # Seconds since any consumer last processed each partition.
    "15/A": lambda w: {
        key: EVAL_S - value
        for key, value in latest(w.of("crm_events_consumer_last_processed_timestamp_seconds"))
    },
    "16/A": lambda w: rates(w.of("health_probe_checks_total", result="fail"), "check"),
    "16/B": lambda w: rates(w.of("health_probe_prometheus_errors_total"), "kind"),
    "16/C": lambda w: one(sum(s.rate() for s in w.of("health_probe_prometheus_retries_total"))),
    "16/D": durations,
    "17/A": lambda w: {
        s.key("consumergroup", "topic", "partition"): max(s.value, 0.0)
        for s in w.of("kafka_consumergroup_lag", consumergroup=w.group)
    },
    "18/A": lambda w: {
        s.key("consumergroup"): s.value
        for s in w.of("kafka_consumergroup_members", consumergroup=w.group)
    },
    "19/A": lambda w: {
        key: max(lags) / max(sum(lags) / len(lags), 1.0) for key, lags in group_lag(w).items()
    },
}


def latest(series: list[Series]) -> list[tuple[Labels, float]]:
    found: dict[Labels, float] = {}
    for s in series:
        key = s.key("topic", "partition")
        found[key] = max(found.get(key, -math.inf), s.value)
    return list(found.items())


# --- the promtool test ------------------------------------------------------------------------


def panel_queries() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['id']}/{target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel["targets"]
    }


def labels_text(labels: Labels) -> str:
    return "{" + ",".join(f'{name}="{value}"' for name, value in sorted(labels)) + "}"


def checks(query: str, expected: Result) -> list[dict[str, Any]]:
    """One check per distinct expected value: every series of the panel, 1 where it holds that
    value and 0 elsewhere (so the panel's series are exactly the expected ones)."""
    found = []
    for value in sorted(set(expected.values())):
        if math.isnan(value):
            raise AssertionError("the world gives a panel no value")
        found.append(
            {
                "expr": f"abs(({query}) - {value!r}) < bool {TOLERANCE}",
                "eval_time": f"{EVAL_S}s",
                "exp_samples": [
                    {
                        "labels": labels_text(key),
                        "value": int(abs(other - value) < TOLERANCE),
                    }
                    for key, other in sorted(expected.items(), key=lambda item: sorted(item[0]))
                ],
            }
        )
    return found


def test_every_panel_is_specified():
    assert set(panel_queries()) == set(EXPECTED)


def test_every_panel_query_shows_what_its_panel_means(tmp_path: Path):
    w = world()
    queries = panel_queries()
    cases = []
    for ref, query in queries.items():
        expected = EXPECTED[ref](w)
        assert expected, f"panel {ref}: the world gives it no series"
        cases += checks(query, expected)
    document = {
        "rule_files": [str(RECORDING_RULES.resolve())],
        "evaluation_interval": f"{STEP_S}s",
        "tests": [
            {
                "name": "dashboard panels",
                "interval": f"{STEP_S}s",
                "input_series": [
                    {"series": s.metric + labels_text(s.key(*s.labels)), "values": s.values()}
                    for s in w.series
                ],
                "promql_expr_test": cases,
            }
        ],
    }
    run_rule_tests(tmp_path / "dashboard_test.yml", document)


def test_no_panel_adds_up_what_two_exporters_both_report() -> None:
    """The HA topology scrapes two exporters of one cluster: a panel that sums their series
    shows twice the value. Per partition `max` first, then sum."""
    summed = {
        f"panel {panel['id']}/{target['refId']}": found
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel.get("targets", [])
        if (found := exporter_series_summed(target["expr"]))
    }
    assert summed == {}, summed

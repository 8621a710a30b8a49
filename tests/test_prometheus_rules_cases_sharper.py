"""Sharper rule tests: the edges the promtool tests of stack/prometheus/tests/ leave open, each a
`promtool test rules` case built here on the deployed rule files (found by mutation testing,
harness/mutants):

- one message stuck is enough: a partition with a lag of 1 and no commit is stuck, and a group
  with one member that commits nothing while 1 message waits is stalled; a stalled group with
  nothing waiting is not;
- an alert about one scrape job ignores the others: the exporter down with the probe up fires
  neither the probe's alert nor "service down" (the exporter cannot list the group), and the probe
  down fires no exporter alert;
- a probe that is not ready while some of its check counters stand still is still evaluating;
- two kafka_exporters scraping the same cluster double neither the members nor the lag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import services as svc
from harness.contract import load
from tests.tools import ALERT_RULES, RECORDING_RULES, run_rule_tests

STEP = "15s"
SAMPLES = 80  # 20 minutes
LATE = "19m"  # after every `for:` of the alerts checked here


def job_of(host: str) -> str:
    """The prometheus.yml job that scrapes `host`."""
    for job in load().prometheus["scrape_configs"]:
        targets = [
            str(target).split(":")[0]
            for config in job.get("static_configs") or []
            for target in config["targets"]
        ]
        if host in targets:
            return str(job["job_name"])
    raise AssertionError(f"no job scrapes {host}")


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    text = ",".join(f'{name}="{value}"' for name, value in labels.items())
    return {"series": f"{metric}{{{text}}}", "values": values}


def firing(alert: str, count: int) -> dict[str, Any]:
    """At LATE, `alert` fires for `count` label sets (0: not at all)."""
    return {
        "expr": f'count(ALERTS{{alertname="{alert}",alertstate="firing"}})',
        "eval_time": LATE,
        "exp_samples": [{"labels": "{}", "value": count}] if count else [],
    }


def group_series(
    lag: int, members: int | None, partition: str = "0", consumed: bool = False
) -> list[dict[str, str]]:
    """The service's group on its topic: one partition's lag, its committed offset (moving or
    not) and the group's members (None: not listed)."""
    contract = load()
    where = {"consumergroup": contract.group, "topic": contract.topic, "partition": partition}
    exporter = {"job": job_of(svc.EXPORTER), "instance": f"{svc.EXPORTER}:9308"}
    found = [
        series("kafka_consumergroup_lag", f"{lag}x{SAMPLES}", **exporter, **where),
        series(
            "kafka_consumergroup_current_offset",
            f"1000+5x{SAMPLES}" if consumed else f"1000x{SAMPLES}",
            **exporter,
            **where,
        ),
    ]
    if members is not None:
        found.append(
            series(
                "kafka_consumergroup_members",
                f"{members}x{SAMPLES}",
                **exporter,
                consumergroup=contract.group,
            )
        )
    return found


def up(host: str, value: int) -> dict[str, str]:
    return series("up", f"{value}x{SAMPLES}", job=job_of(host), instance=f"{host}:1")


def promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    document = {
        "rule_files": [str(RECORDING_RULES.resolve()), str(ALERT_RULES.resolve())],
        "evaluation_interval": STEP,
        "tests": [{"interval": STEP, **test} for test in tests],
    }
    run_rule_tests(tmp_path / "cases_test.yml", document)


@pytest.mark.claim("rules.alerts")
def test_one_waiting_message_is_enough_and_none_is_not(tmp_path: Path) -> None:
    promtool(
        tmp_path,
        [
            {
                "name": "1 message on a partition nobody commits on, one member",
                "input_series": [*group_series(lag=1, members=1)],
                "promql_expr_test": [
                    firing("CrmEventsPartitionStuck", 1),
                    firing("CrmEventsConsumerStalled", 1),
                ],
            },
            {
                "name": "members that commit nothing with nothing waiting",
                "input_series": [*group_series(lag=0, members=2)],
                "promql_expr_test": [
                    firing("CrmEventsPartitionStuck", 0),
                    firing("CrmEventsConsumerStalled", 0),
                ],
            },
        ],
    )


@pytest.mark.claim("rules.alerts")
def test_an_alert_about_one_scrape_job_ignores_the_others(tmp_path: Path) -> None:
    promtool(
        tmp_path,
        [
            {
                "name": "the exporter down (the group unlisted), the probe up",
                "input_series": [up(svc.EXPORTER, 0), up(svc.PROBE, 1)],
                "promql_expr_test": [
                    firing("CrmEventsKafkaExporterDown", 1),
                    firing("CrmEventsHealthProbeDown", 0),
                    firing("CrmEventsServiceDown", 0),
                ],
            },
            {
                "name": "the probe down, the exporter up and listing the group",
                "input_series": [
                    up(svc.EXPORTER, 1),
                    up(svc.PROBE, 0),
                    *group_series(lag=0, members=2, consumed=True),
                ],
                "promql_expr_test": [
                    firing("CrmEventsKafkaExporterDown", 0),
                    firing("CrmEventsHealthProbeDown", 1),
                ],
            },
        ],
    )


@pytest.mark.claim("rules.alerts")
def test_a_probe_not_ready_fires_while_some_check_counters_stand_still(tmp_path: Path) -> None:
    probe = {"job": job_of(svc.PROBE), "instance": f"{svc.PROBE}:1"}
    promtool(
        tmp_path,
        [
            {
                "name": "not ready: the skew check fails at every evaluation, consumers pass once",
                "input_series": [
                    series("health_probe_status", f"0x{SAMPLES}", **probe),
                    series(
                        "health_probe_checks_total",
                        f"0+1x{SAMPLES}",
                        **probe,
                        check="skew",
                        result="fail",
                    ),
                    series(
                        "health_probe_checks_total",
                        f"1x{SAMPLES}",
                        **probe,
                        check="consumer_count",
                        result="ok",
                    ),
                ],
                "promql_expr_test": [firing("CrmEventsHealthProbeNotReady", 1)],
            }
        ],
    )


@pytest.mark.claim("rules.recording")
def test_two_exporters_of_one_cluster_double_nothing(tmp_path: Path) -> None:
    contract = load()
    group = {"consumergroup": contract.group}
    where = {**group, "topic": contract.topic, "partition": "0"}
    exporters = [{"job": job_of(svc.EXPORTER), "instance": f"exporter-{i}:9308"} for i in (1, 2)]
    promtool(
        tmp_path,
        [
            {
                "name": "two exporters, the same members and lag",
                "input_series": [
                    *(
                        series("kafka_consumergroup_members", f"2x{SAMPLES}", **e, **group)
                        for e in exporters
                    ),
                    *(
                        series("kafka_consumergroup_lag", f"30x{SAMPLES}", **e, **where)
                        for e in exporters
                    ),
                ],
                "promql_expr_test": [
                    {
                        "expr": "kafka:group_consumer_count",
                        "eval_time": "1m",
                        "exp_samples": [
                            {
                                "labels": "kafka:group_consumer_count"
                                f'{{consumergroup="{contract.group}"}}',
                                "value": 2,
                            }
                        ],
                    },
                    {
                        "expr": "kafka:group_partition_lag",
                        "eval_time": "1m",
                        "exp_samples": [
                            {
                                "labels": "kafka:group_partition_lag{"
                                + ",".join(f'{k}="{v}"' for k, v in where.items())
                                + "}",
                                "value": 30,
                            }
                        ],
                    },
                ],
            }
        ],
    )


@pytest.mark.claim("rules.alerts")
def test_a_growing_lag_at_exactly_the_threshold_is_not_above_it(tmp_path: Path) -> None:
    """The lag-growing alert reads the recorded lag sum: given directly here, every 5s, with
    a trend that rises (the samples between evaluations climb) while every sample an evaluation
    reads, one per 15s, is exactly at the threshold (or one above it, where it must fire)."""
    contract = load()
    threshold = contract.alert_threshold("CrmEventsLagGrowing")
    where = f'consumergroup="{contract.group}",topic="{contract.topic}"'
    blocks = 160  # 40 minutes of 15s evaluations, 3 samples each

    def sawtooth(peak: float) -> str:
        low = threshold / 2
        return " ".join(f"{peak:g} {low + k:g} {low + k:g}" for k in range(blocks))

    tests = [
        {
            "name": f"growing lag, evaluated at {label}",
            "interval": "5s",
            "input_series": [
                {"series": f"kafka:group_lag_sum{{{where}}}", "values": sawtooth(peak)}
            ],
            "promql_expr_test": [
                {**firing("CrmEventsLagGrowing", count), "eval_time": "39m"},
            ],
        }
        for label, peak, count in (
            ("exactly the threshold", threshold, 0),
            ("one above the threshold", threshold + 1, 1),
        )
    ]
    document = {
        "rule_files": [str(ALERT_RULES.resolve())],
        "evaluation_interval": STEP,
        "tests": tests,
    }
    run_rule_tests(tmp_path / "threshold_test.yml", document)

"""The probe's queries as stack/compose.yaml deploys them, run by promtool over the recording
rules on synthetic series: what each returns for a group that consumes, idles, stalls, or has
less history than its window.

The HTTP tests prove how the probe judges an answer; these prove the answers its queries give.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.contract import CHECKLIST, load
from probe.settings import ProbeSettings
from tests.tools import RECORDING_RULES, run_rule_tests

pytestmark = [pytest.mark.claim("probe.ready")]

SCRAPE = "15s"
TOPIC = load().topic


def deployed_queries() -> dict[str, str]:
    return ProbeSettings.from_env(load().probe_env).queries


def series(metric: str, values: str, partition: int, group: str = CHECKLIST.group) -> dict:
    labels = f'consumergroup="{group}",topic="{TOPIC}",partition="{partition}"'
    return {"series": f"{metric}{{{labels}}}", "values": values}


def group_result(value: float) -> list[dict[str, Any]]:
    return [{"labels": f'{{consumergroup="{CHECKLIST.group}",topic="{TOPIC}"}}', "value": value}]


def run(tmp_path: Path, input_series: list[dict], expected: list[dict[str, Any]], at: str) -> None:
    document = {
        "rule_files": [str(RECORDING_RULES.resolve())],
        "evaluation_interval": SCRAPE,
        "tests": [
            {
                "interval": SCRAPE,
                "input_series": input_series,
                "promql_expr_test": [
                    {
                        "expr": deployed_queries()["progress"],
                        "eval_time": at,
                        "exp_samples": expected,
                    }
                ],
            }
        ],
    }
    run_rule_tests(tmp_path / "progress_test.yml", document)


# Forty scrapes of 15 s: ten minutes, twice the checklist's window, evaluated at the end.
SCRAPES = 40
END = f"{(SCRAPES - 1) * 15}s"


def two_partitions(lag: tuple[str, str], offsets: tuple[str, str]) -> list[dict]:
    return [
        *(series("kafka_consumergroup_lag", lag[p], p) for p in (0, 1)),
        *(series("kafka_consumergroup_current_offset", offsets[p], p) for p in (0, 1)),
    ]


def test_a_consuming_group_with_a_backlog_is_not_stalled(tmp_path: Path) -> None:
    # 5 messages always wait on partition 0, but the group commits on it at every scrape.
    consuming = two_partitions((f"5x{SCRAPES}", f"0x{SCRAPES}"), (f"100+3x{SCRAPES}", "7x40"))
    run(tmp_path, consuming, group_result(0), END)


def test_an_idle_group_is_not_stalled(tmp_path: Path) -> None:
    idle = two_partitions((f"0x{SCRAPES}", f"0x{SCRAPES}"), (f"100x{SCRAPES}", f"7x{SCRAPES}"))
    run(tmp_path, idle, group_result(0), END)


def test_messages_waiting_the_whole_window_uncommitted_are_the_stall(tmp_path: Path) -> None:
    # Committed offsets frozen; the backlog grows by one a scrape from 3 at the first scrape
    # inside the window (a range selector leaves out its start): the messages that waited the
    # whole window are its least.
    start = SCRAPES - round(CHECKLIST.window_s / 15)
    lag = f"0x{start - 1} 3+1x{SCRAPES - start}"
    stalled = two_partitions((lag, f"0x{SCRAPES}"), (f"100x{SCRAPES}", f"7x{SCRAPES}"))
    run(tmp_path, stalled, group_result(3), END)


def test_a_stall_shorter_than_the_window_is_not_one_yet(tmp_path: Path) -> None:
    # Nothing committed for ten minutes, but messages have waited only for the last four.
    waiting = round(CHECKLIST.window_s / 15) - 4
    lag = f"0x{SCRAPES - waiting - 1} 4x{waiting}"
    offsets = (f"100x{SCRAPES}", f"7x{SCRAPES}")
    run(tmp_path, two_partitions((lag, f"0x{SCRAPES}"), offsets), group_result(0), END)
    # A minute later they have waited the whole window.
    later = f"0x{SCRAPES - waiting - 1} 4x{waiting + 4}"
    run(tmp_path, two_partitions((later, f"0x{SCRAPES + 4}"), offsets), group_result(4), "10m45s")


def test_one_commit_in_the_window_is_progress(tmp_path: Path) -> None:
    lag = f"9x{SCRAPES}"
    offsets = f"100x{SCRAPES - 3} 101x2"  # one message committed two scrapes ago
    run(tmp_path, two_partitions((lag, lag), (offsets, f"7x{SCRAPES}")), group_result(0), END)


def test_one_sample_of_history_is_no_answer_not_a_stall(tmp_path: Path) -> None:
    # A Prometheus that has scraped the exporter once (an empty TSDB just after a restart)
    # cannot tell a stall from progress: no series, so the probe says no_data.
    one = two_partitions(("_x38 9", "_x38 0"), ("_x38 100", "_x38 7"))
    run(tmp_path, one, [], END)


def test_another_groups_stall_is_not_the_services(tmp_path: Path) -> None:
    other = f"{CHECKLIST.group}-other"
    stalled_other = [
        series("kafka_consumergroup_lag", f"9x{SCRAPES}", 0, other),
        series("kafka_consumergroup_current_offset", f"100x{SCRAPES}", 0, other),
    ]
    idle = two_partitions((f"0x{SCRAPES}", f"0x{SCRAPES}"), (f"100x{SCRAPES}", f"7x{SCRAPES}"))
    run(tmp_path, stalled_other + idle, group_result(0), END)

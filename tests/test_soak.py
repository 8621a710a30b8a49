"""The soak session's own parts: reading a run's evidence, the summary, a hog that ends itself."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.soak import Run, markdown, read_run, start_hog

pytestmark = pytest.mark.claim("harness.self_test")


def test_a_run_reads_its_failures_and_its_slowest_episode(tmp_path: Path) -> None:
    (tmp_path / "evidence.json").write_text(
        json.dumps(
            {
                "verdict": "NOT CERTIFIED",
                "tests": [
                    {"nodeid": "a::ok", "outcome": "passed", "claims": ["x"], "detail": ""},
                    {
                        "nodeid": "a::late",
                        "outcome": "failed",
                        "claims": ["skew.flip"],
                        "detail": "flip 31.0s, [17, 26]",
                    },
                ],
                "episodes": {
                    "quick": {"measured_s": 11.0, "floor_s": 10.0},
                    "slow": {"measured_s": 30.0, "floor_s": 20.0},
                    "no floor": {"measured_s": 5.0, "floor_s": 0.0},
                },
                "run_against_floor": {"run_s": 80.0, "apart_s": 20, "floor_s": 30, "ratio": 2.0},
            }
        )
    )
    run = Run(1, hog=True)
    read_run(run, tmp_path)
    assert run.verdict == "NOT CERTIFIED"
    assert run.failures == [
        {"test": "a::late", "claims": ["skew.flip"], "detail": "flip 31.0s, [17, 26]"}
    ]
    assert run.slowest_episode == {
        "episode": "slow",
        "measured_s": 30.0,
        "floor_s": 20.0,
        "ratio": 1.5,
    }
    assert run.run_ratio == 2.0
    summary = markdown([run, Run(2, hog=False, verdict="CERTIFIED", exit_code=0)])
    assert "| 1 | yes | NOT CERTIFIED | -1 | 0 s | 2.0 | slow: 30.0 s / 20.0 s = 1.5 |" in summary
    assert "2 runs, 1 CERTIFIED, 1 failure(s)." in summary
    assert "run 1: `a::late` (skew.flip): flip 31.0s, [17, 26]" in summary


def test_a_run_without_a_report_says_so(tmp_path: Path) -> None:
    run = Run(1, hog=False)
    read_run(run, tmp_path)
    assert run.verdict == "no report" and run.failures == []


def test_an_ha_run_certified_in_its_scope_counts_as_certified() -> None:
    runs = [Run(n, hog=False, verdict="CERTIFIED (ha topology)", exit_code=0) for n in (1, 2)]
    assert all(run.certified for run in runs)
    assert "2 runs, 2 CERTIFIED, 0 failure(s)." in markdown(runs)
    assert not Run(3, hog=True, verdict="NOT CERTIFIED").certified


def test_the_hog_ends_by_itself() -> None:
    hog = start_hog(max_s=0.5)
    try:
        started = time.monotonic()
        assert hog.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        hog.kill()

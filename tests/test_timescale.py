"""The time-scale renderer changes every duration of the stack's files, and nothing else.

The checks here do not reuse the renderer's own notion of a duration: any string value that looks
like a Prometheus duration must come out multiplied, every other value must come out identical,
and PromQL must differ only in the durations of its ranges, subqueries and offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.timescale import (
    render_alertmanager_config,
    render_prometheus_config,
    render_rules,
    scale_duration,
    scale_promql,
    scaled,
)
from tests.tools import ALERTMANAGER_YML, PROMETHEUS_YML, RULES_DIR, check_tool

DRILL_SCALE = Fraction(1, 15)
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d)")
LOOKS_LIKE_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d))+$")
# Durations in PromQL: a range or subquery in brackets, or an offset.
PROMQL_DURATION = re.compile(
    r"(?<=\[)[0-9a-z]+(?=[]:])|(?<=:)[0-9a-z]+(?=\])|(?<=offset )[0-9a-z]+"
)

Renderer = Callable[[str, Any], str]
FILES: list[tuple[Path, Renderer]] = [
    *((path, render_rules) for path in sorted(RULES_DIR.glob("*.yml"))),
    (PROMETHEUS_YML, render_prometheus_config),
    (ALERTMANAGER_YML, render_alertmanager_config),
]
FILE_IDS = [path.name for path, _ in FILES]


def milliseconds(text: str) -> int:
    assert LOOKS_LIKE_DURATION.fullmatch(text), text
    return sum(int(number) * UNIT_MS[unit] for number, unit in DURATION.findall(text))


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every scalar; mapping keys and list lengths are part of the paths."""
    if isinstance(node, dict):
        yield f"{path}{{}}", tuple(node)
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        yield f"{path}[]", len(node)
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}[{index}]")
    else:
        yield path, node


def rendered_pairs(path: Path, render: Renderer, factor: Any) -> list[tuple[str, Any, Any]]:
    original = yaml.safe_load(path.read_text())
    rendered = yaml.safe_load(render(path.read_text(), factor))
    before, after = list(leaves(original)), list(leaves(rendered))
    assert [key for key, _ in before] == [key for key, _ in after], "the structure changed"
    return [(key, old, new) for (key, old), (_, new) in zip(before, after, strict=True)]


def expected_ms(text: str, factor: Fraction) -> int:
    exact = milliseconds(text) * factor
    return max(1, int(exact + Fraction(1, 2)))


@pytest.mark.claim("rules.time_scale")
@pytest.mark.parametrize(("path", "render"), FILES, ids=FILE_IDS)
def test_only_durations_change_and_each_is_exactly_the_scale_times_the_original(
    path: Path, render: Renderer
):
    durations = 0
    for key, old, new in rendered_pairs(path, render, DRILL_SCALE):
        if isinstance(old, str) and LOOKS_LIKE_DURATION.fullmatch(old):
            # Exact at the drills' scale: no rounding hides a wrong factor.
            assert milliseconds(old) * DRILL_SCALE == milliseconds(new), (key, old, new)
            durations += 1
        elif key.endswith(".expr"):
            assert PROMQL_DURATION.sub("D", old) == PROMQL_DURATION.sub("D", new), key
            olds, news = PROMQL_DURATION.findall(old), PROMQL_DURATION.findall(new)
            assert [milliseconds(text) * DRILL_SCALE for text in olds] == [
                milliseconds(text) for text in news
            ], (key, old, new)
            durations += len(olds)
        else:
            assert old == new, key
    assert durations > 0


@pytest.mark.claim("rules.time_scale")
@pytest.mark.parametrize(("path", "render"), FILES, ids=FILE_IDS)
def test_scale_1_is_the_identity(path: Path, render: Renderer):
    assert yaml.safe_load(render(path.read_text(), 1)) == yaml.safe_load(path.read_text())


@pytest.mark.claim("rules.time_scale")
@pytest.mark.parametrize(("path", "render"), FILES, ids=FILE_IDS)
@pytest.mark.parametrize("factor", [Fraction(1, 7), Fraction(1, 100_000), Fraction(3, 2)])
def test_inexact_scales_round_to_the_nearest_millisecond_and_never_below_1ms(
    path: Path, render: Renderer, factor: Fraction
):
    for key, old, new in rendered_pairs(path, render, factor):
        if isinstance(old, str) and LOOKS_LIKE_DURATION.fullmatch(old):
            assert milliseconds(new) == expected_ms(old, factor), (key, old, new)
        elif key.endswith(".expr"):
            olds, news = PROMQL_DURATION.findall(old), PROMQL_DURATION.findall(new)
            assert [expected_ms(text, factor) for text in olds] == [
                milliseconds(text) for text in news
            ], key


@pytest.mark.claim("rules.time_scale")
@pytest.mark.parametrize(("path", "render"), FILES, ids=FILE_IDS)
def test_rendering_is_deterministic(path: Path, render: Renderer):
    assert render(path.read_text(), DRILL_SCALE) == render(path.read_text(), DRILL_SCALE)


@pytest.mark.claim("rules.time_scale")
def test_rendered_files_load_in_promtool_and_amtool(tmp_path: Path):
    (tmp_path / "rules").mkdir()
    for rule_file in sorted(RULES_DIR.glob("*.yml")):
        rendered = render_rules(rule_file.read_text(), DRILL_SCALE)
        (tmp_path / "rules" / rule_file.name).write_text(rendered)
    config = tmp_path / "prometheus.yml"
    config.write_text(render_prometheus_config(PROMETHEUS_YML.read_text(), DRILL_SCALE))
    check_tool("promtool", "check", "config", config)
    alertmanager = tmp_path / "alertmanager.yml"
    alertmanager.write_text(render_alertmanager_config(ALERTMANAGER_YML.read_text(), DRILL_SCALE))
    check_tool("amtool", "check-config", alertmanager)


@pytest.mark.claim("harness.self_test")
def test_the_drill_scale_turns_production_durations_into_seconds():
    assert scaled("12m", DRILL_SCALE) == timedelta(seconds=48)
    assert scaled("5m", DRILL_SCALE) == timedelta(seconds=20)
    assert scaled("15s", DRILL_SCALE) == timedelta(seconds=1)
    assert scaled("4h", DRILL_SCALE) == timedelta(minutes=16)
    assert scaled("3s", 0.5) == timedelta(milliseconds=1500)
    assert scale_duration("12m", DRILL_SCALE) == "48s"
    assert scale_duration("3s", Fraction(1, 2)) == "1500ms"
    assert scale_duration("1h30m", Fraction(1, 2)) == "45m"
    assert scale_duration("15s", Fraction(1, 100_000)) == "1ms"


@pytest.mark.claim("harness.self_test")
def test_promql_changes_only_in_ranges_subqueries_and_offsets():
    expr = (
        'rate(x{le="5m", path=~"/a[5m]"}[5m])  # 5m in a comment\n'
        "+ max_over_time(y[5m:1m] offset 10m) - z[1h:] OFFSET -2m - foo_offset"
    )
    assert scale_promql(expr, DRILL_SCALE) == (
        'rate(x{le="5m", path=~"/a[5m]"}[20s])  # 5m in a comment\n'
        "+ max_over_time(y[20s:4s] offset 40s) - z[4m:] OFFSET -8s - foo_offset"
    )


@pytest.mark.claim("harness.self_test")
def test_a_range_that_is_not_a_duration_is_refused():
    with pytest.raises(ValueError, match=r"\[\$window\]"):
        scale_promql("max_over_time(x[$window])", DRILL_SCALE)


@pytest.mark.claim("harness.self_test")
@pytest.mark.parametrize("factor", [0, -1, 0.0, Fraction(-1, 15), float("nan"), float("inf")])
def test_a_factor_that_is_not_above_0_is_refused(factor: Any):
    with pytest.raises(ValueError, match="time scale factor"):
        scaled("5m", factor)
    for path, render in FILES:
        with pytest.raises(ValueError, match="time scale factor"):
            render(path.read_text(), factor)


@pytest.mark.claim("harness.self_test")
def test_every_kind_of_duration_is_scaled_where_the_stack_files_have_none_yet():
    rules = """
groups:
  - name: g
    interval: 30s
    query_offset: 1m
    rules:
      - alert: A
        expr: up == 0
        for: 3m
        keep_firing_for: 6m
"""
    assert yaml.safe_load(render_rules(rules, DRILL_SCALE))["groups"][0] == {
        "name": "g",
        "interval": "2s",
        "query_offset": "4s",
        "rules": [{"alert": "A", "expr": "up == 0", "for": "12s", "keep_firing_for": "24s"}],
    }
    config = """
global: {scrape_interval: 30s, scrape_timeout: 15s, evaluation_interval: 30s}
scrape_configs:
  - job_name: j
    scrape_interval: 1m
    scrape_timeout: 45s
    file_sd_configs: [{files: [a.json], refresh_interval: 5m}]
"""
    assert yaml.safe_load(render_prometheus_config(config, DRILL_SCALE)) == {
        "global": {"scrape_interval": "2s", "scrape_timeout": "1s", "evaluation_interval": "2s"},
        "scrape_configs": [
            {
                "job_name": "j",
                "scrape_interval": "4s",
                "scrape_timeout": "3s",
                "file_sd_configs": [{"files": ["a.json"], "refresh_interval": "20s"}],
            }
        ],
    }

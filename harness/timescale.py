"""Compressed time: the stack's config files with every duration multiplied by one factor.

The live stack runs the production rules with time compressed, e.g. factor 1/15: 15s -> 1s,
5m -> 20s, 12m -> 48s. The renderers parse a file with PyYAML, multiply its durations and
change nothing else, and dump it deterministically (key order kept, comments dropped).

What counts as a duration:
- rule files: a group's `interval` and `query_offset`, a rule's `for` and `keep_firing_for`, and
  in every `expr` the range selectors `[5m]`, subqueries `[5m:1m]` / `[5m:]` and `offset 5m`
  (never text inside string literals or comments);
- prometheus.yml: scrape_interval, scrape_timeout, evaluation_interval, refresh_interval and
  rule_query_offset, wherever they appear;
- alertmanager.yml: group_wait, group_interval, repeat_interval and resolve_timeout, wherever
  they appear.

A scaled duration is rounded to the nearest whole millisecond (Prometheus' resolution) and is
never below 1ms; it is written in the largest unit that holds it exactly (48s, 20s, 1500ms).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta
from fractions import Fraction
from typing import Any

import yaml

Factor = Fraction | int | float

_UNIT_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
    "ms": 1,
}
# Units a rendered duration is written in, largest first (no w or y: they are not exact days
# everywhere a reader might look).
_OUTPUT_UNITS = ("d", "h", "m", "s", "ms")
_PART = r"[0-9]+(?:ms|[smhdwy])"
_DURATION = re.compile(rf"(?:{_PART})+")
_PARTS = re.compile(r"([0-9]+)(ms|[smhdwy])")

# PromQL: string literals and comments are never touched; ranges and offsets are.
_PROMQL_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|#[^\n]*')
_PROMQL_BRACKET = re.compile(r"\[([^\]]*)\]")
_PROMQL_RANGE = re.compile(
    rf"^(\s*)({_DURATION.pattern})(\s*)(?::(\s*)({_DURATION.pattern})?(\s*))?$"
)
_PROMQL_OFFSET = re.compile(rf"\b(offset\s+-?)({_DURATION.pattern})\b", re.IGNORECASE)

RULE_GROUP_KEYS = frozenset({"interval", "query_offset"})
RULE_KEYS = frozenset({"for", "keep_firing_for"})
PROMETHEUS_KEYS = frozenset(
    {
        "scrape_interval",
        "scrape_timeout",
        "evaluation_interval",
        "refresh_interval",
        "rule_query_offset",
    }
)
ALERTMANAGER_KEYS = frozenset(
    {"group_wait", "group_interval", "repeat_interval", "resolve_timeout"}
)


def as_factor(factor: Factor) -> Fraction:
    """The factor as an exact fraction; ValueError unless it is a finite number above 0."""
    if isinstance(factor, bool) or not isinstance(factor, Fraction | int | float):
        raise ValueError(f"time scale factor must be a number, got {factor!r}")
    if isinstance(factor, float) and not math.isfinite(factor):
        raise ValueError(f"time scale factor must be finite, got {factor!r}")
    exact = Fraction(str(factor)) if isinstance(factor, float) else Fraction(factor)
    if exact <= 0:
        raise ValueError(f"time scale factor must be greater than 0, got {factor!r}")
    return exact


def parse_duration(text: str) -> int:
    """Milliseconds of a Prometheus duration such as `5m`, `1h30m` or `1500ms`."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _UNIT_MS[unit] for number, unit in _PARTS.findall(text))


def format_duration(milliseconds: int) -> str:
    """`milliseconds` in the largest unit that holds it exactly: 48000 -> 48s, 1500 -> 1500ms."""
    if milliseconds < 0:
        raise ValueError(f"a duration cannot be negative: {milliseconds}ms")
    if milliseconds == 0:
        return "0s"
    for unit in _OUTPUT_UNITS:
        if milliseconds % _UNIT_MS[unit] == 0:
            return f"{milliseconds // _UNIT_MS[unit]}{unit}"
    raise AssertionError("unreachable: every whole number of ms is a whole number of ms")


def scale_milliseconds(milliseconds: int, factor: Factor) -> int:
    """`milliseconds x factor`, rounded half up to a whole ms, and at least 1ms unless 0."""
    if milliseconds == 0:
        return 0
    exact = milliseconds * as_factor(factor)
    return max(1, math.floor(exact + Fraction(1, 2)))


def scale_duration(text: str, factor: Factor) -> str:
    """One duration string, scaled: scale_duration("12m", Fraction(1, 15)) == "48s"."""
    original = parse_duration(text)
    milliseconds = scale_milliseconds(original, factor)
    return text if milliseconds == original else format_duration(milliseconds)


def scaled(duration: str, factor: Factor) -> timedelta:
    """How long `duration` lasts on a stack running at `factor`, exactly as rendered.

    scaled("12m", Fraction(1, 15)) == timedelta(seconds=48)
    """
    return timedelta(milliseconds=scale_milliseconds(parse_duration(duration), factor))


def scale_promql(expr: str, factor: Factor) -> str:
    """`expr` with its range selectors, subqueries and offsets scaled, and nothing else changed."""
    as_factor(factor)
    pieces = []
    position = 0
    for literal in _PROMQL_LITERAL.finditer(expr):
        pieces.append(_scale_promql_code(expr[position : literal.start()], factor, expr))
        pieces.append(literal.group())
        position = literal.end()
    pieces.append(_scale_promql_code(expr[position:], factor, expr))
    return "".join(pieces)


def _scale_promql_code(code: str, factor: Factor, expr: str) -> str:
    def bracket(match: re.Match[str]) -> str:
        parts = _PROMQL_RANGE.match(match.group(1))
        if parts is None:
            raise ValueError(f"unsupported range or subquery [{match.group(1)}] in {expr!r}")
        lead, range_, gap, colon_lead, step, tail = parts.groups()
        text = f"[{lead}{scale_duration(range_, factor)}{gap}"
        if colon_lead is not None:
            step_text = scale_duration(step, factor) if step else ""
            text += f":{colon_lead}{step_text}{tail}"
        return text + "]"

    def offset(match: re.Match[str]) -> str:
        return match.group(1) + scale_duration(match.group(2), factor)

    return _PROMQL_OFFSET.sub(offset, _PROMQL_BRACKET.sub(bracket, code))


def render_rules(text: str, factor: Factor) -> str:
    """A Prometheus rule file with every duration scaled (see the module docstring)."""
    as_factor(factor)
    document = yaml.safe_load(text)
    for group in (document or {}).get("groups") or []:
        _scale_keys(group, RULE_GROUP_KEYS, factor)
        for rule in group.get("rules") or []:
            _scale_keys(rule, RULE_KEYS, factor)
            if isinstance(rule.get("expr"), str):
                rule["expr"] = scale_promql(rule["expr"], factor)
    return _dump(document)


def render_prometheus_config(text: str, factor: Factor) -> str:
    """A prometheus.yml with its scrape, evaluation and discovery intervals scaled."""
    return _render_tree(text, PROMETHEUS_KEYS, factor)


def render_alertmanager_config(text: str, factor: Factor) -> str:
    """An alertmanager.yml with its grouping, repeat and resolve durations scaled."""
    return _render_tree(text, ALERTMANAGER_KEYS, factor)


def _render_tree(text: str, keys: frozenset[str], factor: Factor) -> str:
    as_factor(factor)
    document = yaml.safe_load(text)
    _walk(document, lambda mapping: _scale_keys(mapping, keys, factor))
    return _dump(document)


def _walk(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for item in node:
            _walk(item, visit)


def _scale_keys(mapping: dict[str, Any], keys: frozenset[str], factor: Factor) -> None:
    for key in keys & mapping.keys():
        if isinstance(mapping[key], str):
            mapping[key] = scale_duration(mapping[key], factor)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks: rendered files stay legible."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(document: Any) -> str:
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )

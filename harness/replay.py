"""The project's own dashboard, replayed: every panel of the deployed Grafana dashboard evaluated
with range queries against the stack's Prometheus over an episode's time range, and drawn as
Grafana lays it out (the 24-column grid, titles, units, thresholds).

Offline there is no Grafana; the picture an on-call engineer knows is still in the report. Each
episode's data is read when its test ends (`capture`), before a later drill can restart
Prometheus with an empty TSDB, and drawn when the report is written (`draw`).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from harness.clients import PrometheusApi
from harness.contract import stack_dir
from harness.timescale import scale_promql

POINTS = 120  # samples per series across the episode: enough to see a flip, cheap to query
# A shorter episode is drawn with the lead-in before it (negative times): a panel needs a
# window's worth of history to say anything.
MIN_SPAN_S = 30.0
GRID_COLUMNS = 24  # Grafana's grid
# Inches per grid unit (Grafana's rows are about 0.4 of a column on a wide screen).
COLUMN_IN, ROW_IN = 0.6, 0.27
HEADER_IN = 0.5  # the figure's title
# Inside each panel: room for its title and production-time axis above, tick labels beside and
# below (inches).
INSET_TOP_IN, INSET_LEFT_IN, INSET_BOTTOM_IN, INSET_RIGHT_IN = 0.3, 0.75, 0.4, 0.15


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # "stat" or "timeseries"
    grid: dict[str, int]  # Grafana's gridPos: x, y, w, h
    exprs: tuple[str, ...]
    unit: str
    thresholds: tuple[tuple[float | None, str], ...]  # (from value, colour), ascending


def panels(dashboard: Path | None = None) -> list[Panel]:
    """The panels of the deployed dashboard (stack/grafana/dashboards/)."""
    path = dashboard or next((stack_dir() / "grafana" / "dashboards").glob("*.json"))
    found = []
    for panel in json.loads(path.read_text())["panels"]:
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        steps = defaults.get("thresholds", {}).get("steps", [])
        found.append(
            Panel(
                title=panel.get("title", ""),
                kind=panel.get("type", "timeseries"),
                grid=panel["gridPos"],
                exprs=tuple(t["expr"] for t in panel.get("targets", []) if t.get("expr")),
                unit=defaults.get("unit", ""),
                thresholds=tuple((s.get("value"), s.get("color", "green")) for s in steps),
            )
        )
    return found


def capture(
    prometheus_url: str, start: float, end: float, scale: Fraction, dashboard: Path | None = None
) -> dict[str, Any]:
    """Every panel's series over [start, end] (Unix seconds), its range selectors scaled to the
    stack's time scale as the rules are. A query that fails is kept as its error."""
    api = PrometheusApi(prometheus_url)
    episode_start, start = start, min(start, end - MIN_SPAN_S)
    step = max((end - start) / POINTS, 0.5)

    def one(expr: str) -> dict[str, Any]:
        try:
            series = api.query_range(scale_promql(expr, scale), start, end, step)
        except Exception as error:
            return {"expr": expr, "error": f"{type(error).__name__}: {error}"[:200]}
        return {
            "expr": expr,
            "series": [
                {
                    "labels": s["metric"],
                    "points": [
                        [round(float(t) - episode_start, 2), float(v)] for t, v in s["values"]
                    ],
                }
                for s in series
            ],
        }

    board = panels(dashboard)
    exprs = sorted({expr for panel in board for expr in panel.exprs})
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(zip(exprs, pool.map(one, exprs), strict=True))
    return {
        "start": episode_start,
        "lead_in_s": episode_start - start,
        "end": end,
        "scale": str(scale),
        "panels": {panel.title: [answers[e] for e in panel.exprs] for panel in board},
    }


def _format(value: float, unit: str) -> str:
    suffix = unit.removeprefix("suffix:").strip() if unit.startswith("suffix:") else ""
    if unit == "s":
        return f"{value / 60:.1f} min" if abs(value) >= 120 else f"{value:.1f} s"
    if unit == "Bps":
        return f"{value / 1000:.1f} kB/s" if abs(value) >= 1000 else f"{value:.0f} B/s"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {suffix}".strip()


def _colour(value: float, thresholds: tuple[tuple[float | None, str], ...]) -> str:
    colour = "green"
    for start, step_colour in thresholds:
        if start is None or value >= start:
            colour = step_colour
    return {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c"}.get(colour, colour)


def _legend(labels: dict[str, str]) -> str:
    shown = {k: v for k, v in labels.items() if k not in ("__name__", "job", "consumergroup")}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "value"


def draw(title: str, captured: dict[str, Any], path: Path, dashboard: Path | None = None) -> None:
    """One PNG: the dashboard's grid with each panel drawn from the captured series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board = panels(dashboard)
    rows = max(p.grid["y"] + p.grid["h"] for p in board)
    scale = Fraction(captured["scale"])
    width, height = GRID_COLUMNS * COLUMN_IN, rows * ROW_IN + HEADER_IN
    fig = plt.figure(figsize=(width, height), facecolor="#111217")
    span = captured["end"] - captured["start"]
    fig.suptitle(
        f"{title}: the dashboard replayed from Prometheus, {span:.0f} s on this stack "
        f"= {span / float(scale) / 60:.1f} min in production (time scale {scale})",
        color="#ccccdc",
        fontsize=10,
        y=1 - 0.15 / height,
    )
    for panel in board:
        g = panel.grid
        left = g["x"] * COLUMN_IN + (0.1 if panel.kind == "stat" else INSET_LEFT_IN)
        right = (g["x"] + g["w"]) * COLUMN_IN - (0.1 if panel.kind == "stat" else INSET_RIGHT_IN)
        top = HEADER_IN + g["y"] * ROW_IN + INSET_TOP_IN
        bottom = HEADER_IN + (g["y"] + g["h"]) * ROW_IN - INSET_BOTTOM_IN
        box = (left / width, 1 - bottom / height, (right - left) / width, (bottom - top) / height)
        ax = fig.add_axes(box, facecolor="#181b1f")
        ax.set_title(panel.title, color="#ccccdc", fontsize=8, loc="left", pad=4)
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.tick_params(colors="#9fa7b3", labelsize=6)
        answers = captured["panels"].get(panel.title, [])
        series = [s for a in answers for s in a.get("series", [])]
        errors = [a["error"] for a in answers if "error" in a]
        if panel.kind == "stat":
            _draw_stat(ax, panel, series, errors)
        else:
            _draw_timeseries(ax, panel, series, errors, scale)
    fig.savefig(path, dpi=70, facecolor=fig.get_facecolor())
    plt.close(fig)


def _draw_stat(ax: Any, panel: Panel, series: list[dict], errors: list[str]) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    last = [s["points"][-1][1] for s in series if s["points"]]
    if not last:
        ax.text(0.5, 0.4, "No data" if not errors else "error", ha="center", color="#9fa7b3")
        return
    text = " / ".join(_format(value, panel.unit) for value in last[:4])  # one per series
    colour = _colour(min(last), panel.thresholds)
    ax.text(0.5, 0.35, text, ha="center", fontsize=16 if len(last) == 1 else 11, color=colour)


def _draw_timeseries(
    ax: Any, panel: Panel, series: list[dict], errors: list[str], scale: Fraction
) -> None:
    from matplotlib.ticker import MaxNLocator

    for s in series[:12]:  # Grafana draws them all; twelve lines are already unreadable here
        t = [p[0] for p in s["points"]]
        ax.plot(t, [p[1] for p in s["points"]], linewidth=1, label=_legend(s["labels"]))
    ax.axvline(0, color="#6e7681", linewidth=0.6)  # the episode's start
    for start, _ in panel.thresholds:
        if start is not None:
            ax.axhline(start, color=_colour(start, panel.thresholds), linestyle="--", lw=0.8)
    if not series:
        ax.text(
            0.5,
            0.5,
            "No data" if not errors else errors[0][:60],
            ha="center",
            transform=ax.transAxes,
            color="#9fa7b3",
            fontsize=7,
        )
    elif len(series) <= 6:
        ax.legend(fontsize=5, loc="upper left", framealpha=0.3)
    ax.yaxis.set_major_formatter(lambda value, _pos: _format(value, panel.unit))
    per_second = 1 / float(scale)
    ax.set_xlabel(
        f"s on this stack (1 s = {per_second:g} s in production)",
        fontsize=6,
        color="#9fa7b3",
        labelpad=1,
    )
    # Few ticks: drawing tick labels is most of a figure's cost.
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.yaxis.set_major_locator(MaxNLocator(4))

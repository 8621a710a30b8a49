"""Every panel of the dashboard asks the live Prometheus something it can answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DASHBOARD = (
    Path(__file__).resolve().parent.parent / "stack/grafana/dashboards/crm_events_pipeline.json"
)
KEY_PANELS = (13, 17, 18, 19)


def panel_targets() -> list[tuple[int, str, str]]:
    model = json.loads(DASHBOARD.read_text())
    return [
        (panel["id"], panel.get("title", ""), target["expr"])
        for panel in model["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


@pytest.mark.claim("grafana.live_queries")
def test_every_panel_query_runs_and_the_key_panels_have_data(prometheus, steady_state, evidence):
    errors, empty_key_panels = [], []
    for panel_id, title, expr in panel_targets():
        try:
            series = prometheus.query(expr)
        except Exception as error:
            errors.append(f"panel {panel_id} ({title}): {expr}: {error}")
            continue
        if panel_id in KEY_PANELS and not series:
            empty_key_panels.append(f"panel {panel_id} ({title}): {expr}")
        evidence.record(f"panel {panel_id} series", len(series))
    assert errors == []
    assert empty_key_panels == []

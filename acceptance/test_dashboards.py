"""Every panel of the dashboard asks the live Prometheus something it can answer."""

from __future__ import annotations

import json

import httpx
import pytest

from harness.contract import CHECKLIST, load
from harness.waits import wait_until

KEY_PANELS = (13, 17, 18, 19)


def panel_targets() -> list[tuple[int, str, str]]:
    dashboards = load().stack_dir / "grafana" / "dashboards"
    model = json.loads((dashboards / "crm_events_pipeline.json").read_text())
    return [
        (panel["id"], panel.get("title", ""), target["expr"])
        for panel in model["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


@pytest.mark.claim("grafana.live_queries")
def test_every_panel_query_runs_and_the_key_panels_have_data(prometheus, steady_state, evidence):
    errors, empty_key_panels = [], []
    targets = panel_targets()
    assert set(KEY_PANELS) <= {panel_id for panel_id, _, _ in targets}, "a key panel has no query"
    for panel_id, title, expr in targets:
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


@pytest.mark.claim("grafana.provisioned")
@pytest.mark.containers_only
def test_grafana_provisions_the_dashboard_at_start_up(containers, evidence):
    if not containers.images.grafana:
        pytest.skip(
            "no Grafana image in this image set (offline): the dashboard is checked "
            "statically and by running its queries"
        )
    url = containers.start_grafana()
    try:
        env = containers.containers["grafana"].env
        auth = (env["GF_SECURITY_ADMIN_USER"], env["GF_SECURITY_ADMIN_PASSWORD"])
        dashboard = wait_until(
            "Grafana to serve the provisioned dashboard by uid",
            lambda: (
                (
                    r := httpx.get(f"{url}/api/dashboards/uid/{CHECKLIST.dashboard_uid}", auth=auth)
                ).status_code
                == 200
                and r.json()
            ),
            timeout=60,
        )
        datasource = httpx.get(f"{url}/api/datasources/uid/prometheus", auth=auth).json()
        evidence.record("panels served by Grafana", len(dashboard["dashboard"]["panels"]))
        evidence.record("datasource url", datasource.get("url"))
        assert len(dashboard["dashboard"]["panels"]) == CHECKLIST.dashboard_panels
        assert datasource.get("url") == "http://prometheus:9090"
    finally:
        containers.remove("grafana")

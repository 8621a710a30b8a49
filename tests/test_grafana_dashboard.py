"""The Grafana dashboard and its provisioning, checked statically (no Grafana runs here).

Every panel query must run as-is against Prometheus (the live suite runs each one), so: no template
variables, valid PromQL (promtool parses them as recording rules), and only series that the
recording rules or the exporter, probe and consumers produce.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import services as svc
from harness.contract import CHECKLIST
from tests.tools import (
    DASHBOARD,
    GRAFANA,
    SCRAPED_METRICS,
    check_tool,
    load_yaml,
    metric_names,
    recording_rules,
)

pytestmark = [pytest.mark.claim("grafana.dashboard")]

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
GROUP = f'consumergroup="{CHECKLIST.group}"'


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return dashboard()["panels"]


def panel(panel_id: int) -> dict[str, Any]:
    (found,) = [item for item in panels() if item["id"] == panel_id]
    return found


def targets() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(item, target) for item in panels() for target in item["targets"]]


def exprs(panel_id: int) -> list[str]:
    return [target["expr"] for target in panel(panel_id)["targets"]]


def test_dashboard_identity():
    model = dashboard()
    assert model["uid"] == CHECKLIST.dashboard_uid
    assert model["title"] == "CRM Events Pipeline"
    assert 36 <= model["schemaVersion"] <= 41
    assert model["templating"]["list"] == []


def test_the_checklists_panels_numbered_from_1():
    ids = [item["id"] for item in panels()]
    assert len(ids) == CHECKLIST.dashboard_panels
    assert sorted(ids) == list(range(1, CHECKLIST.dashboard_panels + 1))


@pytest.mark.parametrize("item", panels(), ids=lambda item: f"panel {item['id']}")
def test_panel_is_complete(item: dict[str, Any]):
    assert item["type"] in {"timeseries", "stat"}
    assert item["title"].strip() and item["description"].strip()
    assert item["datasource"] == DATASOURCE
    grid = item["gridPos"]
    assert set(grid) == {"h", "w", "x", "y"}
    assert all(isinstance(grid[key], int) and grid[key] >= 0 for key in grid)
    assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24
    assert item["targets"]
    ref_ids = [target["refId"] for target in item["targets"]]
    assert len(set(ref_ids)) == len(ref_ids)
    for target in item["targets"]:
        assert target["datasource"] == DATASOURCE
        assert target["expr"].strip()
        # Runnable as-is: no $var, ${var} or $__interval for Grafana to fill in.
        assert "$" not in target["expr"], target["expr"]


def test_panels_do_not_overlap():
    cells: dict[tuple[int, int], int] = {}
    for item in panels():
        grid = item["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]} and {item['id']} overlap"
                cells[(x, y)] = item["id"]


def test_panel_13_shows_lag_sum_and_drain_rate():
    title = panel(13)["title"].lower()
    assert "lag sum" in title and "drain rate" in title
    lag, drain = exprs(13)
    assert lag == f"kafka:group_lag_sum{{{GROUP}}}"
    assert drain == f"-deriv(kafka:group_lag_sum{{{GROUP}}}[5m])"


def test_panel_17_shows_per_partition_lag():
    assert exprs(17) == [f"kafka:group_partition_lag{{{GROUP}}}"]
    assert "{{partition}}" in panel(17)["targets"][0]["legendFormat"]


def test_panel_18_shows_consumer_group_size_from_the_recording_rule():
    assert exprs(18) == [f"kafka:group_consumer_count{{{GROUP}}}"]


def test_panel_19_shows_hot_key_skew_from_the_recording_rule():
    assert exprs(19) == [f"kafka:group_skew_ratio{{{GROUP}}}"]


def test_every_recording_rule_is_on_the_dashboard():
    used = {name for _, target in targets() for name in metric_names(target["expr"])}
    assert {rule["record"] for rule in recording_rules()} <= used


def test_every_expression_parses_as_promql(tmp_path: Path):
    rules = [
        {"record": f"dashboard:panel_{item['id']}_{target['refId']}", "expr": target["expr"]}
        for item, target in targets()
    ]
    rule_file = tmp_path / "dashboard_exprs.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = check_tool("promtool", "check", "rules", rule_file)
    assert f"{len(rules)} rules found" in output, output


def test_every_metric_is_recorded_or_scraped():
    recorded = {rule["record"] for rule in recording_rules()}
    for item, target in targets():
        unknown = metric_names(target["expr"]) - recorded - SCRAPED_METRICS
        assert not unknown, f"panel {item['id']} {target['refId']}: {unknown}"


def test_datasource_provisioning_has_the_panels_uid():
    provisioning = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    assert provisioning["apiVersion"] == 1
    (datasource,) = provisioning["datasources"]
    assert datasource["type"] == DATASOURCE["type"]
    assert datasource["uid"] == DATASOURCE["uid"]
    assert datasource["url"] == f"http://{svc.PROMETHEUS}:{svc.Prometheus.PORT}"
    assert datasource["isDefault"] is True


def test_dashboard_provisioning_loads_the_mounted_directory():
    provisioning = load_yaml(GRAFANA / "provisioning" / "dashboards" / "crm-events.yml")
    assert provisioning["apiVersion"] == 1
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    # What gets mounted there: the directory holding the dashboard, and only dashboards.
    assert [path.name for path in DASHBOARD.parent.iterdir()] == [DASHBOARD.name]

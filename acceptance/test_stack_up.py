"""The whole stack comes up, and reports what a healthy stack reports."""

from __future__ import annotations

from harness.clients import exporter_metrics
from harness.stack import GROUP, RECORDING_RULES


def test_exporter_reports_the_group_with_two_members(stack):
    assert stack.endpoints.exporter_url, "no exporter endpoint"
    metrics = exporter_metrics(stack.endpoints.exporter_url)
    assert metrics.get(f'kafka_consumergroup_members{{consumergroup="{GROUP}"}}') == 2


def test_prometheus_has_series_for_all_eight_recording_rules(stack, prometheus):
    missing = [rule for rule in RECORDING_RULES if not prometheus.query(f"{rule}")]
    assert missing == []


def test_probe_is_ready(stack, probe):
    answer = probe.ready()
    assert answer.status_code == 200, answer.body

"""The whole stack comes up, and reports what a healthy stack reports."""

from __future__ import annotations

import pytest

from harness.stack import GROUP, RECORDING_RULES, ContainerStack


@pytest.mark.claim("stack.up")
def test_exporter_reports_the_group_with_two_members(stack, evidence):
    if isinstance(stack, ContainerStack):
        for service, seconds in stack.startup_s.items():
            evidence.record(f"start-up: {service}", round(seconds, 1), "s")
    members = evidence.record(f"{GROUP} members (kafka_exporter)", stack.group_members())
    assert members == 2


@pytest.mark.claim("stack.up")
def test_prometheus_has_series_for_all_eight_recording_rules(prometheus, evidence):
    counts = {rule: len(prometheus.query(rule)) for rule in RECORDING_RULES}
    for rule, count in counts.items():
        evidence.record(f"{rule} series", count)
    assert [rule for rule, count in counts.items() if count == 0] == []


@pytest.mark.claim("stack.up")
def test_probe_is_ready(probe, evidence):
    answer = probe.ready()
    assert evidence.record("/ready", answer.status_code) == 200, answer.body

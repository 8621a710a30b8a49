"""The whole stack comes up, and reports what a healthy stack reports."""

from __future__ import annotations

import pytest

from harness.contract import CHECKLIST
from harness.stack import ContainerStack


@pytest.mark.claim("stack.up")
def test_exporter_reports_the_group_with_every_deployed_consumer(stack, evidence):
    if isinstance(stack, ContainerStack):
        for service, seconds in stack.startup_s.items():
            evidence.record(f"start-up: {service}", round(seconds, 1), "s")
    group = stack.contract.group
    members = evidence.record(f"{group} members (kafka_exporter)", stack.group_members())
    assert members == stack.contract.consumer_count
    assert members >= CHECKLIST.min_consumers


@pytest.mark.claim("stack.up")
def test_prometheus_has_series_for_every_recording_rule(stack, prometheus, evidence):
    rules = stack.contract.recording_rules
    assert len(rules) == CHECKLIST.recording_rules, rules
    counts = {rule: len(prometheus.query(rule)) for rule in rules}
    for rule, count in counts.items():
        evidence.record(f"{rule} series", count)
    assert [rule for rule, count in counts.items() if count == 0] == []


@pytest.mark.claim("stack.up")
def test_probe_is_ready(probe, evidence):
    answer = probe.ready()
    assert evidence.record("/ready", answer.status_code) == 200, answer.body


@pytest.mark.claim("day_two.fresh")
@pytest.mark.containers_only
def test_a_fresh_stack_without_traffic_is_ready_promptly(containers, evidence):
    """The stack starts with no event produced (like a new deployment on a quiet topic)."""
    fresh = containers.fresh
    assert fresh is not None
    # The exporter's refresh, a scrape, a rule evaluation and the probe's cache TTL (each one
    # scrape interval here), plus one poll.
    bound = 4 * containers.scrape_s + 1
    evidence.record(
        "/ready 200 after the consumers joined",
        round(fresh.ready_after_join_s, 1),
        "s",
        f"bound {bound:g}s (scrape {containers.clock.label(containers.contract.scrape_s)})",
    )
    evidence.record("alerts firing then", fresh.firing)
    assert fresh.ready_after_join_s <= bound
    assert fresh.firing == []

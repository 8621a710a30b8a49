"""Alertmanager: a valid config, routes proven with amtool, the inhibition rule checked by parsing.

amtool resolves routes but cannot evaluate inhibitions, so the inhibition rule is checked for its
structure and evaluated here, with Alertmanager's matcher semantics, on the labels the alert rules
really produce.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

import pytest
import yaml

from harness.contract import CHECKLIST, load, seconds
from harness.engines import ENGINES
from harness.timescale import parse_duration
from tests.tools import (
    ALERTMANAGER_YML,
    ROUTE_TESTS,
    alert_rules,
    check_tool,
    describe,
    load_yaml,
    run_tool,
)

WEBHOOK = "http://alert-webhook:9096/alerts"
ROUTING_MATCHERS = [f'{name}="{value}"' for name, value in CHECKLIST.clean_labels]
# Alertmanager 0.25 and current releases both accept these; the legacy forms only some do.
LEGACY_KEYS = {
    "match",
    "match_re",
    "source_match",
    "source_match_re",
    "target_match",
    "target_match_re",
}
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


def config() -> dict[str, Any]:
    return load_yaml(ALERTMANAGER_YML)


def route_cases() -> list[dict[str, Any]]:
    return load_yaml(ROUTE_TESTS)["cases"]


def routes_test(labels: dict[str, str], receivers: list[str], engine: str):
    return run_tool(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_YML}",
        f"--verify.receivers={','.join(receivers)}",
        *(f"{name}={value}" for name, value in labels.items()),
        engine=engine,
    )


def alert_labels(alert: dict[str, Any]) -> dict[str, str]:
    """Labels of a firing alert of the rule, for the consumer group the stack deploys."""
    return {"alertname": alert["alert"], "consumergroup": load().group, **alert["labels"]}


@pytest.mark.claim("am.routing")
@pytest.mark.claim("am.inhibition")
@pytest.mark.parametrize("engine", ENGINES)
def test_config_is_valid(engine: str):
    output = check_tool("amtool", "check-config", ALERTMANAGER_YML, engine=engine)
    assert "SUCCESS" in output, output


@pytest.mark.claim("am.routing")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", route_cases(), ids=lambda case: case["name"])
def test_route_case(case: dict[str, Any], engine: str):
    result = routes_test(case["labels"], case["receivers"], engine)
    assert result.returncode == 0, describe(result)
    assert result.stdout.strip() == ",".join(case["receivers"]), describe(result)


@pytest.mark.claim("am.routing")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("alert", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_rule_reaches_the_oncall_webhook(alert: dict[str, Any], engine: str):
    result = routes_test(alert_labels(alert), ["crm-oncall"], engine)
    assert result.returncode == 0, describe(result)


@pytest.mark.claim("am.routing")
def test_route_tests_cover_both_receivers():
    receivers = {receiver for case in route_cases() for receiver in case["receivers"]}
    assert receivers == {"crm-oncall", "default"}


@pytest.mark.claim("am.routing")
def test_root_receiver_is_a_noop_and_oncall_is_the_webhook():
    receivers = {receiver["name"]: receiver for receiver in config()["receivers"]}
    assert config()["route"]["receiver"] == "default"
    assert receivers["default"] == {"name": "default"}
    assert receivers["crm-oncall"] == {
        "name": "crm-oncall",
        "webhook_configs": [{"url": WEBHOOK, "send_resolved": True}],
    }


@pytest.mark.claim("am.routing")
def test_service_route_groups_per_alert_and_group_with_paging_timers():
    root = config()["route"]
    (service,) = root["routes"]
    assert service["matchers"] == ROUTING_MATCHERS
    assert service["receiver"] == "crm-oncall"
    for route in (root, service):
        assert route["group_by"] == ["alertname", "consumergroup"]
        assert route["group_wait"] == "30s"
        assert route["group_interval"] == "5m"
        assert route["repeat_interval"] == CHECKLIST.warning_repeat_interval
    # Critical alerts page: they repeat sooner, to the same receiver.
    (critical,) = service["routes"]
    assert critical["matchers"] == ['severity="critical"']
    assert critical["receiver"] == "crm-oncall"
    assert parse_duration(critical["repeat_interval"]) < parse_duration(service["repeat_interval"])


@pytest.mark.claim("am.routing")
@pytest.mark.claim("am.inhibition")
def test_no_legacy_matcher_syntax_anywhere():
    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {key for value in node.values() for key in keys(value)}
        if isinstance(node, list):
            return {key for item in node for key in keys(item)}
        return set()

    assert not keys(config()) & LEGACY_KEYS


# --- how often an unresolved alert notifies again ---------------------------------------------

SEVERITY_REPEAT = {
    "critical": CHECKLIST.critical_repeat_interval,
    "warning": CHECKLIST.warning_repeat_interval,
}


@pytest.mark.claim("am.routing")
@pytest.mark.parametrize("alert", sorted(load().alerts), ids=str)
def test_each_alert_repeats_at_its_severitys_checklist_interval(alert: str):
    labels = alert_labels({"alert": alert, "labels": load().alert(alert).labels})
    severity = labels["severity"]
    route = load().route_for(labels)
    assert route.receiver == "crm-oncall", route
    if severity in SEVERITY_REPEAT:
        required = seconds(SEVERITY_REPEAT[severity])
        assert route.repeat_interval_s == required, (
            f"{alert} ({severity}) repeats every {route.repeat_interval_s:g}s; "
            f"the checklist requires {SEVERITY_REPEAT[severity]}"
        )
    else:
        # Below warning (info): never notifies more often than a warning does.
        assert route.repeat_interval_s >= seconds(CHECKLIST.warning_repeat_interval), alert


@pytest.mark.claim("am.routing")
@pytest.mark.parametrize("severity", sorted(SEVERITY_REPEAT))
def test_some_alert_of_each_paging_severity_exists(severity: str):
    """The per-alert check above proves an interval only for severities some alert has."""
    assert any(alert.labels.get("severity") == severity for alert in load().alerts.values())


# --- inhibition -----------------------------------------------------------------------------


def matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Alertmanager's semantics: all matchers hold; a missing label is the empty string."""
    for matcher in matchers:
        parsed = _MATCHER.match(matcher)
        assert parsed, f"unparsable matcher {matcher!r}"
        name, operator, value = parsed.groups()
        actual = labels.get(name, "")
        held = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[operator]
        if not held:
            return False
    return True


def inhibited(target: dict[str, str], firing: list[dict[str, str]]) -> bool:
    """Whether any inhibit rule mutes `target` while the `firing` alerts fire."""
    for rule in config()["inhibit_rules"]:
        if not matches(rule["target_matchers"], target):
            continue
        for source in firing:
            if matches(rule["source_matchers"], source) and all(
                source.get(label, "") == target.get(label, "") for label in rule["equal"]
            ):
                return True
    return False


@pytest.mark.claim("am.inhibition")
def test_service_down_mutes_under_replicated_consumers_of_the_same_service():
    (rule,) = config()["inhibit_rules"]
    assert rule["source_matchers"] == ['alertname="CrmEventsServiceDown"']
    assert rule["target_matchers"] == ['alertname="CrmEventsUnderReplicatedConsumers"']
    assert set(rule["equal"]) == {"consumergroup", "service"}


@pytest.mark.claim("am.inhibition")
def test_inhibition_applies_to_the_labels_the_rules_produce():
    alerts = {rule["alert"]: alert_labels(rule) for rule in alert_rules()}
    service_down = alerts["CrmEventsServiceDown"]
    under_replicated = alerts["CrmEventsUnderReplicatedConsumers"]
    # Both consumers stopped: both alerts fire, only ServiceDown notifies.
    assert inhibited(under_replicated, [service_down])
    assert not inhibited(service_down, [under_replicated])
    # One consumer left: UnderReplicated alone notifies.
    assert not inhibited(under_replicated, [])
    # ServiceDown of another consumer group mutes nothing here.
    assert not inhibited(under_replicated, [service_down | {"consumergroup": "crm-events-audit"}])
    # No other alert is ever muted by ServiceDown.
    for name, labels in alerts.items():
        if name != "CrmEventsUnderReplicatedConsumers":
            assert not inhibited(labels, [service_down]), name


@pytest.mark.claim("am.routing")
def test_the_contracts_route_lookup_is_alertmanagers(tmp_path):
    """The repeat-interval checks above use Contract.route_for: it must pick the route
    Alertmanager picks (first matching child, regex matchers, `continue`), which amtool shows."""
    base = load()
    critical = next(a for a in alert_rules() if a["labels"].get("severity") == "critical")
    labels = alert_labels(critical)
    variant = copy.deepcopy(base.alertmanager)
    service = variant["route"]["routes"][0]
    # A sibling before the critical route that a regex matches: it wins, as in Alertmanager.
    service["routes"].insert(
        0,
        {"receiver": "default", "matchers": ['alertname=~"CrmEvents.*"'], "repeat_interval": "2h"},
    )
    path = tmp_path / "alertmanager.yml"

    def amtool_receivers() -> str:
        path.write_text(yaml.safe_dump(variant))
        args = [f"{name}={value}" for name, value in labels.items()]
        result = run_tool("amtool", "config", "routes", "test", f"--config.file={path}", *args)
        assert result.returncode == 0, describe(result)
        return result.stdout.strip()

    route = dataclasses.replace(base, alertmanager=variant).route_for(labels)
    assert (route.receiver, route.repeat_interval_s) == ("default", seconds("2h"))
    assert amtool_receivers() == "default"
    # With continue, later siblings match too; the first route found is still the regex one.
    service["routes"][0]["continue"] = True
    route = dataclasses.replace(base, alertmanager=variant).route_for(labels)
    assert route.receiver == "default"
    assert amtool_receivers() == "default,crm-oncall"

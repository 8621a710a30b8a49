"""The mutant generator and the kill rule of harness/mutants (no mutation run here).

Each operator is applied to a small input and must give exactly the expected mutant; ids must be
stable; the reviewed equivalents file must parse and name generated mutants only; and a failed
test that leaves no claim FAIL is not a kill.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from harness.contract import REPO
from harness.mutants import equivalents as eq
from harness.mutants import generate as gen
from harness.mutants import model as m
from harness.mutants import order, selection
from harness.mutants.promql import mutate
from harness.mutants.report import score
from harness.mutants.run import (
    EQUIVALENT,
    ERROR,
    FAST_TESTS,
    KILLED,
    SURVIVED,
    FastTier,
    Result,
    _Applied,
    kill_claims,
    outcome_of,
)

pytestmark = [pytest.mark.claim("harness.self_test")]


def mutants_of(expr: str) -> dict[tuple[str, str], str]:
    return {(found.operator, found.change): found.text for found in mutate(expr)}


# --- PromQL operators ---------------------------------------------------------------------------


def test_threshold_up_and_down_and_comparison_flipped() -> None:
    found = mutants_of('metric{job="a"} > 4')
    assert found[("promql-threshold-up", "> 4 -> > 8")] == 'metric{job="a"} > 8'
    assert found[("promql-threshold-down", "> 4 -> > 2")] == 'metric{job="a"} > 2'
    assert found[("promql-comparison-flipped", "> -> >=")] == 'metric{job="a"} >= 4'
    assert mutants_of("x < 2")[("promql-comparison-flipped", "< -> <=")] == "x <= 2"
    assert mutants_of("x == 0")[("promql-threshold-down", "== 0 -> == -1")] == "x == -1"


def test_range_halved_and_doubled() -> None:
    found = mutants_of("rate(x[5m])")
    assert found[("promql-range-halved", "[5m] -> [2m30s]")] == "rate(x[2m30s])"
    assert found[("promql-range-doubled", "[5m] -> [10m]")] == "rate(x[10m])"


def test_aggregation_swapped_both_operators_and_over_time_functions() -> None:
    found = mutants_of("max by (g) (x)")
    assert {change for op, change in found if op == "promql-aggregation-swapped"} == {
        "max -> sum",
        "max -> min",
        "max -> avg",
    }
    assert found[("promql-aggregation-swapped", "max -> sum")] == "sum by (g) (x)"
    over_time = mutants_of("min_over_time(x[5m])")
    assert over_time[("promql-aggregation-swapped", "min_over_time -> max_over_time")] == (
        "max_over_time(x[5m])"
    )


def test_label_matcher_dropped_or_its_value_changed() -> None:
    found = mutants_of('x{a="1",b="2"}')
    assert found[("promql-matcher-dropped", 'a="1" dropped')] == 'x{b="2"}'
    assert (
        found[("promql-matcher-value-changed", 'b="2" -> b="2-mutant"')] == 'x{a="1",b="2-mutant"}'
    )
    # Inside a range selector too.
    ranged = mutants_of('rate(x{a="1"}[1m])')
    assert ranged[("promql-matcher-dropped", 'a="1" dropped')] == "rate(x[1m])"


def test_clamp_removed_and_or_branch_removed() -> None:
    assert mutants_of("clamp_min(x, 1)")[("promql-clamp-removed", "clamp_min(x, 1) -> x")] == "x"
    found = mutants_of("a == 0 or b")
    assert found[("promql-or-branch-removed", "right branch removed")] == "a == 0"
    assert found[("promql-or-branch-removed", "left branch removed")] == "b"


def test_a_mutant_keeps_the_layout_of_a_multi_line_expression() -> None:
    expr = "a > 0\nand on (g)\n(\n  max by (g) (\n    changes(x[1m])\n  ) == 0\n)\n"
    found = mutants_of(expr)
    assert found[("promql-range-doubled", "[1m] -> [2m]")] == expr.replace("[1m]", "[2m]")
    assert not any(f.reprinted for f in mutate(expr))


# --- the other artifacts, each on a small file ----------------------------------------------------


def write(tmp_path: Path, path: str, text: str) -> Path:
    target = tmp_path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(text).lstrip())
    return tmp_path


def by_change(mutants: list[m.Mutant]) -> dict[tuple[str, str], m.Mutant]:
    return {(mutant.operator, mutant.change): mutant for mutant in mutants}


def test_rule_files_mutate_expressions_and_for(tmp_path: Path) -> None:
    path = "stack/prometheus/rules/r.yml"
    repo = write(
        tmp_path,
        path,
        """
        groups:
          - name: g
            rules:
              - alert: A
                expr: |
                  x > 1
                for: 10m
        """,
    )
    found = by_change(list(gen.rule_mutants(repo, path)))
    halved = yaml.safe_load(found["for-halved", "for: 10m -> 5m"].mutated)
    assert halved["groups"][0]["rules"][0]["for"] == "5m"
    up = yaml.safe_load(found["promql-threshold-up", "> 1 -> > 2"].mutated)
    assert up["groups"][0]["rules"][0]["expr"] == "x > 2\n"
    assert found["for-doubled", "for: 10m -> 20m"].location == "A/for"


def test_probe_query_templates_keep_their_placeholders(tmp_path: Path) -> None:
    path = "probe/settings.py"
    repo = write(tmp_path, path, """DEFAULT_X_QUERY = 'max_over_time(s{g="$group"}[$window])'\n""")
    found = by_change(list(gen.probe_query_mutants(repo, path)))
    swapped = found["promql-aggregation-swapped", "max_over_time -> min_over_time"]
    assert 'min_over_time(s{g="$group"}[$window])' in swapped.mutated
    changed = found["promql-matcher-value-changed", 'g="$group" -> g="$group-mutant"']
    assert '$group-mutant"}[$window]' in changed.mutated
    assert not any(op.startswith("promql-range") for op, _ in found)  # $window is a setting


def test_dashboard_expressions_are_mutated_in_place(tmp_path: Path) -> None:
    path = "stack/grafana/dashboards/d.json"
    model = {"panels": [{"id": 1, "targets": [{"refId": "A", "expr": "sum(x)"}]}]}
    repo = write(tmp_path, path, json.dumps(model, indent=2))
    found = by_change(list(gen.dashboard_mutants(repo, path)))
    mutated = json.loads(found["promql-aggregation-swapped", "sum -> max"].mutated)
    assert mutated["panels"][0]["targets"][0]["expr"] == "max(x)"


ALERTMANAGER_YML = """
route:
  receiver: default
  group_by: [alertname]
  repeat_interval: 4h
  routes:
    - receiver: oncall
      matchers:
        - team="crm"
receivers:
  - name: default
  - name: oncall
    webhook_configs:
      - url: http://hook/alerts
        send_resolved: true
inhibit_rules:
  - source_matchers:
      - alertname="Down"
    target_matchers:
      - alertname="Few"
    equal: [group]
"""


def test_alertmanager_operators(tmp_path: Path) -> None:
    path = "stack/alertmanager/alertmanager.yml"
    repo = write(tmp_path, path, ALERTMANAGER_YML)
    found = by_change(list(gen.alertmanager_mutants(repo, path)))

    def loaded(operator: str, change: str) -> dict[str, object]:
        data: dict[str, object] = yaml.safe_load(found[operator, change].mutated)
        return data

    route = loaded("am-matcher-value-changed", 'team="crm" -> team="crm-mutant"')["route"]
    assert route["routes"][0]["matchers"] == ['team="crm-mutant"']  # type: ignore[index]
    dropped = loaded("am-matcher-dropped", 'team="crm" dropped')["route"]
    assert not dropped["routes"][0]["matchers"]  # type: ignore[index]
    swapped = loaded("am-inhibit-swapped", "source and target matchers swapped")
    assert swapped["inhibit_rules"][0]["source_matchers"] == ['alertname="Few"']  # type: ignore[index]
    assert swapped["inhibit_rules"][0]["target_matchers"] == ['alertname="Down"']  # type: ignore[index]
    equal = loaded("am-inhibit-equal-changed", "severity added")["inhibit_rules"]
    assert equal[0]["equal"] == ["group", "severity"]  # type: ignore[index]
    grouping = loaded("am-group-by-changed", "alertname dropped")["route"]
    assert grouping["group_by"] == []  # type: ignore[index]
    timer = loaded("am-timer-halved", "repeat_interval: 4h -> 2h")["route"]
    assert timer["repeat_interval"] == "2h"  # type: ignore[index]
    receiver = loaded("am-receiver-swapped", "oncall -> default")["route"]
    assert receiver["routes"][0]["receiver"] == "default"  # type: ignore[index]
    resolved = loaded("am-send-resolved-off", "send_resolved: true -> false")["receivers"]
    assert resolved[1]["webhook_configs"][0]["send_resolved"] is False  # type: ignore[index]


COMPOSE_YAML = """
x-consumer: &consumer
  command: [python, -m, stack.consumer]
  healthcheck:
    test: ["CMD", "curl", "-fsS", "http://crm-events-health:9011/ready"]
    timeout: 5s
services:
  crm-events-health:
    restart: unless-stopped
    environment:
      PROM_TIMEOUT_MS: "1500"
      CONSUMER_GROUP: g
    deploy:
      resources:
        limits:
          cpus: "0.10"
          memory: 64M
    networks:
      - internal
  c1:
    <<: *consumer
networks:
  internal:
    internal: true
  access: {}
"""


def test_compose_operators(tmp_path: Path) -> None:
    path = "stack/compose.yaml"
    repo = write(tmp_path, path, COMPOSE_YAML)
    found = by_change(list(gen.compose_mutants(repo, path)))

    def probe(operator: str, change: str) -> dict[str, object]:
        service: dict[str, object] = yaml.safe_load(found[operator, change].mutated)["services"][
            gen.PROBE_SERVICE
        ]
        return service

    env = probe("compose-setting-up", "PROM_TIMEOUT_MS: 1500 -> 3000")["environment"]
    assert env == {"PROM_TIMEOUT_MS": "3000", "CONSUMER_GROUP": "g"}
    removed = probe("compose-setting-removed", "CONSUMER_GROUP removed")["environment"]
    assert removed == {"PROM_TIMEOUT_MS": "1500"}
    assert probe("compose-limit-down", "memory: 64M -> 32M")["deploy"] == {
        "resources": {"limits": {"cpus": "0.10", "memory": "32M"}}
    }
    assert probe("compose-restart-changed", "restart: unless-stopped -> always")["restart"] == (
        "always"
    )
    published = probe("compose-probe-port-published", "ports: [127.0.0.1:9011:9011] added")
    assert published["ports"] == ["127.0.0.1:9011:9011"]
    assert probe("compose-probe-network-added", "access added")["networks"] == [
        "internal",
        "access",
    ]
    target = found[
        "compose-healthcheck-target-changed",
        "http://crm-events-health:9011/ready -> http://crm-events-health:9011/health",
    ]
    consumer = yaml.safe_load(target.mutated)["services"]["c1"]
    assert consumer["healthcheck"]["test"][-1] == "http://crm-events-health:9011/health"


def test_probe_code_operators(tmp_path: Path) -> None:
    path = "probe/checks.py"
    source = """
    def check(worst, limit, samples):
        if not samples:
            return None
        if worst > limit and limit is not None:
            return 1
    """
    repo = write(tmp_path, path, source)
    found = by_change(list(gen.code_mutants(repo, path)))
    flipped = found["code-comparison-flipped", "> -> >= in `worst > limit`"]
    assert "if worst >= limit and limit is not None:" in flipped.mutated
    is_flipped = found["code-comparison-flipped", "is not -> is in `limit is not None`"]
    assert "limit is None" in is_flipped.mutated
    boolean = found["code-boolean-flipped", "and -> or in `worst > limit and limit is not None`"]
    assert "worst > limit or limit is not None" in boolean.mutated
    guard = found["code-guard-negated", "`not samples` -> `samples`"]
    assert "    if samples:\n" in guard.mutated
    assert guard.location == "check/guard#1"


# --- ids, equivalents, the tiers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack_mutants() -> list[m.Mutant]:
    return gen.generate(REPO)


def test_ids_are_unique_stable_and_name_no_line(stack_mutants: list[m.Mutant]) -> None:
    ids = [mutant.id for mutant in stack_mutants]
    assert len(ids) == len(set(ids))
    assert ids == [mutant.id for mutant in gen.generate(REPO)]
    assert all(mutant.kind in m.KINDS for mutant in stack_mutants)
    assert {mutant.kind for mutant in stack_mutants} == set(m.KINDS)


def test_ids_do_not_move_when_an_unrelated_part_of_the_file_changes(tmp_path: Path) -> None:
    path = "stack/alertmanager/alertmanager.yml"
    before = [x.id for x in gen.alertmanager_mutants(write(tmp_path, path, ALERTMANAGER_YML), path)]
    shifted = "# a new comment\n\n" + textwrap.dedent(ALERTMANAGER_YML).lstrip()
    (tmp_path / path).write_text(shifted)
    assert [x.id for x in gen.alertmanager_mutants(tmp_path, path)] == before


def test_the_equivalents_file_parses_and_every_entry_is_a_generated_mutant(
    stack_mutants: list[m.Mutant],
) -> None:
    assert (REPO / eq.FILE).is_file()
    listed = eq.load(REPO / eq.FILE)
    generated = {mutant.id for mutant in stack_mutants}
    assert sorted(set(listed) - generated) == []
    assert all(len(reason) > 20 for reason in listed.values())


def test_a_malformed_equivalents_entry_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "e.yml"
    bad.write_text("equivalents:\n  - id: x\n")
    with pytest.raises(eq.EquivalentsError):
        eq.load(bad)


def test_every_kind_has_fast_tier_test_files() -> None:
    for kind in m.KINDS:
        files = [path for pattern in FAST_TESTS[kind] for path in REPO.glob(pattern)]
        assert files, kind


def test_promtool_runs_the_groups_that_check_the_mutated_rule_and_what_is_built_on_it(
    stack_mutants: list[m.Mutant],
) -> None:
    rules = [mutant for mutant in stack_mutants if mutant.kind == m.RULES]
    one_per_rule = {mutant.location.split("/")[0]: mutant for mutant in rules}
    for mutant in one_per_rule.values():
        kept = selection.groups(REPO, mutant)
        assert any(kept.values()), f"no promtool test group can see {mutant.id}"
    recorded = next(mutant for mutant in rules if mutant.location.startswith("kafka:"))
    name = recorded.location.split("/")[0]
    assert name in selection.affected(REPO, name)
    assert any(not n.startswith("kafka:") for n in selection.affected(REPO, name))


# --- the kill rule ------------------------------------------------------------------------------


def evidence(claims: dict[str, str], failed: list[str]) -> dict[str, object]:
    return {
        "claims": [{"id": claim, "status": status} for claim, status in claims.items()],
        "tests": [{"nodeid": test, "outcome": "failed"} for test in failed],
        "reasons": [f"test failed: {test}" for test in failed],
    }


def test_a_failed_test_without_a_fail_claim_is_not_a_kill() -> None:
    run = evidence({"rules.alerts": "NOT RUN"}, ["tests/test_x.py::test_y"])
    assert kill_claims(run) == []
    outcome = outcome_of("fast", run, 1.0, "")
    assert outcome.verdict == SURVIVED
    assert outcome.failed_tests == ["tests/test_x.py::test_y"]


def test_a_fail_claim_is_a_kill_and_no_certificate_is_an_error() -> None:
    run = evidence({"rules.alerts": "FAIL", "rules.recording": "PASS"}, ["t"])
    outcome = outcome_of("fast", run, 1.0, "")
    assert (outcome.verdict, outcome.claims) == (KILLED, ["rules.alerts"])
    assert outcome_of("fast", None, 1.0, "Traceback").verdict == ERROR


def test_the_score_leaves_equivalents_out(stack_mutants: list[m.Mutant]) -> None:
    a, b, c = stack_mutants[:3]
    results = [
        Result(a, KILLED, []),
        Result(b, SURVIVED, []),
        Result(c, EQUIVALENT, [], "one series"),
    ]
    assert (score(results).killed, score(results).non_equivalent) == (1, 2)
    assert score(results).percent == 50.0


def test_a_mutant_gets_a_modification_time_of_its_own_and_the_original_its_own_back(
    tmp_path: Path,
) -> None:
    # Bytecode caches are keyed by size and whole-second modification time: two texts of one
    # file must never share both.
    path = tmp_path / "module.py"
    path.write_text("X = 1 < 2\n")
    before = path.stat().st_mtime_ns
    seen = set()
    for mutated in ("X = 1 > 2\n", "X = 1 = 2\n"):
        mutant = m.Mutant("module.py", m.PROBE_CODE, "op", "here", "x", "X = 1 < 2\n", mutated)
        with _Applied(path, mutant):
            assert path.read_text() == mutated
            seconds = path.stat().st_mtime_ns // 1_000_000_000
            assert seconds != before // 1_000_000_000 and seconds not in seen
            seen.add(seconds)
        assert path.read_text() == "X = 1 < 2\n"
        assert path.stat().st_mtime_ns == before


def test_the_tests_that_killed_most_mutants_of_the_kind_run_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid

    names = ["f.py::a", "f.py::b[1]", "f.py::b[2]", "f.py::c", "g.py::d"]
    items = [Item(name) for name in names]
    monkeypatch.setenv(order.FIRST_ENV, json.dumps(["g.py::d", "f.py::b"]))
    order.pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [item.nodeid for item in items] == [
        "g.py::d",
        "f.py::b[1]",
        "f.py::b[2]",
        "f.py::a",
        "f.py::c",
    ]
    monkeypatch.delenv(order.FIRST_ENV)
    order.pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert len(items) == len(names)

    tier = FastTier()
    assert tier.first(m.RULES) == {}
    killed = outcome_of("fast", evidence({"rules.alerts": "FAIL"}, ["t.py::x[case]"]), 1.0, "")
    tier.learn(m.RULES, killed)
    assert json.loads(tier.first(m.RULES)[order.FIRST_ENV]) == ["t.py::x"]
    assert tier.first(m.COMPOSE) == {}

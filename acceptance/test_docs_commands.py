"""Every command the operator documents show is run here, where its block says it runs.

Unit checks (no Docker): each alert's runbook_url points at a `## ` section of a document that
exists; every shell block of docs/ says `sh stack` or `sh host`; every command quoted inline in
the prose is one a block runs; every link to a section of the documents resolves.

Live (containers only): every `sh stack` block runs with `sh -e` in the stack's network, in the
alert-webhook container (the project's app image: curl, amtool, promtool); every `sh host` block
runs with `sh -e` from the repository root, with CRM_CERT_* variables that describe the running
stack as an external deployment (endpoints on 127.0.0.1, its time scale, and fault commands that
stop, start and slow its containers). Each block starts from the steady state, must exit 0, and
must leave the stack in its steady state.

A host block's `python -m pytest` command repeats suites this run has: in a certify run that ran
them, the block runs with `--collect-only` added to that command (its other commands unchanged),
which proves the command parses and collects against a deployment, and it shares this run's
outcomes of the tests it collected instead of running a drill twice. These tests run last
(`shares_outcomes`), after the tests whose outcomes they share; a command whose tests this run
did not run is run whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from harness import paths

if not paths.CHECKOUT:
    pytest.skip(
        "the operator documents (docs/) and their commands run from a checkout of the project",
        allow_module_level=True,
    )

from harness import services as svc
from harness.clients import consumer_control
from harness.docs import (
    REPO,
    RUNBOOK_URL,
    Block,
    Run,
    all_anchors,
    checks_files_only,
    collected_nodeids,
    collecting_only,
    doc_files,
    inline_commands,
    links,
    malformed_shell_blocks,
    run_in_container,
    run_on_host,
    runnable_blocks,
    section_anchors,
)
from harness.external import external_environment
from harness.stack import ContainerStack
from harness.steady import wait_for_steady_state
from tests.tools import alert_rules

DOCUMENTS = ("HEALTH_PROBE_INTEGRATION.md", "RUNBOOK_HOTKEY_SKEW.md", "LAG_CAPACITY_MONITORING.md")
# The stack blocks first: the host blocks that change nothing run beside them (host_runs_ahead).
BLOCKS = sorted(runnable_blocks(), key=lambda block: block.location != "stack")
STACK_TIMEOUT_S = 120
# The longest host block is the hot-key skew drill on the compressed stack (a few minutes).
HOST_TIMEOUT_S = 600

pytestmark = pytest.mark.claim("docs.commands")


# --- unit checks: no Docker -----------------------------------------------------------------


def test_the_three_operator_documents_exist():
    assert sorted(path.name for path in doc_files()) == sorted(DOCUMENTS)


@pytest.mark.parametrize("alert", alert_rules(), ids=lambda rule: rule["alert"])
def test_runbook_url_points_at_a_section_that_exists(alert):
    url = alert["annotations"]["runbook_url"]
    match = RUNBOOK_URL.match(url)
    assert match, f"{alert['alert']}: runbook_url {url} is not a link into this repository"
    document = REPO / match["path"]
    assert document.parent == REPO / "docs" and document.is_file(), f"{url}: no such document"
    anchors = section_anchors(document)
    assert match["anchor"] in anchors, (
        f"{url}: {document.name} has no `## ` section with anchor #{match['anchor']} "
        f"(its sections: {sorted(anchors)})"
    )


def test_every_alert_has_its_own_section_named_after_it():
    for alert in alert_rules():
        match = RUNBOOK_URL.match(alert["annotations"]["runbook_url"])
        assert match and match["anchor"] == alert["alert"].lower(), alert["alert"]


def test_every_shell_block_says_where_it_runs():
    malformed = [f"{block.name}: ```{block.info}" for block in malformed_shell_blocks()]
    assert malformed == [], (
        "shell blocks must be ```sh stack (inside the stack's network) or ```sh host "
        f"(repository root): {malformed}"
    )


def test_the_documents_have_commands_of_both_kinds():
    assert {block.location for block in BLOCKS} == {"stack", "host"}
    for document in DOCUMENTS:
        assert any(block.path.name == document for block in BLOCKS), f"{document}: no commands"


def test_commands_quoted_in_the_prose_are_commands_a_block_runs():
    run = [" ".join(command.split()) for block in BLOCKS for command in block.commands]
    stray = [
        f"{path.name}:{line}: `{span}`"
        for path in doc_files()
        for line, span in inline_commands(path)
        if not any(command.startswith(" ".join(span.split())) for command in run)
    ]
    assert stray == [], f"commands shown outside a sh stack/sh host block: {stray}"


def test_links_between_the_documents_resolve():
    broken = []
    for path in doc_files():
        for line, target in links(path):
            if re.match(r"^[a-z]+://", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.name}:{line}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in all_anchors(linked):
                broken.append(f"{path.name}:{line}: {target} (no such section)")
    assert broken == []


def test_a_documented_pytest_command_is_collected_only_and_the_other_commands_run_unchanged():
    block = Block(
        REPO / "docs" / "X.md",
        1,
        9,
        "sh host",
        "promtool check rules stack/prometheus/rules/*.yml\n"
        "python -m pytest drills/test_hot_key_skew.py \\\n"
        "  --stack=external --timeout=1800\n",
    )
    collecting = collecting_only(block)
    assert collecting is not None
    assert collecting.text == (
        "promtool check rules stack/prometheus/rules/*.yml\n"
        "python -m pytest drills/test_hot_key_skew.py \\\n"
        "  --stack=external --timeout=1800 --collect-only -q\n"
    )
    assert (
        collecting_only(replace(block, text="curl -fsS http://prometheus:9090/-/ready\n")) is None
    )
    # Whatever the command's own verbosity, the collection prints one node id per line (-1).
    for given, added in (("-q", ""), ("-qq", " -v"), ("-vv", " -q -q -q"), ("", " -q")):
        command = f"python -m pytest tests/test_a.py {given}".rstrip()
        changed = collecting_only(replace(block, text=command + "\n"))
        assert changed is not None and changed.text == f"{command} --collect-only{added}\n"
    output = (
        "drills/test_a.py::test_one\ndrills/test_a.py::test_two[x-1]\n\n2 tests collected in 0.1s\n"
    )
    assert collected_nodeids(output) == [
        "drills/test_a.py::test_one",
        "drills/test_a.py::test_two[x-1]",
    ]


def test_only_host_blocks_that_change_nothing_run_ahead_of_their_turn():
    checks = Block(
        REPO / "docs" / "X.md",
        1,
        5,
        "sh host",
        "promtool check rules stack/prometheus/rules/*.yml\n"
        "amtool check-config stack/alertmanager/alertmanager.yml\n"
        "python -m pytest tests/test_a.py -q\n",
    )
    assert run_ahead(checks, certifying=True) == collecting_only(checks)
    # Outside a certify run the pytest command runs whole: in its turn.
    assert run_ahead(checks, certifying=False) is None
    files_only = replace(checks, text="promtool test rules stack/prometheus/tests/*.yml\n")
    assert run_ahead(files_only, certifying=False) == files_only
    for changes_or_reads_the_stack in (
        "amtool silence add --alertmanager.url=$CRM_CERT_ALERTMANAGER_URL alertname=X\n",
        'curl -fsS "$CRM_CERT_PROBE_URL/ready"\n',
        "promtool check rules stack/prometheus/rules/*.yml\ndocker stop crm-events-consumer-1\n",
    ):
        assert run_ahead(replace(checks, text=changes_or_reads_the_stack), True) is None
    assert run_ahead(replace(files_only, info="sh stack"), certifying=True) is None


# --- live: every block, where it says it runs -------------------------------------------------


def block_id(block) -> str:
    return f"{Path(block.name).name}-{block.location}"


def slowed_consumers(stack: ContainerStack) -> dict[str, int]:
    delays = {
        name: consumer_control(url).processing_delay_ms()
        for name, url in stack.endpoints.consumer_urls.items()
    }
    return {name: delay for name, delay in delays.items() if delay}


def run_ahead(block: Block, certifying: bool) -> Block | None:
    """What of a host block runs ahead of its turn: the block, when it only checks files, with
    its pytest commands collected only in a certify run (elsewhere they run whole, in turn)."""
    if block.location != "host" or not checks_files_only(block):
        return None
    collecting = collecting_only(block)
    if collecting is None:
        return block
    return collecting if certifying else None


@pytest.fixture(scope="module")
def host_runs_ahead(containers, request) -> Iterator[dict[Block, Future[Run]]]:
    """The host blocks that change nothing start together when the first live block runs, two
    at a time, beside the stack blocks: their Python start-ups and promtool's rule tests take
    CPU while the stack blocks mostly wait on the network, instead of adding up after them."""
    certifying = request.config.pluginmanager.get_plugin("crm-cert-report") is not None
    environment = external_environment(containers)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="host-block")
    try:
        yield {
            block: pool.submit(run_on_host, variant, environment, HOST_TIMEOUT_S)
            for block in BLOCKS
            if (variant := run_ahead(block, certifying))
        }
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_host_block(block, containers, request, evidence, ahead: dict[Block, Future[Run]]) -> Run:
    """Run a host block; one whose pytest tests this certify run ran shares their outcomes."""
    environment = external_environment(containers)

    def run(variant: Block) -> Run:
        if block in ahead:
            return ahead[block].result(timeout=HOST_TIMEOUT_S + 60)
        return run_on_host(variant, environment, HOST_TIMEOUT_S)

    report = request.config.pluginmanager.get_plugin("crm-cert-report")
    collecting = collecting_only(block)
    if report is None or collecting is None:
        return run(block)
    collected = run(collecting)
    assert collected.exit_code == 0, collected.describe()
    nodeids = collected_nodeids(collected.output)
    assert nodeids, f"{block.name}: its pytest command collected no test\n{collected.describe()}"
    outcomes = {nodeid: report.outcome_of(nodeid) for nodeid in nodeids}
    if "not run" in outcomes.values():
        return run_on_host(block, environment, HOST_TIMEOUT_S)
    failed = {nodeid: outcome for nodeid, outcome in outcomes.items() if outcome != "passed"}
    assert failed == {}, f"{block.name} shares this run's outcomes of its tests: {failed}"
    evidence.record(f"{block.name}: tests collected, whose outcomes this run shares", len(nodeids))
    return collected


@pytest.mark.containers_only
@pytest.mark.shares_outcomes
@pytest.mark.parametrize("block", BLOCKS, ids=block_id)
def test_documented_block_runs_and_leaves_the_steady_state(
    block,
    containers,
    probe,
    prometheus,
    alertmanager,
    steady_state,
    host_runs_ahead,
    request,
    evidence,
):
    silences_before = alertmanager.active_silences()
    try:
        if block.location == "stack":
            webhook = containers.docker_container(svc.WEBHOOK)
            run = run_in_container(block, webhook, STACK_TIMEOUT_S)
        else:
            run = run_host_block(block, containers, request, evidence, host_runs_ahead)
        assert run.exit_code == 0, run.describe()
        left_silences = alertmanager.active_silences() - silences_before
        assert left_silences == set(), f"{block.name} left silences active: {left_silences}"
        assert slowed_consumers(containers) == {}, f"{block.name} left consumers slowed"
    finally:
        # Whatever happened, the next block starts from the stack as this one found it.
        for silence in alertmanager.active_silences() - silences_before:
            alertmanager.expire_silence(silence)
        for name in slowed_consumers(containers):
            consumer_control(containers.endpoints.consumer_urls[name]).set_delay_ms(0)
    wait_for_steady_state(containers, probe, prometheus)

"""The certification as a pytest plugin: its options, fixtures and hooks.

Registered through the `pytest11` entry point `crm_events_cert` when the package is installed
(`pip install .`), so `pytest -p crm_events_cert` names it and plain `pytest` loads it. The suites
are this package's `acceptance` and `drills` (the checkout's acceptance/ and drills/); given no
path and no testpaths, pytest collects them, so `pytest -p crm_events_cert -m smoke` runs the
smoke test from an installed package, against the project's own stack/ or --stack-dir's.

The stack is started once per run (session fixture) and removed at the end, also after a failure
or Ctrl-C. Tests that change it restore it, and start from a verified steady state.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.contract import STACK_DIR_ENV, TOPOLOGY_ENV, Clock, ContractError
from harness.contract import load as load_contract
from harness.paths import PROJECT
from harness.settings import (
    DEFAULT_CONTAINER_SCALE,
    HarnessSettings,
    HarnessSettingsError,
    add_options,
    resolve,
)
from harness.testcontainers_setup import configure_testcontainers
from harness.unit_tier import PART_OPTION

configure_testcontainers()

# Imported after the testcontainers configuration above, which those modules read.
from harness.clients import (  # noqa: E402
    AlertmanagerApi,
    ProbeClient,
    PrometheusApi,
    WebhookClient,
)
from harness.evidence import Evidence  # noqa: E402
from harness.report import EXIT_STACK_FAILED, STACK_FAILED, out_of_scope  # noqa: E402
from harness.stack import ContainerStack, ExternalStack, Stack  # noqa: E402
from harness.steady import SteadyState, wait_for_steady_state  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crm-cert", "CRM events stack certification")
    add_options(group.addoption)
    group.addoption(
        PART_OPTION,
        default=None,
        help="internal: this run is the unit tier of a certify run (harness/unit_tier.py); "
        "it runs the node ids listed in the directory and writes its results there",
    )


def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """With no path on the command line and no testpaths configured (an installed package run
    from anywhere), collect the plugin's own suites: `pytest -p crm_events_cert -m smoke`."""
    if early_config.known_args_namespace.file_or_dir or early_config.getini("testpaths"):
        return
    args.extend(str(directory) for directory in suite_directories())


SUITES = ("acceptance", "drills")


def suite_directories() -> list[Path]:
    """The suites' directories: in the installed package, or in the checkout (an editable
    install maps the subpackages there)."""
    here = Path(__file__).parent
    return [here / suite if (here / suite).is_dir() else PROJECT / suite for suite in SUITES]


# Markers every test gets from the directory it lives in (in a checkout or in the installed
# package), so that `-m smoke` or `-m "not drill"` select.
DIRECTORY_MARKERS = {"tests": "unit", "acceptance": "acceptance", "drills": "drill"}
MODULE_MARKERS = {"test_smoke.py": "smoke"}


def pytest_configure(config: pytest.Config) -> None:
    for marker, what in (
        ("unit", "the unit tier under tests/: the deployable files and the probe, no Docker"),
        ("acceptance", "the acceptance suite under acceptance/: the live stack"),
        ("drill", "the drills under drills/: faults injected into the live stack"),
        ("smoke", "the checklist's smoke test (acceptance/test_smoke.py)"),
    ):
        config.addinivalue_line("markers", f"{marker}: {what}")
    config.addinivalue_line(
        "markers", "containers_only: needs the stack this run started (skipped in external mode)"
    )
    config.addinivalue_line(
        "markers", "destructive: breaks part of the stack; external mode needs --allow-destructive"
    )
    config.addinivalue_line(
        "markers", "ha_topology: needs the production topology (--topology=ha); skipped otherwise"
    )
    config.addinivalue_line(
        "markers", "claim(item_id): the certification item (harness/claims.py) this test proves"
    )
    config.addinivalue_line(
        "markers", "shares_outcomes: runs after every other test, whose outcomes it may share"
    )
    try:
        config.stash[SETTINGS] = resolve(config.getoption)
    except HarnessSettingsError as error:
        raise pytest.UsageError(str(error)) from None
    _use_stack_dir(config.stash[SETTINGS].stack_dir)
    # Every reader of the deployable files (the contract) follows the chosen topology.
    os.environ[TOPOLOGY_ENV] = config.stash[SETTINGS].topology
    if config.stash[SETTINGS].certify:
        from harness.report import CertificationReport

        part = config.getoption(PART_OPTION)
        config.pluginmanager.register(
            CertificationReport(config.stash[SETTINGS], EVIDENCE, Path(part) if part else None),
            "crm-cert-report",
        )
    # `docker stop`/CI cancellation sends SIGTERM: turn it into the same clean teardown as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)


def _use_stack_dir(directory: str | None) -> None:
    """Point the contract (and everything that reads the deployable files) at --stack-dir,
    before any test module is collected; refuse a directory the contract cannot read."""
    if directory is None:
        return
    path = Path(directory).expanduser().resolve()
    try:
        load_contract(path)
    except ContractError as error:
        raise pytest.UsageError(f"--stack-dir={directory}: {error}") from None
    os.environ[STACK_DIR_ENV] = str(path)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


SETTINGS = pytest.StashKey[HarnessSettings]()
STACK = pytest.StashKey[Stack]()
EVIDENCE = pytest.StashKey[Evidence]()


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest) -> HarnessSettings:
    """The harness settings of this run (options, then environment, then defaults)."""
    return request.config.stash[SETTINGS]


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, settings: HarnessSettings) -> Iterator[Stack]:
    """The stack under certification, ready: started here, or the external deployment."""
    if settings.stack == "external":
        assert settings.external is not None
        yield ExternalStack(
            settings.external,
            settings.time_scale,
            settings.allow_destructive,
            settings.fault_commands,
        )
        return
    from harness.images import ensure_images
    from harness.waits import console

    started: ContainerStack | None = None
    try:
        try:
            # Builds what is missing; its progress goes to the real terminal, past pytest's
            # capture.
            began = time.monotonic()
            images = ensure_images(settings.images, console=console)
            started = ContainerStack(images, settings.time_scale)
            request.config.stash[STACK] = started
            started.startup_s["images"] = time.monotonic() - began
            started.start()
            report = request.config.pluginmanager.get_plugin("crm-cert-report")
            if report is not None:
                report.images_used = (images.selection, images.reason)
                report.stack_startup_s = {
                    "image build or check": started.startup_s["images"],
                    "stack start-up": started.startup_s["total"],
                }
        except BaseException as error:
            request.config.stash[STACK_FAILED] = f"{type(error).__name__}: {error}"[:400]
            raise
        yield started
    finally:
        if started is not None:
            started.stop()


@pytest.fixture(scope="session")
def probe(stack: Stack) -> ProbeClient:
    """The stack's readiness probe."""
    return ProbeClient(stack.endpoints.probe_url)


@pytest.fixture(scope="session")
def prometheus(stack: Stack) -> PrometheusApi:
    """The stack's Prometheus."""
    return PrometheusApi(stack.endpoints.prometheus_url)


@pytest.fixture(scope="session")
def alertmanager(stack: Stack) -> AlertmanagerApi:
    """The stack's Alertmanager."""
    return AlertmanagerApi(stack.endpoints.alertmanager_url)


@pytest.fixture(scope="session")
def webhook(stack: Stack) -> WebhookClient:
    """The receiver Alertmanager delivers to; without one, delivery checks do not run."""
    if not stack.endpoints.webhook_url:
        pytest.skip("no webhook receiver to read deliveries from (--webhook-url)")
    return WebhookClient(stack.endpoints.webhook_url)


@pytest.fixture(scope="session")
def containers(stack: Stack) -> ContainerStack:
    """The stack as containers this run started (tests that inspect or add containers)."""
    if not isinstance(stack, ContainerStack):
        pytest.skip("needs the containers this run started (--stack=containers)")
    return stack


@pytest.fixture
def steady_state(stack: Stack, probe: ProbeClient, prometheus: PrometheusApi) -> SteadyState:
    """Waits until the stack is in its steady state and returns what was observed."""
    return wait_for_steady_state(stack, probe, prometheus)


@pytest.fixture
def evidence(request: pytest.FixtureRequest, settings: HarnessSettings) -> Evidence:
    """Where a test records what it measured, for the certification report."""
    record = Evidence(request.node.nodeid, str(settings.time_scale))
    request.node.stash[EVIDENCE] = record
    return record


# pytest.ini's per-test timeout fits the default time scale; a slower scale (real durations
# against staging: a skew drill waits out its whole for:) stretches it in proportion.
BASE_TIMEOUT_S = 900


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash[SETTINGS]
    clock = Clock(settings.time_scale)
    timeout = max(
        BASE_TIMEOUT_S, round(clock.seconds(float(BASE_TIMEOUT_S / DEFAULT_CONTAINER_SCALE)))
    )
    # pytest.ini sets the base timeout in a checkout; an installed package has no pytest.ini, so
    # the plugin sets it unless the command line did.
    configured = config.getoption("timeout", None) or config.getini("timeout")
    for item in items:
        for marker in (
            DIRECTORY_MARKERS.get(item.path.parent.name),
            MODULE_MARKERS.get(item.path.name),
        ):
            if marker:
                item.add_marker(marker)
        if not item.get_closest_marker("timeout") and (timeout > BASE_TIMEOUT_S or not configured):
            item.add_marker(pytest.mark.timeout(timeout))
        reason = out_of_scope(settings, item)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"out of this run's scope: {reason}"))
        if (
            settings.stack == "external"
            and item.get_closest_marker("destructive")
            and not settings.allow_destructive
        ):
            item.add_marker(pytest.mark.skip(reason="destructive: needs --allow-destructive"))
    # A test that shares the outcomes of the others (a documented pytest command) runs last.
    items.sort(key=lambda item: item.get_closest_marker("shares_outcomes") is not None)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A stack that never started is its own exit code: nothing was certified, nothing failed."""
    if STACK_FAILED in session.config.stash:
        session.exitstatus = EXIT_STACK_FAILED


# Progress while a long run works: every live test (acceptance, drills) gets a line as it starts
# and one as it ends, with its outcome and time; a unit test gets the end line when it took
# longer than this.
SLOW_TEST_S = 5.0
OUTCOME = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    from harness.waits import console

    live = any(item.get_closest_marker(m) for m in ("acceptance", "drill"))
    if live:
        console.print(f"start: {item.nodeid}", highlight=False, soft_wrap=True)
    began = time.monotonic()
    yield
    elapsed = time.monotonic() - began
    if live or elapsed >= SLOW_TEST_S:
        console.print(
            f"{item.stash.get(OUTCOME, 'passed')}: {item.nodeid} ({elapsed:.1f}s)",
            highlight=False,
            soft_wrap=True,  # one line, whatever the terminal's width
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Attach the tail of every container's log to a failing test's report."""
    outcome: Any = yield
    report = outcome.get_result()
    if report.failed or (report.skipped and OUTCOME not in item.stash):
        item.stash[OUTCOME] = "failed" if report.failed else "skipped"
    stack = item.config.stash.get(STACK, None)
    if report.failed and isinstance(stack, ContainerStack):
        for service, text in stack.all_logs(tail=60).items():
            report.sections.append((f"container log: {service} (last 60 lines)", text))

"""The verdict hides nothing: every test of a certify run belongs to a claim, any failed test
makes it NOT CERTIFIED by name, an xfail is not a proof, and the exit code agrees.

The plugin runs for real: pytest in a subprocess with this project's plugin (crm_events_cert), on
small test files written here. No Docker.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

from harness.report import (
    EXIT_STACK_FAILED,
    FAIL,
    NOT_RUN,
    OUT_OF_SCOPE,
    PASS,
    TestResult,
    Verdict,
    claim_status,
    out_of_scope,
)
from harness.settings import HarnessSettings
from tests.tools import run_plugin, run_sample

pytestmark = pytest.mark.claim("harness.self_test")


def certify(
    tmp_path: Path, source: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run `source` as a certify run; return the process and evidence.json (or {})."""
    reports = tmp_path / "reports"
    process = run_sample(
        tmp_path,
        source,
        "--certify",
        f"--reports-dir={reports}",
        f"--junitxml={reports}/junit.xml",
        env=env,
    )
    evidence = reports / "evidence.json"
    return process, json.loads(evidence.read_text()) if evidence.exists() else {}


def test_a_test_without_a_claim_is_refused_at_collection(tmp_path: Path) -> None:
    process, _ = certify(
        tmp_path,
        """
        def test_unmarked():
            assert False
        """,
    )
    assert process.returncode == pytest.ExitCode.USAGE_ERROR, process.stdout + process.stderr
    assert "must prove a claim" in process.stderr and "test_unmarked" in process.stderr


def test_any_failed_test_makes_the_verdict_not_certified_naming_it(tmp_path: Path) -> None:
    process, evidence = certify(
        tmp_path,
        """
        import pytest

        @pytest.mark.claim("window.seed_queries")  # an informational claim
        def test_informational_but_failing():
            assert 1 == 2
        """,
    )
    assert process.returncode == pytest.ExitCode.TESTS_FAILED
    assert evidence["verdict"] == "NOT CERTIFIED"
    assert any("test_informational_but_failing" in reason for reason in evidence["reasons"])
    markdown = (tmp_path / "reports" / "certification.md").read_text()
    assert "**Verdict: NOT CERTIFIED**" in markdown and "test_informational_but_failing" in markdown
    # The page says the same, first.
    page = (tmp_path / "reports" / "index.html").read_text()
    assert '<p class="verdict not-certified" id="verdict">NOT CERTIFIED</p>' in page
    assert page.index('id="verdict"') < page.index("test_informational_but_failing")


def test_an_xfail_is_not_a_proof(tmp_path: Path) -> None:
    _, evidence = certify(
        tmp_path,
        """
        import pytest

        @pytest.mark.claim("probe.health")
        @pytest.mark.xfail(reason="known gap")
        def test_expected_failure():
            assert False

        @pytest.mark.claim("probe.health")
        @pytest.mark.xfail(reason="should fail")
        def test_unexpected_pass():
            assert True
        """,
    )
    [claim] = [c for c in evidence["claims"] if c["id"] == "probe.health"]
    assert claim["status"] == FAIL
    assert evidence["verdict"] == "NOT CERTIFIED"


def result(outcome: str, out_of_scope: bool = False) -> TestResult:
    reason = "needs another kind of run" if out_of_scope else ""
    return TestResult("t", ["x"], outcome=outcome, out_of_scope=reason)


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        ([], NOT_RUN),
        ([result("passed")], PASS),
        ([result("passed"), result("skipped")], NOT_RUN),
        ([result("passed"), result("failed")], FAIL),
        ([result("skipped", out_of_scope=True)], OUT_OF_SCOPE),
        ([result("skipped", out_of_scope=True), result("passed")], PASS),
        ([result("skipped", out_of_scope=True), result("failed")], FAIL),
    ],
)
def test_claim_status(outcomes: list[TestResult], status: str) -> None:
    assert claim_status(outcomes) == status


def test_external_scope_is_said_in_the_verdict() -> None:
    assert Verdict(external=True, failed_tests=[], missing_claims=[]).text == (
        "CERTIFIED (external scope)"
    )
    assert Verdict(external=False, failed_tests=[], missing_claims=[]).text == "CERTIFIED"
    failed = Verdict(external=True, failed_tests=["a::b"], missing_claims=[])
    assert failed.text == "NOT CERTIFIED" and failed.reasons == ["test failed: a::b"]
    crashed = Verdict(external=False, failed_tests=[], missing_claims=[], run_failed="boom")
    assert not crashed.certified
    ha = Verdict(external=False, failed_tests=[], missing_claims=[], topology="ha")
    assert ha.text == "CERTIFIED (ha topology)"


class Item:
    """What out_of_scope() reads of a pytest item: its markers."""

    def __init__(self, *markers: str) -> None:
        self.markers = markers

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


@pytest.mark.parametrize(
    ("stack", "topology", "markers", "in_scope"),
    [
        ("containers", "single", ("unit",), True),
        ("containers", "single", ("drill",), True),
        ("containers", "single", ("drill", "ha_topology"), False),
        ("containers", "ha", ("drill", "ha_topology"), True),
        ("containers", "ha", ("acceptance",), True),
        ("containers", "ha", ("drill",), False),
        ("containers", "ha", ("unit",), False),
        ("external", "single", ("drill", "containers_only"), False),
        ("external", "single", ("acceptance",), True),
    ],
)
def test_each_kind_of_run_proves_its_own_part(
    stack: str, topology: str, markers: tuple[str, ...], in_scope: bool
) -> None:
    settings = HarnessSettings(stack=stack, topology=topology)
    reason = out_of_scope(settings, Item(*markers))  # type: ignore[arg-type]
    assert (reason == "") is in_scope, reason


def test_a_stack_that_fails_to_start_has_its_own_exit_code(tmp_path: Path) -> None:
    process, evidence = certify(
        tmp_path,
        """
        import pytest

        @pytest.mark.claim("stack.up")
        def test_needs_the_stack(stack):
            pass
        """,
        # No Docker engine answers there: the images cannot even be listed.
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "CRM_CERT_IMAGES": "offline"},
    )
    assert process.returncode == EXIT_STACK_FAILED, process.stdout[-2000:] + process.stderr
    assert evidence["verdict"] == "NOT CERTIFIED"
    assert any("the stack failed to start" in reason for reason in evidence["reasons"])


def test_each_junit_test_case_names_its_claims(tmp_path: Path) -> None:
    certify(
        tmp_path,
        """
        import pytest

        @pytest.mark.claim("probe.health")
        @pytest.mark.claim("probe.status")
        def test_two_claims():
            pass
        """,
    )
    [case] = ElementTree.parse(tmp_path / "reports" / "junit.xml").iter("testcase")
    claims = [p.get("value") for p in case.iter("property") if p.get("name") == "claim"]
    assert sorted(claims) == ["probe.health", "probe.status"]


def test_an_ha_run_proves_its_drills_names_its_topology_and_leaves_the_rest_out_of_scope(
    tmp_path: Path,
) -> None:
    process, evidence = certify(
        tmp_path,
        """
        import pytest

        @pytest.mark.claim("ha.exporter_replica")
        @pytest.mark.ha_topology
        def test_a_drill_of_the_topology():
            assert True

        @pytest.mark.claim("probe.health")
        def test_the_single_runs():
            assert False  # never runs here
        """,
        env={"CRM_CERT_TOPOLOGY": "ha"},
    )
    claims = {c["id"]: c for c in evidence["claims"]}
    assert claims["ha.exporter_replica"]["status"] == PASS
    assert claims["ha.exporter_replica"]["proved_on"] == "the ha topology"
    assert claims["probe.health"]["status"] == OUT_OF_SCOPE
    assert evidence["topology"] == "ha"
    markdown = (tmp_path / "reports" / "certification.md").read_text()
    assert "_(proved on: the ha topology)_" in markdown
    assert "proven by the single-topology run" in markdown
    assert process.returncode != pytest.ExitCode.USAGE_ERROR, process.stderr


def certify_tiers(
    tmp_path: Path, unit: str, live: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """A certify run of a unit tier (tests/) and a live suite (acceptance/) written here."""
    for directory, source in (("tests", unit), ("acceptance", live)):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / f"test_{directory}.py").write_text(textwrap.dedent(source))
    reports = tmp_path / "reports"
    process = run_plugin(
        tmp_path,
        *("--certify", f"--reports-dir={reports}"),
        *(str(tmp_path / "tests"), str(tmp_path / "acceptance")),
    )
    evidence = reports / "evidence.json"
    return process, json.loads(evidence.read_text()) if evidence.exists() else {}


def test_the_unit_tier_runs_in_a_process_of_its_own_beside_the_live_suites(tmp_path: Path):
    # The unit test waits for a file the live test writes: run one after the other, in either
    # order, one of them cannot pass.
    signal = tmp_path / "the-live-suite-is-running"
    process, evidence = certify_tiers(
        tmp_path,
        f"""
        import os, time
        import pytest

        @pytest.mark.claim("probe.health")
        def test_beside_the_live_suite(evidence):
            deadline = time.monotonic() + 60
            while not os.path.exists({str(signal)!r}):
                assert time.monotonic() < deadline, "the live suite never ran beside this test"
                time.sleep(0.05)
            evidence.record("pid", os.getpid())

        @pytest.mark.claim("probe.health")
        def test_failing_unit():
            assert 1 == 2
        """,
        f"""
        import os, pathlib, time
        import pytest

        @pytest.mark.claim("probe.status")
        def test_live(evidence):
            pathlib.Path({str(signal)!r}).touch()
            evidence.record("pid", os.getpid())
        """,
    )
    output = process.stdout + process.stderr
    tests = {test["nodeid"]: test for test in evidence["tests"]}
    beside = tests["tests/test_tests.py::test_beside_the_live_suite"]
    live = tests["acceptance/test_acceptance.py::test_live"]
    assert beside["outcome"] == "passed" and live["outcome"] == "passed", output
    pids = {t["evidence"]["measurements"][0]["value"] for t in (beside, live)}
    assert len(pids) == 2, f"one process ran both tiers: {pids}"
    # A unit test the child failed fails the run, by name, with its detail.
    assert tests["tests/test_tests.py::test_failing_unit"]["outcome"] == "failed"
    assert "AssertionError" in tests["tests/test_tests.py::test_failing_unit"]["detail"]
    assert "test failed: tests/test_tests.py::test_failing_unit" in evidence["reasons"]
    assert process.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "unit tier: 1 passed, 1 failed" in output
    assert (tmp_path / "reports" / "junit-unit.xml").is_file()


def test_a_unit_tier_that_ends_without_results_fails_the_run(tmp_path: Path) -> None:
    process, evidence = certify_tiers(
        tmp_path,
        """
        import os
        import pytest

        @pytest.mark.claim("probe.health")
        def test_the_process_dies():
            os._exit(3)
        """,
        """
        import pytest

        @pytest.mark.claim("probe.status")
        def test_live():
            pass
        """,
    )
    assert process.returncode == pytest.ExitCode.TESTS_FAILED, process.stdout + process.stderr
    assert evidence["verdict"] == "NOT CERTIFIED"
    assert any("the unit tier's pytest exited 3 without results" in r for r in evidence["reasons"])

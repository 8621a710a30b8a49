"""The certification report, built only from what this run's tests measured.

A pytest plugin (registered with --certify): it notes each test's outcome, its claim markers and
its evidence, and at the end writes reports/certification.md, reports/evidence.json and
reports/index.html, with each episode's pictures (harness/pictures.py draws them as the episodes
end). An item is PASS only when every test that claims it ran and passed; any failure is
FAIL; otherwise NOT RUN. The run fails when a required item is not PASS.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import replay
from harness.claims import BY_ID, CLAIMS, SECTIONS, Claim
from harness.contract import CHECKLIST, COMPOSE_FILES, HA, SINGLE, Clock
from harness.contract import load as load_contract
from harness.evidence import Evidence
from harness.pictures import Pictures
from harness.services import OVERRIDES
from harness.settings import HarnessSettings
from harness.timeline import JOURNAL
from harness.unit_tier import BackgroundUnitTier, UnitTierFailed, selected, write_results

PASS, FAIL, NOT_RUN, OUT_OF_SCOPE = "PASS", "FAIL", "NOT RUN", "OUT OF SCOPE"
ICONS = {PASS: "✅", FAIL: "❌", NOT_RUN: "⚪", OUT_OF_SCOPE: "⚫"}
# The exit codes of a certify run: pytest's own (0 CERTIFIED, 1 NOT CERTIFIED, 2 interrupted,
# 3 internal error, 4 usage error, 5 no tests), and one of this project's.
EXIT_STACK_FAILED = 6  # the stack (or its images) failed to start: nothing could be certified
STACK_FAILED = pytest.StashKey[str]()  # why the stack failed to start, set by the stack fixture

# Why a test is out of a run's scope (the plugin, crm_events_cert, skips it with that reason): a
# run of another kind, over the same files, proves it.
OUT_OF_SCOPE_WHY = "needs the containers this run starts (--stack=containers)"
HA_ONLY_WHY = "needs the HA topology (--topology=ha)"
SINGLE_TOPOLOGY_WHY = "proven by the single-topology run of the same files (--topology=single)"


def out_of_scope(settings: HarnessSettings, item: pytest.Item) -> str:
    """Why this run cannot prove what `item` tests; empty when it can. An HA run proves the
    acceptance suite (unchanged) and the drills only its topology can run; the unit tier and the
    other drills are the single-topology run's."""

    def marked(name: str) -> bool:
        return item.get_closest_marker(name) is not None

    if settings.stack == "external":
        return OUT_OF_SCOPE_WHY if marked("containers_only") else ""
    if settings.topology == HA:
        return "" if marked("ha_topology") or marked("acceptance") else SINGLE_TOPOLOGY_WHY
    return HA_ONLY_WHY if marked("ha_topology") else ""


@dataclass
class TestResult:
    __test__ = False  # not a test class, whatever pytest thinks of its name
    nodeid: str
    claims: list[str]
    outcome: str = "not run"  # passed, failed, skipped
    duration_s: float = 0.0
    detail: str = ""
    evidence: Evidence | None = None
    out_of_scope: str = ""  # why this run cannot prove it (out_of_scope()); empty: in scope

    def to_json(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "duration_s": round(self.duration_s, 1),
            "claims": self.claims,
            "out_of_scope": self.out_of_scope,
            "detail": self.detail,
            "evidence": self.evidence.to_json() if self.evidence else None,
        }

    def take(self, measured: dict[str, Any]) -> None:
        """What another process measured of this test (its to_json): the unit tier's."""
        self.outcome, self.duration_s = measured["outcome"], measured["duration_s"]
        self.detail = measured["detail"]
        if measured["evidence"]:
            self.evidence = Evidence.from_json(measured["evidence"])


@dataclass
class ClaimResult:
    claim: Claim
    status: str
    tests: list[TestResult] = field(default_factory=list)


def claim_status(tests: list[TestResult]) -> str:
    """FAIL when any test failed; PASS when every in-scope test passed; OUT OF SCOPE when every
    test is out of this run's scope; NOT RUN otherwise (none ran, or some were skipped)."""
    in_scope = [test for test in tests if not test.out_of_scope]
    if tests and not in_scope:
        return OUT_OF_SCOPE
    outcomes = {test.outcome for test in in_scope}
    if "failed" in outcomes:
        return FAIL
    if outcomes == {"passed"}:
        return PASS
    return NOT_RUN


@dataclass
class Verdict:
    """The run's verdict and every reason it is not CERTIFIED."""

    external: bool
    failed_tests: list[str]
    missing_claims: list[str]
    run_failed: str = ""
    topology: str = SINGLE

    @property
    def certified(self) -> bool:
        return not (self.failed_tests or self.missing_claims or self.run_failed)

    @property
    def text(self) -> str:
        if not self.certified:
            return "NOT CERTIFIED"
        if self.external:
            return "CERTIFIED (external scope)"
        return "CERTIFIED (ha topology)" if self.topology == HA else "CERTIFIED"

    @property
    def reasons(self) -> list[str]:
        return (
            [f"test failed: {nodeid}" for nodeid in self.failed_tests]
            + [f"required item not PASS: {claim}" for claim in self.missing_claims]
            + ([self.run_failed] if self.run_failed else [])
        )


class CertificationReport:
    """Collects outcomes and evidence during the run; writes the report at the end."""

    def __init__(
        self,
        settings: HarnessSettings,
        evidence_key: pytest.StashKey[Evidence],
        part: Path | None = None,
    ) -> None:
        self.settings = settings
        self.evidence_key = evidence_key
        # Set when this run is the unit tier of another (harness/unit_tier.py): it writes its
        # results there instead of a report.
        self.part = part
        # The unit tier, when this run handed it to a process of its own.
        self.unit_tier: BackgroundUnitTier | None = None
        self.unit_tier_taken = False
        self.unit_tier_failed = ""
        self.unit_tier_summary: list[str] = []
        # Image build and stack start-up times, set by the stack fixture.
        self.stack_startup_s: dict[str, float] = {}
        # The image set the stack ran on and why it was chosen (set when the stack starts).
        self.images_used: tuple[str, str] | None = None
        self.results: dict[str, TestResult] = {}
        self.started = time.time()
        # Set once the report is written: every figure of one report ends at the same moment.
        self.finished: float | None = None
        # Each episode's dashboard data, read from Prometheus when its test ends (by title).
        self.dashboards: dict[str, dict[str, Any]] = {}
        # Each episode's pictures, drawn beside the run once its test has ended.
        self.pictures = Pictures(Path(settings.reports_dir), self.threshold, settings.time_scale)

    # -- collection of outcomes ----------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Every test of a certify run belongs to a known claim: a test without one would pass
        or fail without the verdict noticing, so it is a usage error."""
        if self.part:
            wanted = selected(self.part)
            config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in wanted])
            items[:] = [item for item in items if item.nodeid in wanted]
        unclaimed = []
        for item in items:
            claims = [marker.args[0] for marker in item.iter_markers("claim")]
            unknown = [claim for claim in claims if claim not in BY_ID]
            if unknown:
                raise pytest.UsageError(
                    f"{item.nodeid}: unknown claim {unknown} (harness/claims.py)"
                )
            if not claims:
                unclaimed.append(item.nodeid)
            # In the JUnit XML: each test case names the claims it proves.
            item.user_properties.extend(("claim", claim) for claim in claims)
            self.results[item.nodeid] = TestResult(
                item.nodeid, claims, out_of_scope=out_of_scope(self.settings, item)
            )
        if unclaimed:
            raise pytest.UsageError(
                "every test of a certify run must prove a claim "
                "(@pytest.mark.claim, harness/claims.py); without one:\n  " + "\n  ".join(unclaimed)
            )
        if not self.part and self.settings.unit_tier == "background":
            self.hand_over_the_unit_tier(config, items)

    def hand_over_the_unit_tier(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Run the in-scope unit tests in a pytest of their own, beside the live suites, when
        this run has both (harness/unit_tier.py)."""
        unit = [
            item
            for item in items
            if item.get_closest_marker("unit") and not self.results[item.nodeid].out_of_scope
        ]
        if not unit or all(item.get_closest_marker("unit") for item in items):
            return
        reports = Path(self.settings.reports_dir)
        self.unit_tier = BackgroundUnitTier.start(config, unit, reports)
        handed = set(self.unit_tier.nodeids)
        items[:] = [item for item in items if item.nodeid not in handed]
        from harness.waits import console

        console.print(
            f"unit tier: {len(unit)} tests in a pytest of their own beside the live suites "
            f"(pid {self.unit_tier.process.pid}, output in {self.unit_tier.log})",
            highlight=False,
            soft_wrap=True,
        )

    def take_the_unit_tier(self, interrupted: bool) -> None:
        """The unit tier's results, into this run's; its failures are named on the terminal."""
        if self.unit_tier is None or self.unit_tier_taken:
            return
        self.unit_tier_taken = True
        from harness.waits import console

        if interrupted:
            self.unit_tier.stop()
        elif self.unit_tier.running:
            console.print("unit tier: waiting for it to finish ...", highlight=False)
        try:
            found = self.unit_tier.results()
        except UnitTierFailed as error:
            self.unit_tier_failed = str(error)
            return
        for nodeid, measured in found.items():
            self.results[nodeid].take(measured)
        counts = {o: sum(r["outcome"] == o for r in found.values()) for o in ("passed", "failed")}
        # Said at the end of the run: a test that asks for an outcome has its output captured.
        self.unit_tier_summary = [
            f"unit tier: {counts['passed']} passed, {counts['failed']} failed, "
            f"{len(found) - sum(counts.values())} skipped in {self.unit_tier.duration_s:.0f} s "
            f"(output in {self.unit_tier.log})",
            *(
                f"unit tier: FAILED {nodeid}: {outcome['detail']}"
                for nodeid, outcome in found.items()
                if outcome["outcome"] == "failed"
            ),
        ]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):
        outcome = yield
        report = outcome.get_result()
        result = self.results.get(item.nodeid)
        if result is None:
            return
        result.evidence = item.stash.get(self.evidence_key, None)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            result.duration_s += report.duration
            result.outcome = (
                "passed" if report.passed else "skipped" if report.skipped else "failed"
            )
            if not report.passed:
                result.detail = _short(report)
            if hasattr(report, "wasxfail"):
                # An expected failure proves nothing, and an unexpected pass is not a PASS.
                result.outcome = "failed"
                result.detail = f"xfail ({report.wasxfail or 'no reason'}): not a proof"
        elif report.when == "teardown" and report.failed:
            result.outcome, result.detail = "failed", _short(report)
        if report.when == "teardown":
            self.capture_dashboards()

    def outcome_of(self, nodeid: str) -> str:
        """This run's outcome of a test so far: passed, failed, skipped, or "not run" (not yet,
        not a test of this run, or out of its scope). A unit test's waits for the unit tier."""
        if self.unit_tier is not None and nodeid in self.unit_tier.nodeids:
            self.take_the_unit_tier(interrupted=False)
        result = self.results.get(nodeid)
        # Out of this run's scope, it was skipped here: this run has no outcome of it to share.
        return result.outcome if result and not result.out_of_scope else "not run"

    def capture_dashboards(self) -> None:
        """Read the dashboard's data for the episodes that ended with this test, now: a later
        drill may restart Prometheus with an empty TSDB."""
        for episode in JOURNAL:
            if episode.title in self.dashboards or not episode.moments:
                continue
            try:
                self.dashboards[episode.title] = replay.capture(
                    episode.stack.endpoints.prometheus_url,
                    episode.started_at,
                    episode.started_at + episode.duration_s,
                    episode.stack.scale,
                )
            except Exception as error:  # the report says so; the verdict does not depend on it
                self.dashboards[episode.title] = {"error": f"{type(error).__name__}: {error}"}
            self.pictures.draw(episode, self.dashboards[episode.title])

    # -- the report ----------------------------------------------------------------------

    def claim_results(self) -> list[ClaimResult]:
        by_claim: dict[str, list[TestResult]] = {claim.id: [] for claim in CLAIMS}
        for result in self.results.values():
            for claim in result.claims:
                by_claim[claim].append(result)
        return [
            ClaimResult(claim, claim_status(by_claim[claim.id]), by_claim[claim.id])
            for claim in CLAIMS
        ]

    def verdict(self, claims: list[ClaimResult], exitstatus: int) -> Verdict:
        # An item wholly out of this run's scope is another run's to prove (out_of_scope()).
        in_scope = (PASS, OUT_OF_SCOPE)
        return Verdict(
            external=self.settings.stack == "external",
            topology=self.settings.topology,
            failed_tests=[t.nodeid for t in self.results.values() if t.outcome == "failed"],
            missing_claims=[
                c.claim.id for c in claims if c.claim.required and c.status not in in_scope
            ],
            run_failed=(
                f"the test run itself failed (pytest exit status {int(exitstatus)})"
                if exitstatus not in (0, pytest.ExitCode.TESTS_FAILED)
                else ""
            ),
        )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.part:
            write_results(
                self.part,
                {t.nodeid: t.to_json() for t in self.results.values()},
                time.time() - self.started,
            )
            return
        self.take_the_unit_tier(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        claims = self.claim_results()
        verdict = self.verdict(claims, session.exitstatus)
        if self.unit_tier_failed:
            verdict.run_failed = self.unit_tier_failed
        if STACK_FAILED in session.config.stash:
            verdict.run_failed = f"the stack failed to start: {session.config.stash[STACK_FAILED]}"
        directory = Path(self.settings.reports_dir)
        directory.mkdir(parents=True, exist_ok=True)
        timelines, dashboards = self.pictures.written(JOURNAL, self.dashboards)
        self.finished = time.time()
        (directory / "evidence.json").write_text(
            json.dumps(self.evidence_json(claims, verdict), indent=2, default=str)
        )
        document = self.markdown(claims, timelines, dashboards, verdict)
        (directory / "certification.md").write_text(document)
        (directory / "index.html").write_text(html_page(document, directory, verdict))
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            for line in self.unit_tier_summary:
                reporter.write_line(line)
            reporter.write_line(
                f"certification report: {directory / 'certification.md'} ({verdict.text})"
            )
            for reason in verdict.reasons:
                reporter.write_line(f"  {reason}")
        # The exit code says what the document says.
        if not verdict.certified and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def time_against_floor(self) -> list[str]:
        """Each episode's measured time beside the waiting it cannot avoid (its floor)."""
        if not JOURNAL:
            return []
        lines = [
            "## Time against the floor",
            "",
            "The floor of an episode is the waiting the contract makes unavoidable on this time "
            "scale (windows, for: durations, intervals); the ratio says how far above it the "
            "episode ran.",
            "",
            "| episode | measured | floor | ratio |",
            "|---|---:|---:|---:|",
        ]
        for episode in JOURNAL:
            lines.append(
                f"| {episode.title} | {episode.duration_s:.1f} s | {episode.floor_s:.1f} s "
                f"| {floor_ratio(episode.duration_s, episode.floor_s)} |"
            )
        measured = sum(episode.duration_s for episode in JOURNAL)
        floor = sum(episode.floor_s for episode in JOURNAL)
        lines.append(
            f"| all episodes | {measured:.1f} s | {floor:.1f} s | {measured / floor:.2f} |"
        )
        apart = dict(self.stack_startup_s)
        if self.unit_tier is not None:
            apart["unit tier (beside the live suites)"] = self.unit_tier.duration_s
        if apart:
            lines += [
                "",
                "Apart from the episodes: "
                + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in apart.items()),
            ]
        whole = self.run_against_floor()
        if whole["ratio"] is not None:
            lines += [
                "",
                f"The whole run: {whole['run_s']:.0f} s; without the image build and the "
                f"start-up, {whole['run_s'] - whole['apart_s']:.0f} s, {whole['ratio']:.2f} times "
                "the floor.",
            ]
        return [*lines, ""]

    @property
    def run_s(self) -> float:
        return (self.finished or time.time()) - self.started

    def run_against_floor(self) -> dict[str, Any]:
        """The run's time so far against the sum of the episodes' floors. The image build and
        the start-up are apart: a bare machine's build is not the run's pace, and a start-up is
        not the contract's waiting."""
        run = self.run_s
        apart = sum(self.stack_startup_s.values())
        floor = sum(episode.floor_s for episode in JOURNAL)
        return {
            "run_s": round(run, 1),
            "apart_s": round(apart, 1),
            "floor_s": round(floor, 1),
            "ratio": round((run - apart) / floor, 2) if floor else None,
        }

    @property
    def threshold(self) -> float:
        # The checklist's threshold: the report draws it even when the deployed file lacks it.
        return CHECKLIST.skew_threshold

    def _images(self) -> str:
        """The image set the stack ran on (auto resolved), else the one asked for."""
        return self.images_used[0] if self.images_used else self.settings.images

    def _images_described(self) -> str:
        if self.images_used is None:
            return f"{self.settings.images} images"
        selection, reason = self.images_used
        return f"{selection} images: {reason}"

    def evidence_json(self, claims: list[ClaimResult], verdict: Verdict) -> dict[str, Any]:
        return {
            "generated": datetime.now(UTC).isoformat(),
            "verdict": verdict.text,
            "reasons": verdict.reasons,
            "overrides": (
                [vars(o) for o in OVERRIDES] if self.settings.stack == "containers" else []
            ),
            "stack": self.settings.stack,
            "topology": self.settings.topology,
            "images": self._images() if self.settings.stack == "containers" else None,
            "time_scale": str(self.settings.time_scale),
            "duration_s": round(self.run_s, 1),
            "episodes": {
                episode.title: {
                    "measured_s": round(episode.duration_s, 1),
                    "floor_s": round(episode.floor_s, 1),
                    "moments": episode.to_json(),
                    "marks": episode.marks,
                }
                for episode in JOURNAL
            },
            "startup_s": self.stack_startup_s,
            "run_against_floor": self.run_against_floor(),
            "claims": [
                {
                    "id": c.claim.id,
                    "section": c.claim.section,
                    "text": c.claim.text,
                    "required": c.claim.required,
                    "status": c.status,
                    # The stack a PASS was measured on (the unit tier's files are both's).
                    "proved_on": self.proved_on(c),
                    "tests": [t.nodeid for t in c.tests],
                }
                for c in claims
            ],
            "tests": [t.to_json() for t in self.results.values()],
        }

    def proved_on(self, claim: ClaimResult) -> str:
        """What a PASS was measured on: this run's topology, an external deployment, or the
        deployable files alone (unit tests only: true of both topologies)."""
        if claim.status != PASS:
            return ""
        if self.settings.stack == "external":
            return "the external deployment" if self._live(claim) else "the deployable files"
        if not self._live(claim):
            return "the deployable files (both topologies)"
        return f"the {self.settings.topology} topology"

    @staticmethod
    def _live(claim: ClaimResult) -> bool:
        return any(
            not test.out_of_scope and not test.nodeid.startswith("tests/") for test in claim.tests
        )

    def markdown(
        self,
        claims: list[ClaimResult],
        timelines: dict[str, str],
        dashboards: dict[str, str],
        verdict: Verdict,
    ) -> str:
        contract = load_contract()
        clock = Clock(self.settings.time_scale)
        statuses = (PASS, FAIL, NOT_RUN, OUT_OF_SCOPE)
        counts = {status: sum(c.status == status for c in claims) for status in statuses}
        skew_for = contract.alert(CHECKLIST.skew_alert).for_s
        lines = [
            f"# Production readiness certification: {contract.group} monitoring stack",
            "",
            f"**Verdict: {verdict.text}** ("
            + ", ".join(f"{counts[s]} {s}" for s in statuses if counts[s] or s != OUT_OF_SCOPE)
            + ")",
            "",
            *[f"- {reason}" for reason in verdict.reasons],
            *([""] if verdict.reasons else []),
            f"- Generated: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `nox -s certify`, "
            "from what this run's tests measured; nothing here is written by hand.",
            f"- Stack: {self.settings.stack}"
            + (f" ({self._images_described()})" if self.settings.stack == "containers" else "")
            + f", deployable files {contract.stack_dir}",
            f"- Topology: **{contract.topology}** ("
            + " over ".join(reversed(COMPOSE_FILES[contract.topology]))
            + "): every PASS below was proved on it",
            f"- Time scale: {clock.scale} (every duration of the live stack is the production "
            f"duration x {clock.scale}: scrape {clock.label(contract.scrape_s)}, window "
            f"{clock.label(contract.window_s)}, {CHECKLIST.skew_alert} for: "
            f"{clock.label(skew_for)}). Measured times below are on this scale; the production "
            "value each stands for is given beside it.",
            f"- Run time: {self.run_s / 60:.1f} min",
            "",
        ]
        if self.settings.stack == "containers":
            lines += [
                "## Stack under test",
                "",
                f"Every service as defined by `{' + '.join(COMPOSE_FILES[contract.topology])}` "
                "(command, environment, limits, restart policy, healthcheck, user, read-only root, "
                "tmpfs, capabilities, aliases), except for these declared overrides:",
                "",
                "| services | what | why |",
                "|---|---|---|",
                *[f"| {o.services} | {o.what} | {o.why} |" for o in OVERRIDES],
                "",
            ]
            scope = SINGLE_TOPOLOGY_WHY if contract.topology == HA else HA_ONLY_WHY
            lines += [
                "## Scope of this topology's run",
                "",
                f"Items marked {OUT_OF_SCOPE} are the other topology's: {scope}. Each topology's "
                "run certifies what it can prove; a release needs both verdicts.",
                "",
            ]
        else:
            lines += [
                "## Scope of this external run",
                "",
                f"Items marked {OUT_OF_SCOPE} {OUT_OF_SCOPE_WHY}: they are certified by a "
                "`--stack=containers` run of the same files, not by this one. Destructive items "
                "stay NOT RUN (and the verdict NOT CERTIFIED) without --allow-destructive and "
                "fault commands.",
                "",
            ]
        for section in SECTIONS:
            items = [c for c in claims if c.claim.section == section]
            if not items:
                continue
            lines += [f"## {section}", ""]
            for item in items:
                optional = "" if item.claim.required else " _(informational)_"
                proved = f" _(proved on: {self.proved_on(item)})_" if item.status == PASS else ""
                lines.append(
                    f"- {ICONS[item.status]} **{item.status}** {item.claim.text}{optional}{proved}"
                )
                lines += _test_lines(item.tests)
            lines.append("")
        lines += self.time_against_floor()
        if timelines:
            lines += [TIMELINES_HEADING, ""]
            for title, path in timelines.items():
                lines += [f"### {title}", "", f"![{title}]({path})", ""]
                replayed = dashboards.get(title, "")
                if replayed.endswith(".png"):
                    lines += [f"![{title}: the dashboard, replayed]({replayed})", ""]
                elif replayed:
                    lines += [f"The dashboard could not be replayed: {replayed}", ""]
        return "\n".join(lines)


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #1b1f24; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { border: 1px solid #d0d7de;
       padding: .25rem .5rem; text-align: left; }
code { background: #f3f4f6; padding: 0 .2rem; } img { max-width: 100%; }
.verdict { font-size: 1.4rem; padding: .6rem 1rem; border-radius: .4rem; color: white; }
.certified { background: #1a7f37; } .not-certified { background: #cf222e; }
body:has(#timelines:target) > :not(#timelines, #verdict) { display: none; }
"""
TIMELINES_HEADING = "## Timelines and the dashboard, replayed"


def floor_ratio(measured_s: float, floor_s: float) -> str:
    """An episode's time over its floor. A floor is the waiting no run can avoid, so a run that
    beat it shows the floor is wrong, and the report says so instead of printing it as met."""
    if not floor_s:
        return "-"
    ratio = measured_s / floor_s
    return f"{ratio:.2f}" if ratio >= 1 else f"{ratio:.2f}: below its floor, the floor is wrong"


def html_page(document: str, directory: Path, verdict: Verdict) -> str:
    """reports/index.html: the verdict first, then certification.md as one self-contained page
    (every timeline embedded), so that it can be mailed or attached as it is."""
    import base64
    import html

    import markdown

    # The timelines are a section of their own: index.html#timelines shows them alone (a link
    # to send, a screenshot to take without scrolling).
    report, _, timelines = document.partition(f"\n{TIMELINES_HEADING}\n")
    body = markdown.markdown(report, extensions=["tables"])
    if timelines:
        section = markdown.markdown(f"{TIMELINES_HEADING}\n{timelines}", extensions=["tables"])
        body += f'<section id="timelines">{section}</section>'
    for image in sorted([*directory.glob("timeline-*.png"), *directory.glob("dashboard-*.png")]):
        data = base64.b64encode(image.read_bytes()).decode()
        body = body.replace(f'src="{image.name}"', f'src="data:image/png;base64,{data}"')
    kind = "certified" if verdict.certified else "not-certified"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(verdict.text)}: production readiness certification</title>"
        f"<style>{PAGE_STYLE}</style></head><body>"
        f'<p class="verdict {kind}" id="verdict">{html.escape(verdict.text)}</p>'
        f"{body}</body></html>\n"
    )


def _test_lines(tests: list[TestResult]) -> list[str]:
    """Tests with measurements or a failure are listed one by one; the rest are counted."""
    if not tests:
        return ["  - no test of this run claims this item"]
    lines: list[str] = []
    quiet: dict[str, int] = {}
    # Out of this run's scope, one line a module and reason: their skip messages say the same.
    elsewhere: dict[tuple[str, str], int] = {}
    for test in tests:
        measurements = test.evidence.measurements if test.evidence else []
        module = test.nodeid.split("::")[0]
        if test.out_of_scope:
            key = (module, test.out_of_scope)
            elsewhere[key] = elsewhere.get(key, 0) + 1
            continue
        if not measurements and test.outcome == "passed":
            quiet[module] = quiet.get(module, 0) + 1
            continue
        name = test.nodeid.split("::")[-1]
        detail = f" ({test.detail})" if test.detail else ""
        lines.append(f"  - `{name}`: {test.outcome}{detail}")
        for m in measurements:
            against = f" (against {m.against})" if m.against else ""
            unit = f" {m.unit}" if m.unit else ""
            lines.append(f"    - {m.name}: {_value(m.value)}{unit}{against}")
    lines += [f"  - `{module}`: {count} test(s) passed" for module, count in quiet.items()]
    lines += [
        f"  - `{module}`: {count} test(s) out of scope: {why}"
        for (module, why), count in elsewhere.items()
    ]
    return lines


def _short(report: pytest.TestReport) -> str:
    text = str(report.longrepr) if report.longrepr else ""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = report.longrepr[2]
    last = [line for line in text.splitlines() if line.strip()]
    return (last[-1] if last else text)[:300]


def _value(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= 300 else text[:297] + "..."

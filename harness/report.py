"""The certification report, built only from what this run's tests measured.

A pytest plugin (registered with --certify): it notes each test's outcome, its claim markers and
its evidence, and at the end writes reports/certification.md, reports/evidence.json and a timeline
PNG per drill. An item is PASS only when every test that claims it ran and passed; any failure is
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

from harness.claims import BY_ID, CLAIMS, SECTIONS, Claim
from harness.evidence import Evidence
from harness.settings import HarnessSettings

PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"
ICONS = {PASS: "✅", FAIL: "❌", NOT_RUN: "⚪"}


@dataclass
class TestResult:
    nodeid: str
    claims: list[str]
    outcome: str = "not run"  # passed, failed, skipped
    duration_s: float = 0.0
    detail: str = ""
    evidence: Evidence | None = None


@dataclass
class ClaimResult:
    claim: Claim
    status: str
    tests: list[TestResult] = field(default_factory=list)


def claim_status(tests: list[TestResult]) -> str:
    outcomes = {test.outcome for test in tests}
    if "failed" in outcomes:
        return FAIL
    if outcomes == {"passed"}:
        return PASS
    return NOT_RUN


class CertificationReport:
    """Collects outcomes and evidence during the run; writes the report at the end."""

    def __init__(self, settings: HarnessSettings, evidence_key: pytest.StashKey[Evidence]) -> None:
        self.settings = settings
        self.evidence_key = evidence_key
        self.results: dict[str, TestResult] = {}
        self.started = time.time()

    # -- collection of outcomes ----------------------------------------------------------

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            claims = [marker.args[0] for marker in item.iter_markers("claim")]
            unknown = [claim for claim in claims if claim not in BY_ID]
            if unknown:
                raise pytest.UsageError(
                    f"{item.nodeid}: unknown claim {unknown} (harness/claims.py)"
                )
            if claims:
                self.results[item.nodeid] = TestResult(item.nodeid, claims)

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
        elif report.when == "teardown" and report.failed:
            result.outcome, result.detail = "failed", _short(report)

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

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        claims = self.claim_results()
        directory = Path(self.settings.reports_dir)
        directory.mkdir(parents=True, exist_ok=True)
        timelines = write_timelines(self.results.values(), directory)
        (directory / "evidence.json").write_text(
            json.dumps(self.evidence_json(claims), indent=2, default=str)
        )
        (directory / "certification.md").write_text(self.markdown(claims, timelines))
        missing = [c.claim.id for c in claims if c.claim.required and c.status != PASS]
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line(
                f"certification report: {directory / 'certification.md'} "
                f"({'CERTIFIED' if not missing else 'NOT CERTIFIED: ' + ', '.join(missing)})"
            )
        if missing and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def evidence_json(self, claims: list[ClaimResult]) -> dict[str, Any]:
        return {
            "generated": datetime.now(UTC).isoformat(),
            "stack": self.settings.stack,
            "images": self.settings.images if self.settings.stack == "containers" else None,
            "time_scale": str(self.settings.time_scale),
            "duration_s": round(time.time() - self.started, 1),
            "claims": [
                {
                    "id": c.claim.id,
                    "section": c.claim.section,
                    "text": c.claim.text,
                    "required": c.claim.required,
                    "status": c.status,
                    "tests": [t.nodeid for t in c.tests],
                }
                for c in claims
            ],
            "tests": [
                {
                    "nodeid": t.nodeid,
                    "outcome": t.outcome,
                    "duration_s": round(t.duration_s, 1),
                    "claims": t.claims,
                    "detail": t.detail,
                    "evidence": t.evidence.to_json() if t.evidence else None,
                }
                for t in self.results.values()
            ],
        }

    def markdown(self, claims: list[ClaimResult], timelines: dict[str, str]) -> str:
        scale = self.settings.time_scale
        missing = [c for c in claims if c.claim.required and c.status != PASS]
        counts = {
            status: sum(c.status == status for c in claims) for status in (PASS, FAIL, NOT_RUN)
        }
        verdict = "CERTIFIED" if not missing else "NOT CERTIFIED"
        lines = [
            "# Production readiness certification: crm-events-sse monitoring stack",
            "",
            f"**Verdict: {verdict}** ({counts[PASS]} PASS, {counts[FAIL]} FAIL, "
            f"{counts[NOT_RUN]} NOT RUN; {len(missing)} required item(s) not PASS)",
            "",
            f"- Generated: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `nox -s certify`, "
            "from what this run's tests measured; nothing here is written by hand.",
            f"- Stack: {self.settings.stack}"
            + (f" ({self.settings.images} images)" if self.settings.stack == "containers" else ""),
            f"- Time scale: {scale} (every duration of the live stack is the production duration x "
            f"{scale}: scrape 15s -> {_fmt(15 * scale)}, window 5m -> {_fmt(300 * scale)}, "
            f"for: 12m -> {_fmt(720 * scale)}). Measured times below are on this scale; the "
            "production value each stands for is given beside it.",
            f"- Run time: {(time.time() - self.started) / 60:.1f} min",
            "",
        ]
        for section in SECTIONS:
            items = [c for c in claims if c.claim.section == section]
            if not items:
                continue
            lines += [f"## {section}", ""]
            for item in items:
                optional = "" if item.claim.required else " _(informational)_"
                lines.append(
                    f"- {ICONS[item.status]} **{item.status}** {item.claim.text}{optional}"
                )
                lines += _test_lines(item.tests)
            lines.append("")
        if timelines:
            lines += ["## Timelines", ""]
            for title, path in timelines.items():
                lines += [f"### {title}", "", f"![{title}]({path})", ""]
        return "\n".join(lines)


def _test_lines(tests: list[TestResult]) -> list[str]:
    """Tests with measurements or a failure are listed one by one; the rest are counted."""
    if not tests:
        return ["  - no test of this run claims this item"]
    lines: list[str] = []
    quiet: dict[str, int] = {}
    for test in tests:
        measurements = test.evidence.measurements if test.evidence else []
        module = test.nodeid.split("::")[0]
        if not measurements and test.outcome == "passed":
            quiet[module] = quiet.get(module, 0) + 1
            continue
        name = test.nodeid.split("::")[-1]
        lines.append(f"  - `{name}`: {test.outcome}" + (f" ({test.detail})" if test.detail else ""))
        for m in measurements:
            against = f" (against {m.against})" if m.against else ""
            unit = f" {m.unit}" if m.unit else ""
            lines.append(f"    - {m.name}: {_value(m.value)}{unit}{against}")
    lines += [f"  - `{module}`: {count} test(s) passed" for module, count in quiet.items()]
    return lines


def _short(report: pytest.TestReport) -> str:
    text = str(report.longrepr) if report.longrepr else ""
    if report.skipped and isinstance(report.longrepr, tuple):
        text = report.longrepr[2]
    last = [line for line in text.splitlines() if line.strip()]
    return (last[-1] if last else text)[:300]


def _fmt(seconds: Any) -> str:
    value = float(seconds)
    return f"{value:g}s"


def _value(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= 300 else text[:297] + "..."


def write_timelines(results: Any, directory: Path) -> dict[str, str]:
    """One PNG per recorded episode timeline: probe status, group members, skew, alert."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: dict[str, str] = {}
    for result in results:
        if not result.evidence:
            continue
        for title, points in result.evidence.timelines.items():
            moments = [m for point in points for m in point.get("moments", [])]
            if not moments:
                continue
            t = [m["t"] for m in moments]
            fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
            axes[0].step(
                t,
                [1 if m["status"] == 200 else 0 for m in moments],
                where="post",
                label="stack probe ready",
            )
            if any("seed_status" in m for m in moments):
                axes[0].step(
                    t,
                    [1 if m.get("seed_status") == 200 else 0 for m in moments],
                    where="post",
                    linestyle="--",
                    label="seed-query probe ready",
                )
            axes[0].set_ylabel("/ready 200")
            axes[0].legend(loc="lower left")
            axes[1].plot(t, [m.get("members") or 0 for m in moments], label="group members")
            axes[1].set_ylabel("members")
            if any(m.get("skew") is not None for m in moments):
                axes[2].plot(t, [m.get("skew") or 0 for m in moments], label="skew ratio")
                axes[2].axhline(4, color="red", linestyle=":", label="threshold 4")
                firing = [m["t"] for m in moments if m.get("alert") == "firing"]
                if firing:
                    axes[2].axvspan(
                        min(firing),
                        max(firing),
                        color="orange",
                        alpha=0.2,
                        label="CrmEventsHotKeySkewHigh firing",
                    )
                axes[2].set_ylabel("skew")
                axes[2].legend(loc="upper right")
            for point in points:
                for mark, at in (point.get("marks") or {}).items():
                    for axis in axes:
                        axis.axvline(at, color="grey", linewidth=0.8)
                    axes[0].annotate(mark, (at, 1.05), fontsize=7, rotation=15)
            axes[-1].set_xlabel(f"seconds (time scale {result.evidence.time_scale})")
            fig.suptitle(title)
            name = "timeline-" + "".join(c if c.isalnum() else "-" for c in title.lower()) + ".png"
            fig.savefig(directory / name, dpi=90)
            plt.close(fig)
            written[title] = name
    return written

"""Sessions: `nox -s certify` is the main job; `nox` runs lint, certify, mutants and external
(CI)."""

from __future__ import annotations

import os

import nox
import nox.command

nox.options.sessions = ["lint", "certify", "ha", "mutants", "external"]
nox.options.reuse_existing_virtualenvs = True

REPORTS = "reports"
# harness/report.py EXIT_STACK_FAILED: the stack failed to start, which is not a verdict (a gate
# may retry on it). nox turns every failing code into 1; this one is passed through.
EXIT_STACK_FAILED = 6


def install(session: nox.Session, *extras: str) -> None:
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


def build_engines(session: nox.Session) -> None:
    """The current Prometheus and Alertmanager (and their promtool and amtool), built from the Go
    module proxy when missing: the unit tier's tools and the offline images' binaries."""
    session.run("python", "-m", "harness.engines")


def certification(session: nox.Session, *args: str) -> None:
    """Run a certification; exit with EXIT_STACK_FAILED, not 1, when the stack did not start."""
    try:
        session.run(*args, *session.posargs)
    except nox.command.CommandFailed as failed:
        if failed.return_code == EXIT_STACK_FAILED:
            raise SystemExit(EXIT_STACK_FAILED) from None
        raise


def check_page(session: nox.Session, reports: str) -> None:
    """The report page in headless Chromium: screenshots written beside it, not blank, and the
    verdict it shows is evidence.json's."""
    session.run("python", "-m", "harness.page_check", reports)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) and mypy."""
    install(session, "test", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def unit(session: nox.Session) -> None:
    """Fast, no Docker: probe, promtool rule tests, amtool routes, dashboard, time scale."""
    install(session, "test")
    build_engines(session)
    session.run("pytest", "tests", f"--junitxml={REPORTS}/junit-unit.xml", *session.posargs)


@nox.session(default=False)
def images(session: nox.Session) -> None:
    """Build the stack's offline images from package registries; reuse what is already built."""
    install(session, "test")
    session.run("python", "-m", "harness.images", *session.posargs)


@nox.session(default=False)
def acceptance(session: nox.Session) -> None:
    """Smoke test, endpoint contracts, alerting, dashboards, security against the live stack."""
    install(session, "test")
    session.run(
        "pytest", "acceptance", f"--junitxml={REPORTS}/junit-acceptance.xml", *session.posargs
    )


@nox.session(default=False)
def drill(session: nox.Session) -> None:
    """Drills: hot-key skew, window semantics, Prometheus faults, broker loss, day two."""
    install(session, "test")
    session.run("pytest", "drills", f"--junitxml={REPORTS}/junit-drills.xml", *session.posargs)


def topology(session: nox.Session) -> str:
    """The topology a certify run asks for: `--topology X` or `--topology=X` among the session's
    arguments, else CRM_CERT_TOPOLOGY, else single."""
    args = list(session.posargs)
    for index, arg in enumerate(args):
        if arg.startswith("--topology="):
            return arg.split("=", 1)[1]
        if arg == "--topology" and index + 1 < len(args):
            return args[index + 1]
    return session.env.get("CRM_CERT_TOPOLOGY") or os.environ.get("CRM_CERT_TOPOLOGY") or "single"


def certify_topology(session: nox.Session, chosen: str) -> None:
    """Certify one topology; its report goes to reports/ (single) or reports/<topology>/, so the
    two runs of a release keep both verdicts."""
    install(session, "test")
    build_engines(session)
    reports = REPORTS if chosen == "single" else f"{REPORTS}/{chosen}"
    certification(
        session,
        "pytest",
        "tests",
        "acceptance",
        "drills",
        "--certify",
        f"--topology={chosen}",
        f"--reports-dir={reports}",
        f"--junitxml={reports}/junit-certify.xml",
        "--durations=15",
    )
    check_page(session, reports)


@nox.session
def certify(session: nox.Session) -> None:
    """The main job: images, the stack, unit + acceptance + drills, then the report in reports/.
    `nox -s certify -- --topology=ha` certifies the HA topology instead (reports/ha/)."""
    certify_topology(session, topology(session))


@nox.session
def ha(session: nox.Session) -> None:
    """The production (HA) topology: `certify -- --topology=ha` (acceptance, the HA drills)."""
    certify_topology(session, "ha")


@nox.session
def external(session: nox.Session) -> None:
    """External mode against the project's own stack, started separately by harness.external:
    the files (unit tier) and the running deployment (acceptance, drills), certified in scope."""
    install(session, "test")
    build_engines(session)
    certification(
        session,
        "python",
        "-m",
        "harness.external",
        "tests",
        "acceptance",
        "drills",
        "--certify",
        f"--reports-dir={REPORTS}/external",
        f"--junitxml={REPORTS}/junit-external.xml",
    )
    check_page(session, f"{REPORTS}/external")


@nox.session(default=False)
def mutants(session: nox.Session) -> None:
    """Mutation testing of the artifacts, fast tier: score, survivors, reports/mutation.md."""
    install(session, "test")
    build_engines(session)
    session.run("python", "-m", "harness.mutants", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Probe benchmark: /ready latency and Prometheus query rate under 1, 10, 100 callers; RSS."""
    install(session, "test")
    session.run("python", "benchmarks/probe_bench.py", *session.posargs)


@nox.session(default=False)
def soak(session: nox.Session) -> None:
    """Certify N times in a row, one run beside a CPU hog: every failure, against its bound."""
    install(session, "test")
    session.run("python", "-m", "harness.soak", *session.posargs)

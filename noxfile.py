"""Sessions: `nox -s certify` is the main job; `nox` runs lint, certify and external (CI)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "certify", "external"]
nox.options.reuse_existing_virtualenvs = True

REPORTS = "reports"


def install(session: nox.Session, *extras: str) -> None:
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


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
    """Chaos drills: hot-key skew, window semantics, Prometheus outage, broker loss, rebalance."""
    install(session, "test")
    session.run("pytest", "drills", f"--junitxml={REPORTS}/junit-drills.xml", *session.posargs)


@nox.session
def certify(session: nox.Session) -> None:
    """The main job: images, the stack, unit + acceptance + drills, then the report in reports/."""
    install(session, "test")
    session.run(
        "pytest",
        "tests",
        "acceptance",
        "drills",
        "--certify",
        f"--reports-dir={REPORTS}",
        f"--junitxml={REPORTS}/junit-certify.xml",
        *session.posargs,
    )


@nox.session
def external(session: nox.Session) -> None:
    """External mode against the project's own stack, started separately by harness.external."""
    install(session, "test")
    session.run(
        "python",
        "-m",
        "harness.external",
        "acceptance",
        "drills",
        "--certify",
        f"--reports-dir={REPORTS}/external",
        f"--junitxml={REPORTS}/junit-external.xml",
        *session.posargs,
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Probe benchmark: /ready latency and Prometheus query rate under 1, 10, 100 callers; RSS."""
    install(session, "test")
    session.run("python", "benchmarks/probe_bench.py", *session.posargs)

"""The Prometheus and Alertmanager engines the stack is certified on.

Two engines of each (docs/design.md, section 6):

* ``current``: the pinned releases below, built on the host from the Go module proxy (no
  registry is reachable): ``prometheus`` and ``promtool``, ``alertmanager`` and ``amtool``. The
  offline images run these binaries and the unit tier's promtool and amtool are these builds.
* ``debian``: Debian bookworm's packages (Prometheus 2.42, Alertmanager 0.25), the oldest engines
  the configs must still load on; the unit tier runs the rules' and routes' tests on them too
  (scripts/ensure-tools.sh installs them).

A module zip holds no generated web UI. Prometheus serves its UI from disk unless built with the
``builtinassets`` tag, so it builds as it is (the API and /-/ready work; the UI pages do not).
Alertmanager embeds ``ui/app/dist``, which the zip lacks: the build adds a one-page placeholder.

``python -m harness.engines`` builds what is missing and prints each binary's version.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from harness.paths import BUILD_DIR

TOOLS_DIR = BUILD_DIR / "tools"
GO_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
VERSION_PACKAGE = "github.com/prometheus/common/version"
UI_PLACEHOLDER = (
    b"<!doctype html><title>Alertmanager</title>"
    b"<p>Built without the web UI: use the API (/api/v2/) or amtool.\n"
)

CURRENT, DEBIAN = "current", "debian"
ENGINES = (CURRENT, DEBIAN)


@dataclass(frozen=True)
class Release:
    """One pinned release: its Go module and version, and the commands built from it."""

    name: str
    module: str
    module_version: str  # the Go module's version (Prometheus 3.x is v0.3XX.Y)
    version: str  # the release, as the binaries report it
    commands: tuple[str, ...]
    placeholders: tuple[str, ...] = ()  # embedded files a module zip lacks
    tags: tuple[str, ...] = ()  # Go build tags

    @property
    def pin(self) -> str:
        return f"{self.module}@{self.module_version}"

    @property
    def tags_suffix(self) -> str:
        """The build tags as a name suffix ("+remove_all_sd+enable_dns_sd"), "" without any."""
        return "".join(f"+{tag}" for tag in self.tags)

    @property
    def build_key(self) -> str:
        """What the binaries are built from: the pin and the build tags."""
        return self.pin + self.tags_suffix


PROMETHEUS = Release(
    "prometheus",
    "github.com/prometheus/prometheus",
    "v0.316.0",
    "3.16.0",
    ("prometheus", "promtool"),
    # Only the service discovery stack/prometheus/prometheus.yml uses (static and DNS): the cloud
    # and Kubernetes SDKs are most of a cold build. The upstream image keeps them all.
    tags=("remove_all_sd", "enable_dns_sd"),
)
ALERTMANAGER = Release(
    "alertmanager",
    "github.com/prometheus/alertmanager",
    "v0.35.0",
    "0.35.0",
    ("alertmanager", "amtool"),
    placeholders=("ui/app/dist/elm/index.html", "ui/app/dist/mantine/index.html"),
)
RELEASES = {release.name: release for release in (PROMETHEUS, ALERTMANAGER)}
# Debian bookworm's packages (scripts/ensure-tools.sh): the oldest releases the files must work on.
DEBIAN_RELEASES = {"prometheus": "2.42", "alertmanager": "0.25"}
RELEASE_OF_COMMAND = {command: r for r in RELEASES.values() for command in r.commands}


class EngineBuildError(RuntimeError):
    """A build step failed; the message ends with the tail of its output."""


Runner = Callable[..., None]  # run(step, command, *, cwd=None, env=None)


@functools.cache
def go_version() -> str:
    """The Go toolchain's version, part of every binary's cache key ('' when Go is missing)."""
    try:
        return subprocess.run(
            ["go", "env", "GOVERSION"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def binaries_dir(release: Release) -> Path:
    go = go_version() or "nogo"
    return TOOLS_DIR / f"{release.name}-{release.version}-{go}{release.tags_suffix}"


def built(release: Release) -> bool:
    target = binaries_dir(release)
    return all((target / command).exists() for command in release.commands)


@contextlib.contextmanager
def _building(release: Release) -> Iterator[None]:
    """One build of a release at a time, across processes: a certify run's image build and its
    unit tier (a process of its own) may both need an engine that is not built yet."""
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    with (TOOLS_DIR / f".{release.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def ensure(release: Release, run: Runner | None = None) -> Path:
    """The directory holding the release's binaries, built first when any is missing (waiting
    for a build of it already under way, in any process)."""
    target = binaries_dir(release)
    if built(release):
        return target
    with _building(release):
        if built(release):  # built while this one waited
            return target
        taken = _from_image(release, target)
        if taken:
            print(f"engines: {release.name} {release.version} {taken}", file=sys.stderr)
            return target
        return _build(release, target, run)


def _from_image(release: Release, target: Path) -> str | None:
    """The release's binaries out of its offline image, when the image (or its archive) is here
    and they were built with the host's Go: then they are the bytes a host build makes
    (-trimpath, the same pin, tags and flags). None otherwise, and the binaries are built."""
    from harness import images  # imported here: harness.images builds on this module

    staging = _staging(target)
    try:
        tag = images.Builder().copy_engine(release, staging)
    except Exception as error:  # no Docker, no engine, a damaged image: build instead
        print(f"engines: {release.name} not taken from its image ({error})", file=sys.stderr)
        tag = None
    go = {_go_of_binary(staging / command) for command in release.commands} if tag else set()
    if go != {go_version()}:
        shutil.rmtree(staging)
        return None
    _promote(staging, target)
    return f"taken from {tag} (built with {go_version()})"


def _go_of_binary(binary: Path) -> str:
    """The Go a release's binary was built with, from its --version ('' when it does not say)."""
    result = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    found = re.search(r"go version:\s*(go\S+)", result.stdout + result.stderr)
    return found.group(1) if found else ""


def _staging(target: Path) -> Path:
    """An empty directory beside `target` that the binaries go into first."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _promote(staging: Path, target: Path) -> None:
    """The complete staging directory becomes `target`: a killed build or copy leaves none that
    looks whole."""
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _build(release: Release, target: Path, run: Runner | None) -> Path:
    if shutil.which("go") is None:
        raise EngineBuildError(f"{release.name} {release.version}: needs Go on PATH (see .ci/run)")
    run = run or _LoggedRunner(TOOLS_DIR / "logs" / f"{release.name}.log")
    run("go mod download", ["go", "mod", "download", "-json", release.pin], env=GO_ENV)
    source = _module_dir(release)
    work = TOOLS_DIR / "src" / f"{release.name}-{release.version}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work)
    for path in work.rglob("*"):  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    for placeholder in release.placeholders:
        (work / placeholder).parent.mkdir(parents=True, exist_ok=True)
        (work / placeholder).write_bytes(UI_PLACEHOLDER)
    staging = _staging(target)
    ldflags = (
        f"-s -w -X {VERSION_PACKAGE}.Version={release.version}"
        f" -X {VERSION_PACKAGE}.Branch=HEAD -X {VERSION_PACKAGE}.BuildUser=crm-cert"
    )
    packages = [f"./cmd/{command}" for command in release.commands]
    tags = [f"-tags={','.join(release.tags)}"] if release.tags else []
    run(
        f"go build {' '.join(release.commands)}",
        ["go", "build", "-trimpath", *tags, f"-ldflags={ldflags}", "-o", str(staging), *packages],
        cwd=work,
        env={**GO_ENV, "GOWORK": "off"},  # the zip's go.work names modules the zip leaves out
    )
    _promote(staging, target)
    shutil.rmtree(work)  # the copied sources: never kept
    return target


def tool(command: str) -> Path:
    """The current engine's promtool or amtool (or prometheus, alertmanager), built if missing."""
    return ensure(RELEASE_OF_COMMAND[command]) / command


def _module_dir(release: Release) -> Path:
    result = subprocess.run(
        ["go", "mod", "download", "-json", release.pin],
        capture_output=True,
        text=True,
        env={**os.environ, **GO_ENV},
        timeout=600,
        check=False,
    )
    try:
        return Path(json.loads(result.stdout)["Dir"])
    except (ValueError, KeyError):
        raise EngineBuildError(
            f"go mod download {release.pin}:\n{result.stdout}{result.stderr}"
        ) from None


def run_to_log(
    command: Sequence[str],
    out: TextIO,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, list[str]]:
    """Run a build command, its output appended to `out`: its exit code and last 25 lines (also
    harness/images.py's runner)."""
    out.write(f"\n$ {' '.join(command)}\n")
    out.flush()
    tail: deque[str] = deque(maxlen=25)
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert process.stdout is not None
    for line in process.stdout:
        out.write(line)
        tail.append(line.rstrip())
    return process.wait(), list(tail)


class _LoggedRunner:
    """Runs a build step with its output in a log file; fails with the tail of that output."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def __call__(
        self,
        step: str,
        command: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        print(f"engines: {step} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        with self.log.open("a") as out:
            code, tail = run_to_log(command, out, cwd=cwd, env=env)
        if code != 0:
            raise EngineBuildError(
                f"step '{step}' failed (exit {code}; full log: {self.log}):\n" + "\n".join(tail)
            )
        print(f"engines: {step} done in {time.monotonic() - started:.0f}s", file=sys.stderr)


def debian_tool(command: str) -> Path | None:
    """Debian's promtool or amtool (scripts/ensure-tools.sh), or None when not installed."""
    for directory in ("/usr/bin", "/usr/local/bin"):
        path = Path(directory) / command
        if path.exists():
            return path
    return None


def main() -> int:
    try:
        for release in RELEASES.values():
            directory = ensure(release)
            for command in release.commands:
                version = subprocess.run(
                    [str(directory / command), "--version"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                first = (version.stdout or version.stderr).splitlines()[:1]
                print(f"{command}: {directory / command}: {' '.join(first)}")
    except EngineBuildError as error:
        print(f"engines: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

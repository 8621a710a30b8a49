"""The engines the rules and routes are proven on: the pinned current releases (built from the Go
module proxy) and Debian's, each reporting the version the claim names."""

from __future__ import annotations

import io
import re
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import engines, images
from harness.engines import ALERTMANAGER, CURRENT, DEBIAN, DEBIAN_RELEASES, PROMETHEUS
from tests.tools import check_tool

pytestmark = [pytest.mark.claim("deploy.engines")]

# What each engine's tools must report: the pinned release, or Debian bookworm's packages.
EXPECTED = {
    ("promtool", CURRENT): PROMETHEUS.version,
    ("amtool", CURRENT): ALERTMANAGER.version,
    ("promtool", DEBIAN): DEBIAN_RELEASES["prometheus"] + ".",
    ("amtool", DEBIAN): DEBIAN_RELEASES["alertmanager"] + ".",
}


@pytest.mark.parametrize(("tool", "engine"), EXPECTED, ids=lambda value: value)
def test_each_engines_tools_report_its_version(tool: str, engine: str):
    output = check_tool(tool, "--version", engine=engine)
    version = re.search(r"version (\S+)", output)
    assert version, output
    assert version.group(1).startswith(EXPECTED[tool, engine]), output


def test_one_build_of_a_release_at_a_time_and_the_waiter_takes_its_binaries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run's image build and its unit tier (a process of its own) may both need an engine not
    built yet: the second caller waits for the first build instead of starting its own."""
    monkeypatch.setattr(engines, "TOOLS_DIR", tmp_path)
    builds: list[str] = []
    started = threading.Event()

    def build(release: engines.Release, target: Path, run: object) -> Path:
        builds.append(release.name)
        started.set()
        time.sleep(0.3)  # wait-ok: a build long enough for the second caller to arrive
        target.mkdir(parents=True)
        for command in release.commands:
            (target / command).write_text("binary")
        return target

    monkeypatch.setattr(engines, "_build", build)
    monkeypatch.setattr(engines, "_from_image", lambda release, target: None)  # no image here
    with ThreadPoolExecutor(2) as callers:
        first = callers.submit(engines.ensure, PROMETHEUS)
        assert started.wait(10), "the first build never started"
        second = callers.submit(engines.ensure, PROMETHEUS)
        assert first.result(10) == second.result(10) == engines.binaries_dir(PROMETHEUS)
    assert builds == ["prometheus"]


def reporting_go(go: str) -> bytes:
    """A stand-in binary: a shell script reporting the Go it was built with, as --version does."""
    return f"#!/bin/sh\necho '  go version:       {go}'\n".encode()


class ImageHolding:
    """A created (never started) container of an offline image, as the Docker SDK gives it."""

    def __init__(self, go: str) -> None:
        self.binary = reporting_go(go)
        self.removed = False

    def get_archive(self, path: str) -> tuple[list[bytes], dict[str, object]]:
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as archive:
            member = tarfile.TarInfo(Path(path).name)
            member.size, member.mode = len(self.binary), 0o755
            archive.addfile(member, io.BytesIO(self.binary))
        return [tar.getvalue()], {}

    def remove(self) -> None:
        self.removed = True


def test_an_engines_binaries_are_copied_out_of_its_image_and_the_container_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    container = ImageHolding(go="go1.26.8")
    builder = images.Builder()
    monkeypatch.setattr(builder, "_image", lambda tag: object())
    builder._docker = SimpleNamespace(containers=SimpleNamespace(create=lambda tag: container))

    assert builder.copy_engine(PROMETHEUS, tmp_path) == builder.tags["prometheus"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(PROMETHEUS.commands)
    assert engines._go_of_binary(tmp_path / "promtool") == "go1.26.8"
    assert container.removed, "the container read from was left behind"


def image_built_with(monkeypatch: pytest.MonkeyPatch, go: str) -> None:
    """The offline image of every engine is here, its binaries built with `go`; the host's Go is
    go1.26.8."""

    class Holding:
        def copy_engine(self, release: engines.Release, directory: Path) -> str:
            for command in release.commands:
                (directory / command).write_bytes(reporting_go(go))
                (directory / command).chmod(0o755)
            return f"crm-cert/{release.name}:0123456789ab"

    monkeypatch.setattr(images, "Builder", Holding)
    monkeypatch.setattr(engines, "go_version", lambda: "go1.26.8")


def test_the_binaries_of_an_image_built_with_the_hosts_go_are_taken_not_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    image_built_with(monkeypatch, "go1.26.8")
    target = tmp_path / "prometheus"

    taken = engines._from_image(PROMETHEUS, target)

    assert taken == "taken from crm-cert/prometheus:0123456789ab (built with go1.26.8)"
    assert sorted(p.name for p in target.iterdir()) == sorted(PROMETHEUS.commands)
    assert [p.name for p in tmp_path.iterdir()] == ["prometheus"], "the staging copy is left"


def test_the_binaries_of_an_image_built_with_another_go_are_not_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    image_built_with(monkeypatch, "go1.25.0")

    assert engines._from_image(PROMETHEUS, tmp_path / "prometheus") is None
    assert not list(tmp_path.iterdir()), "nothing is left of the copy"


def test_an_engine_taken_from_its_image_is_not_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(engines, "TOOLS_DIR", tmp_path)

    def take(release: engines.Release, target: Path) -> str:
        target.mkdir(parents=True)
        for command in release.commands:
            (target / command).write_text("binary")
        return "taken from an image"

    def build(release: engines.Release, target: Path, run: object) -> Path:
        raise AssertionError("built although its image held it")

    monkeypatch.setattr(engines, "_from_image", take)
    monkeypatch.setattr(engines, "_build", build)
    assert engines.ensure(ALERTMANAGER) == engines.binaries_dir(ALERTMANAGER)
    assert engines.built(ALERTMANAGER)

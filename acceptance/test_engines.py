"""The running Prometheus and Alertmanager are the engines the rules and routes were proven on."""

from __future__ import annotations

import httpx
import pytest

from harness.engines import ALERTMANAGER, DEBIAN_RELEASES, PROMETHEUS
from harness.stack import ContainerStack

pytestmark = [pytest.mark.claim("deploy.engines")]


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("-")[0].split(".")[:2])


# External mode: a deployment may run other releases; the rules and routes are proven on these
# two lines and must not run on anything older than the oldest of them (Debian's).
OLDEST = {name: _release(version) for name, version in DEBIAN_RELEASES.items()}


def _check(name: str, version: str, pinned: str, stack, evidence) -> None:
    evidence.record(f"{name} version (running)", version)
    if isinstance(stack, ContainerStack):
        assert version == pinned, f"{name} runs {version}, the certified engine is {pinned}"
    else:
        assert _release(version) >= OLDEST[name], f"{name} {version} is older than certified"


def test_prometheus_runs_the_certified_release(stack, evidence):
    info = httpx.get(f"{stack.endpoints.prometheus_url}/api/v1/status/buildinfo", timeout=10)
    info.raise_for_status()
    _check("prometheus", info.json()["data"]["version"], PROMETHEUS.version, stack, evidence)


def test_alertmanager_runs_the_certified_release(stack, evidence):
    status = httpx.get(f"{stack.endpoints.alertmanager_url}/api/v2/status", timeout=10)
    status.raise_for_status()
    version = status.json()["versionInfo"]["version"]
    _check("alertmanager", version, ALERTMANAGER.version, stack, evidence)

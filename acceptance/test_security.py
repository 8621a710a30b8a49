"""Security and limits of the running stack: internal-only probe, limits, non-root, under load."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from harness import services as svc
from harness.contract import CHECKLIST
from harness.waits import wait_until
from probe.settings import ProbeSettings

# The load is bounded by its count: one caller per server thread of the deployed probe, so that
# every thread serves, each with this many requests (about 8 s at the probe's 0.1 CPU). Measured
# on a fresh compose stack, 8 callers: 26.9 MiB before, 27.6 MiB after 800 requests, a 29.3 MiB
# peak within 2800, against a 64 MiB limit. What a longer load adds is that slow drift, which
# the benchmark (`nox -s bench`, RSS after thousands of requests) is the place to follow.
REQUESTS_PER_CALLER = 80
# How often the memory is read during the load: where the engine reports no high-water mark
# (cgroup v2), the samples are the peak.
MEMORY_SAMPLE_S = 0.25


@pytest.mark.claim("docker.probe_internal")
@pytest.mark.containers_only
def test_running_probe_has_no_host_port_and_restarts_unless_stopped(containers, evidence):
    attrs = containers.docker_container(svc.PROBE).attrs
    bindings = attrs["HostConfig"].get("PortBindings") or {}
    published = {
        port: spec for port, spec in (attrs["NetworkSettings"]["Ports"] or {}).items() if spec
    }
    evidence.record("host port bindings", bindings)
    evidence.record("restart policy", attrs["HostConfig"]["RestartPolicy"]["Name"])
    assert bindings == {} and published == {}
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == CHECKLIST.probe_restart
    assert list(attrs["NetworkSettings"]["Networks"]) == [containers.network.name]


@pytest.mark.claim("security.limits")
@pytest.mark.containers_only
def test_probe_runs_with_the_checklist_limits_and_survives_a_bounded_load(
    containers, probe, evidence
):
    container = containers.docker_container(svc.PROBE)
    host = container.attrs["HostConfig"]
    evidence.record("cpu limit", host["NanoCpus"] / 1e9, "CPU")
    evidence.record("memory limit", host["Memory"] / 2**20, "MiB")
    evidence.record("memory + swap limit", host["MemorySwap"] / 2**20, "MiB")
    assert host["NanoCpus"] == round(CHECKLIST.probe_cpus * 1e9)
    assert host["Memory"] == CHECKLIST.probe_memory_bytes
    assert host["MemorySwap"] == CHECKLIST.probe_memory_bytes, "no swap beyond the limit"

    codes: list[int] = []
    callers = ProbeSettings.from_env(containers.contract.probe_env).probe_threads

    def caller() -> None:
        with httpx.Client(base_url=probe.url, timeout=10) as client:
            for _ in range(REQUESTS_PER_CALLER):
                codes.append(client.get("/ready").status_code)

    def memory_in_use() -> float:
        # one_shot: the engine's current figures, without its usual second sample a second later
        memory = container.stats(stream=False, one_shot=True)["memory_stats"]
        return memory.get("max_usage", memory.get("usage", 0))

    peak = 0.0
    began = time.monotonic()
    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, memory_in_use())
        time.sleep(MEMORY_SAMPLE_S)  # wait-ok: the sampling interval of the memory figures
    load_s = time.monotonic() - began
    peak = max(peak, memory_in_use())
    container.reload()
    evidence.record("callers, one per server thread of the probe", callers)
    evidence.record("requests during the load", len(codes))
    evidence.record("load duration", round(load_s, 1), "s")
    evidence.record(
        "peak memory under load",
        round(peak / 2**20, 1),
        "MiB",
        f"limit {CHECKLIST.probe_memory_bytes / 2**20:g} MiB",
    )
    evidence.record("OOM killed", container.attrs["State"]["OOMKilled"])
    evidence.record("restarts", container.attrs["RestartCount"])
    assert codes and set(codes) == {200}, f"answers under load: {sorted(set(codes))}"
    assert not container.attrs["State"]["OOMKilled"]
    assert container.attrs["RestartCount"] == 0
    assert probe.health() == 200


@pytest.mark.claim("security.non_root")
@pytest.mark.containers_only
def test_app_containers_run_as_non_root(containers, evidence):
    app = [s for s, c in containers.containers.items() if c.image == containers.images.app]
    # The probe and the webhook receiver, besides every consumer.
    assert len(app) >= 2 + len(containers.contract.consumer_services), app
    for service in app:
        container = containers.containers[service]
        result = container.get_wrapped_container().exec_run(["id", "-u"])
        uid = int(result.output.decode().strip())
        evidence.record(f"{service} uid", uid)
        assert uid != 0, f"{service} runs as root"


@pytest.mark.claim("docker.consumer_healthcheck")
@pytest.mark.containers_only
def test_running_consumers_check_their_health_on_the_probe_ready_endpoint(containers, evidence):
    """The consumers run compose.yaml's healthcheck, and Docker has run it against the probe."""
    for service in containers.contract.consumer_services:
        container = containers.docker_container(service)
        check = container.attrs["Config"]["Healthcheck"]
        evidence.record(f"{service} healthcheck", check["Test"])
        assert CHECKLIST.consumer_healthcheck_url in check["Test"], check

        def health_log(container=container) -> list[dict]:
            container.reload()
            return container.attrs["State"].get("Health", {}).get("Log") or []

        # Docker runs the first check one interval after the container starts.
        log = wait_until(
            f"Docker to have run {service}'s healthcheck",
            health_log,
            timeout=(check["Interval"] + check["Timeout"]) / 1e9 + 10,
        )
        evidence.record(f"{service} healthcheck exit codes", [entry["ExitCode"] for entry in log])
        # Each check reached the probe: 0 (ready), or curl's 22 for an HTTP error status the
        # probe answered (500 while a drill keeps the group unhealthy); never a failed connection.
        unanswered = [e for e in log if e["ExitCode"] != 0 and "returned error" not in e["Output"]]
        assert unanswered == [], unanswered

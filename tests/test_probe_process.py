"""`python -m probe` serves the contract over HTTP and logs one JSON line per evaluation."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import httpx
import pytest
from tenacity import retry, stop_after_delay, wait_fixed

# The probe as its container runs it: liveness served from the start, one JSON log line per
# evaluation.
pytestmark = [pytest.mark.claim("probe.health")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@retry(stop=stop_after_delay(20), wait=wait_fixed(0.1), reraise=True)
def wait_for_health(url: str) -> None:
    httpx.get(f"{url}/health", timeout=1).raise_for_status()


def test_python_m_probe_serves_and_logs_json(prometheus):
    port = free_port()
    environment = os.environ | {
        "PROM_URL": prometheus.url,
        "PROBE_HOST": "127.0.0.1",
        "PROBE_PORT": str(port),
        "PROM_RETRIES": "1",
        "CACHE_TTL_SECONDS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "probe"], env=environment, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url)
        assert httpx.get(f"{url}/ready").status_code == 200
        prometheus.skew = {"status": "error"}
        assert httpx.get(f"{url}/ready").status_code == 500
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    events = [line.get("event") for line in lines]
    assert events.count("evaluation") == 2
    assert events.count("prometheus_error") == 1
    assert all("time" in line and "level" in line for line in lines)

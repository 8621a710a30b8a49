"""Probe benchmark: /ready latency (p50/p99) and the Prometheus query rate with 1, 10 and 100
concurrent callers, and the probe's peak RSS. Prints figures; asserts nothing.

Targets (issue "Foundation"): peak RSS <= 48 MiB; <= 2 Prometheus queries per cache TTL whatever
the number of callers; p99 from cache <= 10 ms.

The probe runs as a real process (`python -m probe`, waitress) against a fake Prometheus on
127.0.0.1. The load comes from wrk (Debian package `wrk`) when installed, a separate C process
that leaves the probe the CPU; otherwise from Python threads in this process, which inflates the
latencies it measures. Every load loop is bounded in time (and, for threads, in requests).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from pytest_httpserver import HTTPServer
from rich.console import Console
from rich.table import Table
from werkzeug import Request, Response

from harness.contract import CHECKLIST

MAX_REQUESTS_PER_CALLER = 5_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CountingPrometheus:
    """Answers the probe's queries with a healthy group, counting them."""

    def __init__(self) -> None:
        self.count = 0
        self.times: list[float] = []
        self._lock = threading.Lock()
        self.server = HTTPServer(host="127.0.0.1", threaded=True)
        self.server.expect_request("/api/v1/query").respond_with_handler(self._answer)

    def _answer(self, request: Request) -> Response:
        with self._lock:
            self.count += 1
            self.times.append(time.monotonic())
        value = "1.2" if "skew" in request.args["query"] else "2"
        body = {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [
                    {"metric": {"consumergroup": CHECKLIST.group}, "value": [time.time(), value]}
                ],
            },
        }
        return Response(json.dumps(body), content_type="application/json")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def most_queries_in_one_ttl(times: list[float], ttl: float) -> int:
    """The most queries Prometheus saw in any window one TTL long."""
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= ttl:
            start += 1
        most = max(most, end - start + 1)
    return most


def wrk_load(url: str, callers: int, seconds: float) -> tuple[int, float, float]:
    """Requests, p50 and p99 (seconds) from wrk with `callers` connections."""
    result = subprocess.run(
        [
            "wrk",
            f"-t{min(callers, 2)}",
            f"-c{callers}",
            f"-d{seconds:g}s",
            "--latency",
            f"{url}/ready",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    )
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0}

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)$", result.stdout, re.M)
        assert match, result.stdout
        return float(match.group(1)) * units[match.group(2)]

    requests = re.search(r"(\d+) requests in", result.stdout)
    assert requests, result.stdout
    return int(requests.group(1)), latency("50"), latency("99")


def thread_load(url: str, callers: int, seconds: float) -> tuple[int, float, float]:
    latencies = run_callers(url, callers, seconds)
    return len(latencies), percentile(latencies, 0.50), percentile(latencies, 0.99)


def run_callers(url: str, callers: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def caller() -> None:
        mine = []
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(MAX_REQUESTS_PER_CALLER):
                if time.monotonic() >= deadline:
                    break
                started = time.perf_counter()
                client.get("/ready")
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="load time per caller count")
    parser.add_argument("--ttl", type=float, default=1.0, help="probe cache TTL in seconds")
    args = parser.parse_args()
    console = Console()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per fake-Prometheus query

    prometheus = CountingPrometheus()
    prometheus.server.start()
    port = free_port()
    env = os.environ | {
        "PROM_URL": prometheus.server.url_for("/").rstrip("/"),
        "PROBE_HOST": "127.0.0.1",
        "PROBE_PORT": str(port),
        "CACHE_TTL_SECONDS": str(args.ttl),
        "LOG_LEVEL": "WARNING",
    }
    probe = subprocess.Popen([sys.executable, "-m", "probe"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("probe did not start within 20 s") from None
                time.sleep(0.1)

        load, generator = (wrk_load, "wrk") if shutil.which("wrk") else (thread_load, "threads")
        table = Table(
            title=f"/ready under load from {generator} "
            f"(cache TTL {args.ttl:g}s, {args.seconds:g}s per row)"
        )
        for column in (
            "callers",
            "requests",
            "p50 ms",
            "p99 ms",
            "Prometheus queries",
            "most queries in one TTL",
        ):
            table.add_column(column, justify="right")
        for callers in (1, 10, 100):
            first = len(prometheus.times)
            requests, p50, p99 = load(url, callers, args.seconds)
            times = prometheus.times[first:]
            table.add_row(
                str(callers),
                str(requests),
                f"{p50 * 1000:.2f}",
                f"{p99 * 1000:.2f}",
                str(len(times)),
                str(most_queries_in_one_ttl(times, args.ttl)),
            )
        console.print(table)
        console.print(f"probe peak RSS (VmHWM): {peak_rss_mib(probe.pid):.1f} MiB (target <= 48)")
        console.print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load and probe share them"
        )
    finally:
        probe.terminate()
        probe.wait(10)
        prometheus.server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

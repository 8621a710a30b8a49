"""External mode, exercised against the project's own stack started separately.

`python -m harness.external [pytest arguments]` starts the stack in containers in this process,
then runs pytest in another process with `--stack=external`: that run knows only the endpoints
and the fault commands it is given (plain `docker stop`/`docker start` of the containers here,
standing in for what a user would give for a real deployment, e.g. `kubectl scale`), exactly as
it would against staging. The stack is removed at the end, whatever the outcome.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from fractions import Fraction

from harness import services as svc
from harness.images import ensure_images
from harness.settings import DEFAULT_CONTAINER_SCALE
from harness.stack import CONSUMER_COUNT, ContainerStack
from harness.testcontainers_setup import configure_testcontainers


def fault_commands(stack: ContainerStack) -> list[str]:
    """NAME:inject=... and NAME:restore=... entries, as a user would write them."""

    def name(service: str) -> str:
        return stack.docker_container(service).name

    consumers = [name(f"{svc.CONSUMERS}-{i}") for i in range(1, CONSUMER_COUNT + 1)]
    outages = {
        "one-consumer-down": consumers[:1],
        "consumers-down": consumers,
        "prometheus-down": [name(svc.PROMETHEUS)],
    }
    entries = []
    for fault, containers in outages.items():
        entries.append(f"{fault}:inject=docker stop {' '.join(containers)}")
        entries.append(f"{fault}:restore=docker start {' '.join(containers)}")
    delay = (
        "curl -fsS -X PUT -H 'Content-Type: application/json' -d '{\"processing_delay_ms\": %d}' %s"
    )
    for action, delay_ms in (("inject", 300), ("restore", 0)):
        calls = " && ".join(
            delay % (delay_ms, f"{url}/control") for url in stack.endpoints.consumer_urls.values()
        )
        entries.append(f"consumers-slow:{action}=sh -c {shlex.quote(calls)}")
    return entries


def main(pytest_args: list[str]) -> int:
    configure_testcontainers()
    scale = Fraction(os.environ.get("CRM_CERT_TIME_SCALE", str(DEFAULT_CONTAINER_SCALE)))
    stack = ContainerStack(ensure_images(os.environ.get("CRM_CERT_IMAGES", "upstream")), scale)
    try:
        stack.start()
        endpoints = stack.endpoints
        environment = os.environ | {
            "CRM_CERT_STACK": "external",
            "CRM_CERT_TIME_SCALE": str(scale),
            "CRM_CERT_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
            "CRM_CERT_PROMETHEUS_URL": endpoints.prometheus_url,
            "CRM_CERT_ALERTMANAGER_URL": endpoints.alertmanager_url,
            "CRM_CERT_PROBE_URL": endpoints.probe_url,
            "CRM_CERT_EXPORTER_URL": endpoints.exporter_url or "",
            "CRM_CERT_WEBHOOK_URL": endpoints.webhook_url or "",
            "CRM_CERT_ALLOW_DESTRUCTIVE": "true",
            "CRM_CERT_FAULT_COMMANDS": ";;".join(fault_commands(stack)),
        }
        # The other run must not wait for this process's machine lock: it starts no stack.
        return subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], env=environment, check=False
        ).returncode
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

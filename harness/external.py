"""External mode, exercised against the project's own stack started separately.

`python -m harness.external [pytest arguments]` starts the stack in containers in this process,
then runs pytest in another process with `--stack=external`: that run knows only the endpoints
and the fault commands it is given (plain `docker stop`/`docker start` of the containers here,
standing in for what a user would give for a real deployment, e.g. `kubectl scale`), exactly as
it would against staging. The stack is removed at the end, whatever the outcome.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

from harness.contract import CHECKLIST, TOPOLOGY_ENV
from harness.images import ensure_images
from harness.settings import (
    ENTRY_SEPARATOR,
    HarnessSettings,
    HarnessSettingsError,
    add_options,
    resolve,
)
from harness.stack import ContainerStack
from harness.testcontainers_setup import configure_testcontainers

PAUSE, RESUME = '{"paused": true}', '{"paused": false}'


def external_environment(stack: ContainerStack) -> dict[str, str]:
    """The running stack described as an external deployment: its endpoints, its time scale and
    fault commands as a user would write them (`docker stop`/`docker start` of its containers
    here, `kubectl scale ...` against a cluster)."""
    endpoints = stack.endpoints

    def names(*services: str) -> str:
        return " ".join(stack.docker_container(service).name for service in services)

    consumers = names(*stack.contract.consumer_services)
    controls = " ".join(f"{url}/control" for url in sorted(endpoints.consumer_urls.values()))

    def control(body: str) -> str:
        return (
            f"curl -fsS -X PUT -H 'Content-Type: application/json' -d {shlex.quote(body)} "
            f"{controls}"
        )

    def set_delay(milliseconds: int) -> str:
        return control(f'{{"processing_delay_ms": {milliseconds}}}')

    faults = {
        "one-consumer-down": names(stack.contract.consumer_services[0]),
        "consumers-down": consumers,
        # Every replica (the HA topology has two of each): the component as a whole is down.
        "prometheus-down": names(*stack.contract.replicas("PROMETHEUS")),
        "exporter-down": names(*stack.contract.replicas("KAFKA_EXPORTER")),
    }
    commands = [
        entry
        for fault, containers in faults.items()
        for entry in (
            f"{fault}:inject=docker stop {containers}",
            f"{fault}:restore=docker start {containers}",
        )
    ]
    commands += [
        f"consumers-slow:inject={set_delay(stack.hot_key_delay_ms(CHECKLIST.hot_key_events))}",
        f"consumers-slow:restore={set_delay(0)}",
        f"consumers-paused:inject={control(PAUSE)}",
        f"consumers-paused:restore={control(RESUME)}",
    ]
    return {
        "CRM_CERT_STACK": "external",
        "CRM_CERT_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "CRM_CERT_PROMETHEUS_URL": endpoints.prometheus_url,
        "CRM_CERT_ALERTMANAGER_URL": endpoints.alertmanager_url,
        "CRM_CERT_PROBE_URL": endpoints.probe_url,
        "CRM_CERT_EXPORTER_URL": endpoints.exporter_url or "",
        "CRM_CERT_WEBHOOK_URL": endpoints.webhook_url or "",
        "CRM_CERT_TIME_SCALE": str(stack.scale),
        "CRM_CERT_FAULT_COMMANDS": ENTRY_SEPARATOR.join(commands),
    }


def container_settings(pytest_args: list[str]) -> HarnessSettings:
    """The settings of the stack to start, from the same options, variables and resolver as
    every other run (`--time-scale`, `--images`), read from the pytest arguments."""
    parser = argparse.ArgumentParser(add_help=False)
    add_options(parser.add_argument)
    known, _ = parser.parse_known_args(pytest_args)
    environ = {k: v for k, v in os.environ.items() if k != "CRM_CERT_STACK"}
    try:
        return resolve(lambda dest: getattr(known, dest, None), environ)
    except HarnessSettingsError as error:
        raise SystemExit(f"harness.external: {error}") from None


def main(pytest_args: list[str]) -> int:
    configure_testcontainers()
    settings = container_settings(pytest_args)
    os.environ[TOPOLOGY_ENV] = settings.topology  # the stack's contract follows --topology
    stack = ContainerStack(ensure_images(settings.images), settings.time_scale)
    try:
        stack.start()
        environment = (
            os.environ | external_environment(stack) | {"CRM_CERT_ALLOW_DESTRUCTIVE": "true"}
        )
        # The other run must not wait for this process's machine lock: it starts no stack.
        return subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], env=environment, check=False
        ).returncode
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

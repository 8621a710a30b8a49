"""testcontainers settings for machines like these (docs/design.md, section 6), overridable by env.

- No Ryuk: its image cannot be pulled without a registry; the harness removes what it started
  itself, by the labels it puts on every container and network.
- docker_host connection mode with TC_HOST=127.0.0.1: inside a container (/.dockerenv exists)
  testcontainers would otherwise reach containers through a bridge gateway address, and the suites
  talk only to ports published on 127.0.0.1.
"""

from __future__ import annotations

import os

DEFAULTS = {
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
    "TC_HOST": "127.0.0.1",
}


def configure_testcontainers() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    # testcontainers reads the environment when first imported; set the live config as well in
    # case it was imported before this ran.
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    testcontainers_config.ryuk_disabled = os.environ["TESTCONTAINERS_RYUK_DISABLED"] == "true"
    testcontainers_config.tc_host_override = os.environ["TC_HOST"]
    testcontainers_config.connection_mode_override = ConnectionMode(
        os.environ["TESTCONTAINERS_CONNECTION_MODE"]
    )

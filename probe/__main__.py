"""`python -m probe`: validate the settings, then serve under waitress (production WSGI)."""

from __future__ import annotations

import logging
import sys

import waitress

from probe.app import create_app
from probe.logs import configure_logging
from probe.settings import ProbeSettings, SettingsError


def main() -> int:
    try:
        settings = ProbeSettings.from_env()
    except SettingsError as error:
        print(f"probe: invalid setting: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    logging.getLogger("probe").info(
        "probe starting",
        extra={"event": "start", "port": settings.probe_port, "queries": settings.queries},
    )
    waitress.serve(
        create_app(settings),
        host=settings.probe_host,
        port=settings.probe_port,
        threads=settings.probe_threads,
        ident="probe",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

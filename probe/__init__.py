"""Readiness probe for the crm-events-sse consumer group."""

from probe.app import create_app
from probe.settings import ProbeSettings, SettingsError

__all__ = ["ProbeSettings", "SettingsError", "create_app"]

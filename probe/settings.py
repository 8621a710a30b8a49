"""Probe settings: read only from the environment, validated once at start-up.

A plain dataclass rather than pydantic-settings: the probe must fit in 64 MiB beside its
container limits (peak RSS target 48 MiB), and pydantic alone costs about 11 MiB of it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from string import Template

# The default queries fail a check only when the breach held for the whole window
# (docs/design.md, section 4): a skew spike shorter than the window never fails the probe, and
# consumers coming back make it ready again at the next evaluation.
DEFAULT_SKEW_QUERY = 'min_over_time(kafka:group_skew_ratio{consumergroup="$group"}[$window])'
DEFAULT_CONSUMERS_QUERY = (
    'max_over_time(kafka:group_consumer_count{consumergroup="$group"}[$window])'
)
# Messages that waited through the whole window while the group committed no offset on the
# topic: 0 while the group consumes or nothing waits. Members that hold partitions with work
# waiting and never commit are stalled, which neither the skew nor the member count shows
# (docs/design.md, section 4). increase() needs two samples of the committed offsets, so a
# Prometheus with less history than that answers no series rather than "stalled".
DEFAULT_PROGRESS_QUERY = (
    'min_over_time(kafka:group_lag_sum{consumergroup="$group"}[$window])'
    " * on (consumergroup, topic) ("
    "sum by (consumergroup, topic) ("
    'increase(kafka_consumergroup_current_offset{consumergroup="$group"}[$window])'
    ") == bool 0)"
)
# Asked only when a check found no series or a stall: is kafka_exporter, which every series
# comes from, scraped and up? A stopped exporter also looks like offsets that never move.
# (prometheus.yml's job; CrmEventsKafkaExporterDown watches the same series.)
DEFAULT_EXPORTER_UP_QUERY = 'max(up{job="kafka_exporter"})'
# The queries the original checklist wrote. They do the opposite of what it claimed; the window
# drill runs them beside the defaults to show it.
SEED_SKEW_QUERY = 'max_over_time(kafka:group_skew_ratio{consumergroup="$group"}[$window])'
SEED_CONSUMERS_QUERY = 'min_over_time(kafka:group_consumer_count{consumergroup="$group"}[$window])'

# A consumer group name is pasted into PromQL label matchers: allow only the characters of Kafka
# group ids, so that no value can close the matcher and inject PromQL.
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,248}$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """Bad settings; the message names each variable and its value."""


@dataclass(frozen=True)
class ProbeSettings:
    """Every setting of the probe, each from the environment variable of its name in capitals."""

    # One base URL, or several separated by commas (the replicas of a Prometheus pair): the
    # attempts of each query go round them in order.
    prom_url: str = "http://prometheus:9090"
    prom_timeout_ms: int = 1500
    prom_retries: int = 2  # attempts in all, not extra attempts
    prom_backoff_ms: int = 100
    window_minutes: float = 5.0  # fractions allowed, for compressed drills
    skew_threshold: float = 4.0
    min_consumers: int = 2
    consumer_group: str = "crm-events-sse"
    skew_query: str = DEFAULT_SKEW_QUERY
    consumers_query: str = DEFAULT_CONSUMERS_QUERY
    progress_query: str = DEFAULT_PROGRESS_QUERY
    exporter_up_query: str = DEFAULT_EXPORTER_UP_QUERY
    cache_ttl_seconds: float = 15.0  # one scrape interval
    probe_host: str = "0.0.0.0"
    probe_port: int = 9011
    probe_threads: int = 8
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        problems = [
            f"{name.upper()}={getattr(self, name)}: {why}" for name, why in self._problems()
        ]
        if problems:
            raise SettingsError("; ".join(problems))

    def _problems(self) -> Iterator[tuple[str, str]]:
        if not all(re.match(r"^https?://[^\s/,]+", url) for url in self.prom_urls):
            yield "prom_url", "must be http:// or https:// URLs, separated by commas"
        elif len(self.prom_urls) > self.prom_retries:
            yield (
                "prom_url",
                f"has {len(self.prom_urls)} URLs but PROM_RETRIES={self.prom_retries} attempts: "
                "each URL needs one",
            )
        for name, low, high in (
            ("prom_timeout_ms", 1, 600_000),
            ("prom_retries", 1, 10),
            ("prom_backoff_ms", 0, 60_000),
            ("min_consumers", 1, 10_000),
            ("probe_port", 1, 65_535),
            ("probe_threads", 1, 64),
        ):
            if not low <= getattr(self, name) <= high:
                yield name, f"must be between {low} and {high}"
        for name in ("window_minutes", "skew_threshold"):
            if not getattr(self, name) > 0:
                yield name, "must be greater than 0"
        if self.window_minutes * 60 < 1:
            yield "window_minutes", "must be at least 1 second (1/60 minute)"
        if self.cache_ttl_seconds < 0:
            yield "cache_ttl_seconds", "must be 0 or more"
        if not GROUP_NAME.match(self.consumer_group):
            yield "consumer_group", "only letters, digits, '.', '_' and '-' (it goes into PromQL)"
        for name in ("skew_query", "consumers_query", "progress_query"):
            problem = _template_problem(getattr(self, name))
            if problem:
                yield name, problem
        if self.log_level.upper() not in LOG_LEVELS:
            yield "log_level", f"must be one of {', '.join(LOG_LEVELS)}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProbeSettings:
        """Settings from `environ` (default: the process environment); SettingsError if bad."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        problems = []
        for field in fields(cls):
            raw = environ.get(field.name.upper())
            if raw is None:
                continue
            try:
                values[field.name] = _PARSERS[str(field.type)](raw)
            except ValueError as error:
                problems.append(f"{field.name.upper()}={raw}: {error}")
        if problems:
            raise SettingsError("; ".join(problems))
        return cls(**values)  # type: ignore[arg-type]

    @property
    def window(self) -> str:
        """The window as a PromQL duration: whole minutes or seconds when exact, else ms."""
        milliseconds = round(self.window_minutes * 60_000)
        if milliseconds % 60_000 == 0:
            return f"{milliseconds // 60_000}m"
        if milliseconds % 1000 == 0:
            return f"{milliseconds // 1000}s"
        return f"{milliseconds}ms"

    @property
    def prom_urls(self) -> list[str]:
        return [url.strip() for url in self.prom_url.split(",")]

    @property
    def timeout_s(self) -> float:
        return self.prom_timeout_ms / 1000

    @property
    def backoff_s(self) -> float:
        return self.prom_backoff_ms / 1000

    @property
    def evaluation_budget_s(self) -> float:
        """The longest one evaluation may take: every attempt timing out, with backoff between."""
        return self.timeout_s * self.prom_retries + self.backoff_s * (self.prom_retries - 1)

    @property
    def queries(self) -> dict[str, str]:
        """The PromQL queries of the checks in force, by check name."""

        def render(template: str) -> str:
            return Template(template).substitute(group=self.consumer_group, window=self.window)

        return {
            "skew": render(self.skew_query),
            "consumer_count": render(self.consumers_query),
            "progress": render(self.progress_query),
        }


def _integer(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("must be a whole number") from None


def _number(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _text(raw: str) -> str:
    return raw.strip()


_PARSERS = {"int": _integer, "float": _number, "str": _text}


def _template_problem(template: str) -> str | None:
    try:
        Template(template).substitute(group="g", window="1m")
    except (KeyError, ValueError) as error:
        return f"only $group and $window may be substituted (found {error})"
    if "$group" not in template and "${group}" not in template:
        return "must contain $group"
    return None

"""Settings come only from the environment; bad ones stop the start naming variable and value."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

import pytest

from harness.contract import CHECKLIST, load
from probe.settings import DEFAULT_EXPORTER_UP_QUERY, ProbeSettings, SettingsError

pytestmark = [pytest.mark.claim("safety.settings")]


def test_defaults_are_the_checklist():
    """What the probe runs with where its environment leaves a setting out (a bare `python -m
    probe`, a partial Kubernetes env): the checklist's values."""
    settings = ProbeSettings.from_env({})
    assert settings.prom_timeout_ms == CHECKLIST.prom_timeout_ms
    assert settings.prom_retries == CHECKLIST.prom_retries
    assert settings.prom_backoff_ms == CHECKLIST.prom_backoff_ms
    assert settings.window == CHECKLIST.window
    assert settings.window_minutes * 60 == CHECKLIST.window_s
    assert settings.skew_threshold == CHECKLIST.skew_threshold
    assert settings.min_consumers == CHECKLIST.min_consumers
    assert settings.consumer_group == CHECKLIST.group
    assert settings.probe_port == CHECKLIST.probe_port
    assert settings.evaluation_budget_s == pytest.approx(
        CHECKLIST.prom_timeout_ms / 1000 * CHECKLIST.prom_retries
        + CHECKLIST.prom_backoff_ms / 1000 * (CHECKLIST.prom_retries - 1)
    )


def test_environment_sets_every_field():
    # Values deliberately unlike the checklist's: each must come from the environment.
    group = f"{CHECKLIST.group}.v2"
    settings = ProbeSettings.from_env(
        {
            "PROM_URL": "http://prom.internal:9090/",
            "PROM_TIMEOUT_MS": "800",
            "PROM_RETRIES": "3",
            "WINDOW_MINUTES": "0.3333333333",
            "SKEW_THRESHOLD": "2.5",
            "MIN_CONSUMERS": "3",
            "CONSUMER_GROUP": group,
            "PROBE_PORT": "19011",
            "CACHE_TTL_SECONDS": "1",
        }
    )
    assert settings.prom_timeout_ms == 800
    assert settings.prom_retries == 3
    assert settings.window == "20s"
    assert settings.skew_threshold == 2.5
    assert settings.min_consumers == 3
    assert settings.probe_port == 19011
    assert settings.cache_ttl_seconds == 1
    assert settings.queries["consumer_count"] == (
        f'max_over_time(kafka:group_consumer_count{{consumergroup="{group}"}}[20s])'
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PROM_TIMEOUT_MS", "abc"),
        ("PROM_TIMEOUT_MS", "0"),
        ("PROM_RETRIES", "0"),
        ("WINDOW_MINUTES", "-1"),
        ("WINDOW_MINUTES", "nan"),
        ("WINDOW_MINUTES", "0.001"),
        ("SKEW_THRESHOLD", "inf"),
        ("MIN_CONSUMERS", "two"),
        ("PROBE_PORT", "70000"),
        ("PROM_URL", "prometheus:9090"),
        ("PROM_URL", "http://prometheus-0:9090,prometheus-1:9090"),
        ("PROM_URL", "http://a:9090,http://b:9090,http://c:9090"),  # 3 URLs, 2 attempts
        ("CONSUMER_GROUP", 'crm"} or vector(1) #'),
        ("CONSUMER_GROUP", ""),
        ("SKEW_QUERY", 'max(kafka:group_skew_ratio{consumergroup="$group"}[$range])'),
        ("CONSUMERS_QUERY", "kafka:group_consumer_count"),
        ("LOG_LEVEL", "chatty"),
    ],
)
def test_bad_setting_is_rejected_naming_variable_and_value(variable, value):
    with pytest.raises(SettingsError) as raised:
        ProbeSettings.from_env({variable: value})
    assert f"{variable}={value}" in str(raised.value)


def test_python_m_probe_refuses_to_start_with_a_bad_setting():
    environment = os.environ | {"PROM_TIMEOUT_MS": "abc", "PROBE_PORT": "19999"}
    result = subprocess.run(
        [sys.executable, "-m", "probe"], env=environment, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "PROM_TIMEOUT_MS=abc" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.claim("safety.settings")
def test_every_field_has_an_environment_variable_that_sets_it():
    # A value unlike each default, so a field the environment does not reach keeps its default
    # and shows up here.
    wanted = {
        "prom_url": "http://prom.internal:9091",
        "prom_timeout_ms": 900,
        "prom_retries": 4,
        "prom_backoff_ms": 250,
        "window_minutes": 2.0,
        "skew_threshold": 3.5,
        "min_consumers": 5,
        "consumer_group": "another.group",
        "skew_query": 'max(kafka:group_skew_ratio{consumergroup="$group"})',
        "consumers_query": 'min(kafka:group_consumer_count{consumergroup="$group"})',
        "progress_query": 'max(kafka:group_lag_sum{consumergroup="$group"})',
        "exporter_up_query": 'min(up{job="kafka-exporter"})',
        "cache_ttl_seconds": 2.5,
        "probe_host": "127.0.0.1",
        "probe_port": 19012,
        "probe_threads": 3,
        "log_level": "DEBUG",
    }
    assert set(wanted) == {f.name for f in dataclasses.fields(ProbeSettings)}
    defaults = ProbeSettings()
    assert [name for name, value in wanted.items() if getattr(defaults, name) == value] == []
    settings = ProbeSettings.from_env({name.upper(): str(value) for name, value in wanted.items()})
    assert dataclasses.asdict(settings) == wanted


@pytest.mark.claim("probe.ready")
def test_the_exporter_question_asks_about_the_job_prometheus_scrapes():
    """The probe's question after a check found no series, the scrape job of prometheus.yml and
    the alert that pages for the exporter all name the same job."""
    matcher = re.fullmatch(r'max\(up\{job="([^"]+)"\}\)', DEFAULT_EXPORTER_UP_QUERY)
    assert matcher, f"not a max(up{{job=...}}) question: {DEFAULT_EXPORTER_UP_QUERY}"
    job = matcher.group(1)
    assert job in {config["job_name"] for config in load().prometheus["scrape_configs"]}
    assert f'up{{job="{job}"}}' in load().alert("CrmEventsKafkaExporterDown").expr

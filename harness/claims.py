"""The certification items: the original checklist's claims, each to be proved by tests.

Tests point at items with `@pytest.mark.claim("item.id")`; the report gives each item PASS when
every test marked with it passed, FAIL when one failed, NOT RUN when none ran. The checklist is
the list of what must be proved; which test proves it lives only in the test's marker.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import engines
from harness.contract import CHECKLIST as C

_MB = C.probe_memory_bytes // 2**20
_LABELS = ", ".join(f"{k}={v}" for k, v in C.clean_labels)


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    text: str
    required: bool = True


SECTIONS = (
    "Health probe endpoints",
    "Windowed queries (anti-flapping)",
    "Safety configuration",
    "Docker integration",
    "Prometheus rules",
    "Alertmanager configuration",
    "Grafana dashboard",
    "Smoke test",
    "Hot-key skew drill",
    "Resilience drills",
    "Security and limits",
    "Day-two operations",
    "Deployable artifacts",
    "Certification harness",
    "Production (HA) topology",
)

CLAIMS = (
    Claim(
        "stack.up",
        "Docker integration",
        f"The whole stack starts; kafka_exporter reports the group with every deployed consumer "
        f"(at least {C.min_consumers}); all {C.recording_rules} recording rules have series; "
        "/ready is 200",
    ),
    Claim("probe.health", "Health probe endpoints", "`GET /health` always returns 200 (liveness)"),
    Claim(
        "probe.status",
        "Health probe endpoints",
        "`GET /status` returns JSON with window_minutes, skew_threshold, min_consumers, matching "
        "the settings in force",
    ),
    Claim(
        "probe.metrics",
        "Health probe endpoints",
        "`GET /metrics` exposes health_probe_checks_total, health_probe_status, "
        "health_probe_duration_seconds (six probe metrics) and Prometheus scrapes them",
    ),
    Claim(
        "probe.ready",
        "Health probe endpoints",
        f"`GET /ready` returns 200 when skew <= {C.skew_threshold:g}, consumers >= "
        f"{C.min_consumers} and the group commits while messages wait, 500 naming each failed "
        "check otherwise",
    ),
    Claim(
        "window.spike",
        "Windowed queries (anti-flapping)",
        "A skew spike shorter than the window does not flip the probe",
    ),
    Claim(
        "window.recovery",
        "Windowed queries (anti-flapping)",
        "After the consumers are back the probe is ready again promptly, not a window later",
    ),
    Claim(
        "window.seed_queries",
        "Windowed queries (anti-flapping)",
        "The original checklist's literal queries (max_over_time skew, min_over_time "
        "consumers), run beside the defaults on the same faults",
        required=False,
    ),
    Claim(
        "safety.settings",
        "Safety configuration",
        f"PROM_TIMEOUT_MS={C.prom_timeout_ms}, PROM_RETRIES={C.prom_retries}, WINDOW_MINUTES="
        f"{C.window_s / 60:g} (scaled) are deployed and in force",
    ),
    Claim(
        "safety.prometheus_outage",
        "Safety configuration",
        "Prometheus down: /ready is 500 prometheus_unavailable within timeout x attempts + "
        "backoff, retries are counted, /health stays 200, ready again within one evaluation "
        "after Prometheus is back",
    ),
    Claim(
        "safety.prometheus_slow",
        "Safety configuration",
        "Prometheus slower than PROM_TIMEOUT_MS: timeouts counted, /ready bounded by timeout x "
        "attempts + backoff",
    ),
    Claim(
        "docker.probe_internal",
        "Docker integration",
        f"The probe has no host port mapping (internal network only), restart {C.probe_restart}, "
        "in the compose file and in the running stack",
    ),
    Claim(
        "docker.consumer_healthcheck",
        "Docker integration",
        f"The consumers' healthcheck calls {C.consumer_healthcheck_url}",
    ),
    Claim(
        "rules.recording",
        "Prometheus rules",
        f"{C.recording_rules} recording rules, values certified by promtool at production "
        "durations (safe math: finite skew at zero lag)",
    ),
    Claim(
        "rules.alerts",
        "Prometheus rules",
        f"{C.alerts} alerts with team/service/product/severity labels and summary/description/"
        "runbook annotations, each firing at exactly its for: (promtool)",
    ),
    Claim(
        "rules.time_scale",
        "Prometheus rules",
        "The live stack's rules differ from the production files only in durations",
    ),
    Claim(
        "am.routing",
        "Alertmanager configuration",
        "Routes by team/service/product to the on-call receiver (amtool); critical alerts "
        f"repeat every {C.critical_repeat_interval}, warnings every {C.warning_repeat_interval}",
    ),
    Claim(
        "am.delivery",
        "Alertmanager configuration",
        f"{C.inhibiting_alert} fires after its for: ({dict(C.alert_for)[C.inhibiting_alert]}) and "
        f"not later, and is delivered with clean labels {_LABELS}",
    ),
    Claim(
        "am.inhibition",
        "Alertmanager configuration",
        f"{C.inhibiting_alert} inhibits {C.inhibited_alert} (which fires after its for: "
        f"({dict(C.alert_for)[C.inhibited_alert]}) and not later, is inhibited, never delivered)",
    ),
    Claim(
        "am.silence",
        "Alertmanager configuration",
        "A silence created through the API suppresses a firing alert; expiring it lets the "
        "alert through again",
    ),
    Claim(
        "am.resolved",
        "Alertmanager configuration",
        "Recovery resolves the alerts and resolved notifications are delivered",
    ),
    Claim(
        "grafana.dashboard",
        "Grafana dashboard",
        f"The dashboard (uid {C.dashboard_uid}) has {C.dashboard_panels} panels; panel 18 uses "
        "kafka:group_consumer_count, panel 19 kafka:group_skew_ratio; provisioning files valid",
    ),
    Claim(
        "grafana.live_queries",
        "Grafana dashboard",
        "Every panel query runs against the live Prometheus; panels 13, 17, 18, 19 return data "
        "for the group",
    ),
    Claim(
        "grafana.provisioned",
        "Grafana dashboard",
        "Grafana auto-provisions the dashboard at start-up (needs a Grafana image)",
        required=False,
    ),
    Claim("smoke.baseline", "Smoke test", "Baseline: /ready is 200"),
    Claim(
        "smoke.consumer_down",
        "Smoke test",
        "One consumer stopped: /ready stays 200 while the loss is younger than the window, then "
        "500 with `consumer_count check failed`",
    ),
    Claim(
        "smoke.recovery",
        "Smoke test",
        "Consumer started again: /ready is 200 within two scrape intervals of the group being "
        "whole, plus the exporter's refresh, one rule evaluation and the probe's cache TTL",
    ),
    Claim(
        "skew.hot_partition",
        "Hot-key skew drill",
        f"{C.hot_key_events} events with key {C.hot_key}, all acknowledged: per-partition lag "
        "shows one hot partition",
    ),
    Claim(
        "skew.no_flap",
        "Hot-key skew drill",
        "/ready stays 200 while the skew is younger than the window",
    ),
    Claim(
        "skew.flip",
        "Hot-key skew drill",
        "/ready turns 500 (`skew check failed`) once the skew has held for the whole window",
    ),
    Claim(
        "skew.alert",
        "Hot-key skew drill",
        f"{C.skew_alert} fires after its (scaled) {C.skew_alert_for} for: and not before",
    ),
    Claim(
        "skew.recovery",
        "Hot-key skew drill",
        "After the backlog drains /ready is 200 again and the alert resolves, promptly and not "
        "before the drain",
    ),
    Claim(
        "drill.broker_loss",
        "Resilience drills",
        "Kafka stopped while producing: after its restart every acknowledged event is consumed "
        "at least once",
    ),
    Claim(
        "drill.rebalance",
        "Resilience drills",
        "A third consumer joins and leaves under steady production: nothing lost, the probe "
        "does not flap, the group-size query shows the change",
    ),
    Claim(
        "security.limits",
        "Security and limits",
        f"The probe runs with {C.probe_cpus:.2f} CPU and {_MB}M, and stays healthy, never "
        "OOM-killed, under a bounded /ready load",
    ),
    Claim("security.non_root", "Security and limits", "The app containers run as non-root"),
    Claim(
        "day_two.fresh",
        "Day-two operations",
        "A fresh deployment with no event produced yet is ready within a few evaluations of its "
        "consumers joining (they commit their starting positions), and no alert fires",
    ),
    Claim(
        "day_two.stalled",
        "Day-two operations",
        "Consumers that stay in the group but commit nothing while events wait: the probe "
        "answers 500 `stalled` once the events have waited a whole window, "
        "CrmEventsConsumerStalled fires after its for: and CrmEventsServiceDown never does; "
        "every acknowledged event is consumed after the resume",
    ),
    Claim(
        "day_two.empty_tsdb",
        "Day-two operations",
        "Prometheus restarted with an empty TSDB: /ready is trustworthy again within a few "
        "scrapes, and a breach that began before the restart is never answered 200 on the "
        "shorter history",
    ),
    Claim(
        "day_two.rolling_restart",
        "Day-two operations",
        "A rolling restart of the consumers, one at a time under steady traffic: nothing "
        "acknowledged is lost, the probe never flaps, the group ends whole",
    ),
    Claim(
        "day_two.exporter_loss",
        "Day-two operations",
        "kafka_exporter stopped: the probe keeps judging the samples in its window, then answers "
        "500 naming the exporter (`exporter_down`); CrmEventsKafkaExporterDown fires after its "
        "for: and CrmEventsServiceDown never does; all recover when the exporter is back",
    ),
    Claim(
        "day_two.consumer_rejoin",
        "Day-two operations",
        "A consumer replica left out of its group while its process runs on (a stuck rejoin) "
        "builds a new Kafka client once it has been out for its rejoin deadline, not before, "
        "and is back in the group within a session timeout after that",
    ),
    Claim(
        "day_two.k8s_readiness",
        "Day-two operations",
        "On Kubernetes the consumers' readiness and liveness check the replica itself, so a "
        "rollout never waits on the group's health; the group's verdict gates rollouts in a "
        "step of its own",
    ),
    Claim(
        "deploy.compose",
        "Deployable artifacts",
        "stack/compose.yaml is valid (Compose Specification), starts with no environment, and "
        "names the images, host names, mounts and topic the stack needs",
    ),
    Claim(
        "deploy.k8s",
        "Deployable artifacts",
        "The Kubernetes manifests are the certified sources: generated from the same rule, route, "
        "dashboard and compose definitions, valid against the Kubernetes schemas",
    ),
    Claim(
        "deploy.engines",
        "Deployable artifacts",
        f"The stack runs Prometheus {engines.PROMETHEUS.version} and Alertmanager "
        f"{engines.ALERTMANAGER.version}, the same builds whose promtool and amtool prove the "
        "rules and routes; the rules and routes also pass on Debian's Prometheus "
        f"{engines.DEBIAN_RELEASES['prometheus']} and Alertmanager "
        f"{engines.DEBIAN_RELEASES['alertmanager']}",
    ),
    Claim(
        "deploy.images",
        "Deployable artifacts",
        "The offline image set presents the upstream images' interfaces (flags, series, users)",
    ),
    Claim(
        "docs.commands",
        "Deployable artifacts",
        "Every command of the operator documents (probe integration, runbook, lag and capacity) "
        "runs against the stack and gives what the document says",
    ),
    Claim(
        "harness.self_test",
        "Certification harness",
        "The harness's own parts (time scale renderer, contract, settings, report) behave as "
        "documented",
    ),
    Claim(
        "ha.topology",
        "Production (HA) topology",
        "stack/compose-ha.yaml is compose.yaml with three Kafka nodes (replication factor 3, "
        "min.insync.replicas=2), two exporters, two Prometheus replicas sending to both "
        "Alertmanagers without their replica label, and a two-peer Alertmanager cluster; "
        "`docker-compose config` merges the two files as the harness does",
    ),
    Claim(
        "ha.leader_loss",
        "Production (HA) topology",
        "The broker leading a partition (not the group's coordinator) killed under acks=all "
        "production: every acknowledged "
        "event is consumed, under-replicated partitions show in Prometheus, leadership moves, "
        "/ready never flaps, every partition is in sync again after the broker returns",
    ),
    Claim(
        "ha.alertmanager_peer",
        "Production (HA) topology",
        f"One Alertmanager peer down while {C.inhibiting_alert} fires: the webhook receives "
        "exactly one notification; a silence made on one peer suppresses on the other",
    ),
    Claim(
        "ha.prometheus_replica",
        "Production (HA) topology",
        f"One Prometheus replica down: /ready keeps answering from the other, and "
        f"{C.inhibiting_alert} is delivered exactly once",
    ),
    Claim(
        "ha.exporter_replica",
        "Production (HA) topology",
        "Two exporters: kafka:group_consumer_count neither doubles while both run nor gaps "
        "while one is down, and the lost replica is named by CrmEventsKafkaExporterDown",
    ),
)

BY_ID = {claim.id: claim for claim in CLAIMS}

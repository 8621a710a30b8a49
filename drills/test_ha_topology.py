"""Drills only the production (HA) topology can run (`--topology=ha`, stack/compose-ha.yaml).

Each loses one replica of a redundant component and proves the redundancy does its job: the
partition leader's broker under steady production, one Alertmanager peer, one Prometheus
replica, one kafka_exporter replica. Each restores the replica it stopped, whatever happens.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient

from harness.clients import AlertmanagerApi, PrometheusApi, scrape_metrics
from harness.contract import CHECKLIST, environment, seconds
from harness.load import SteadyProducer, wait_until_consumed
from harness.steady import wait_for_steady_state
from harness.timeline import Episode
from harness.waits import hold_for, wait_until

SERVICE_DOWN = CHECKLIST.inhibiting_alert
EXPORTER_DOWN = "CrmEventsKafkaExporterDown"
# Alertmanager's --cluster.peer-timeout when the command does not set it: a peer waits this long
# per position in the cluster before it sends a notification the peers before it may have sent.
DEFAULT_PEER_TIMEOUT_S = 15.0
RATE = 20  # events a second under the broker loss, bounded like every load here
TRAFFIC_S = 3  # steady traffic before the kill, a drill parameter
# Kafka's own clocks, not the contract's: a killed broker is fenced after
# broker.session.timeout.ms (9 s by default) and its partitions' leaders are elected then.
BROKER_FENCED_S = 9.0

pytestmark = [pytest.mark.ha_topology, pytest.mark.containers_only, pytest.mark.destructive]


AGGREGATION_GROUPS = "alertmanager_dispatcher_aggregation_groups"


def replicas_of(stack, image: str) -> tuple[str, ...]:
    found = stack.contract.replicas(image)
    assert len(found) >= 2, f"the HA topology has one {image} replica only: {found}"
    return found


def peer_timeout_s(stack) -> float:
    command = [str(part) for part in stack.contract.service("alertmanager").get("command", [])]
    for part in command:
        if part.startswith("--cluster.peer-timeout="):
            return seconds(part.split("=", 1)[1])  # Alertmanager's own clock: not time-scaled
    return DEFAULT_PEER_TIMEOUT_S


def delivered_once_window_s(stack) -> float:
    """How long to keep counting after the first notification: past the last peer's turn
    (position x peer timeout) and a group_wait, but short of the route's repeat_interval."""
    route = stack.contract.route_for(stack.contract.alert(SERVICE_DOWN).labels)
    peers = len(stack.contract.replicas("ALERTMANAGER"))
    window = (peers - 1) * peer_timeout_s(stack) + stack.seconds(route.group_wait_s) + 5
    assert window < stack.seconds(route.repeat_interval_s), "a repeat would be counted"
    return window


def service_down_deliveries(webhook) -> int:
    return len(webhook.delivered(SERVICE_DOWN))


def notifications_described(webhook) -> str:
    """Each notification the webhook received: when, from which peer (its external URL), and
    each alert's status, fingerprint and start; what a miscount is read from."""
    return "notifications: " + "; ".join(
        f"{n['received_at']} from {n['payload'].get('externalURL')} "
        f"group {n['payload'].get('groupKey')}: "
        + ", ".join(
            f"{a['labels'].get('alertname')} {a['status']} {a.get('fingerprint')} "
            f"since {a.get('startsAt')}"
            for a in n["payload"]["alerts"]
        )
        for n in webhook.notifications()
    )


def consumers_down_until_delivered(stack, episode, webhook) -> float:
    """With the consumers stopped (the caller's fault), wait until ServiceDown is delivered;
    return the episode time of the first delivery."""
    timeout = stack.alert_for_s(SERVICE_DOWN) + 30 * stack.scrape_s + 60
    episode.watch_until(
        f"{SERVICE_DOWN} delivered to the webhook",
        lambda m: service_down_deliveries(webhook) >= 1,
        timeout=timeout,
    )
    return episode.mark(f"{SERVICE_DOWN} delivered")


def no_earlier_alert_in_flight(stack) -> None:
    """Wait until no Alertmanager peer holds an aggregation group.

    A Prometheus resends a resolved alert every minute for 15 minutes (both unscaled): an
    earlier episode's ServiceDown comes back to the peers as resolved, and a peer that notifies
    that resolution while the other notifies this episode's firing overwrites the group's one
    notification-log entry, so the firing is notified again a group_interval later (seen in an
    HA run: the alerting episode's instance resolved by one peer 7 s after the other notified
    this one). At 1/15 that history is fifteen times longer, against the alert's own timings,
    than in production. With the resending replicas restarted or stopped, the groups empty
    within a group_wait and a peer's turn."""
    peers = replicas_of(stack, "ALERTMANAGER")
    route = stack.contract.route_for(stack.contract.alert(SERVICE_DOWN).labels)
    timeout = stack.seconds(route.group_wait_s + route.group_interval_s) + 2 * peer_timeout_s(stack)

    def groups() -> dict[str, float]:
        return {peer: scrape_metrics(stack.url(peer))[AGGREGATION_GROUPS] for peer in peers}

    wait_until(
        "no Alertmanager peer holding an aggregation group (no earlier notification in flight)",
        lambda: not any(groups().values()),
        timeout=timeout,
        describe=lambda: f"groups per peer: {groups()}",
    )


@pytest.mark.claim("ha.prometheus_replica")
def test_with_one_prometheus_replica_down_the_alert_is_delivered_once(
    containers, probe, prometheus, webhook, evidence
):
    stack = containers
    first, second = replicas_of(stack, "PROMETHEUS")[:2]
    # The survivor forgets the resolved alerts of earlier episodes (see
    # no_earlier_alert_in_flight); the first replica's go with it when the fault stops it.
    with stack.fault("replica-down", service=second):
        pass
    wait_for_steady_state(stack, probe, prometheus)
    webhook.clear()
    survivor = PrometheusApi(stack.url(second))
    count_for = delivered_once_window_s(stack)
    episode = Episode(
        f"HA: {first} down, consumers stopped",
        stack,
        probe,
        extra=lambda: {
            "deliveries": service_down_deliveries(webhook),
            f"{SERVICE_DOWN} on {second}": survivor.alert_state(SERVICE_DOWN),
        },
        floor_s=stack.alert_for_s(SERVICE_DOWN) + count_for,
    )
    with stack.fault("replica-down", service=first):
        stopped = episode.mark(f"{first} stopped")
        # The probe asks the pair in order: with the first gone it answers from the second.
        episode.watch_for(2 * stack.probe_ttl_s)
        with episode.watching():
            no_earlier_alert_in_flight(stack)
        with stack.fault("consumers-down"):
            episode.mark("consumers stopped")
            delivered = consumers_down_until_delivered(stack, episode, webhook)
            counts = hold_for(
                f"exactly one {SERVICE_DOWN} notification",
                lambda: service_down_deliveries(webhook) == 1,
                duration=count_for,
                describe=lambda: notifications_described(webhook),
            )
            counted = episode.mark("counting done")
            notified = service_down_deliveries(webhook)
        episode.mark("consumers starting")
    episode.mark(f"{first} started")
    wait_for_steady_state(stack, probe, prometheus)
    evidence.record(f"{SERVICE_DOWN} notifications while {first} was down", notified)
    evidence.record("counted for", round(counted - delivered, 1), "s", "past every peer's turn")
    evidence.record("observations while counting", len(counts))
    answered = [m for m in episode.between(stopped, delivered) if m.known]
    evidence.record("/ready answers while the first replica was down", len(answered))
    # The probe never lost Prometheus: every answer before the consumers stopped was a 200.
    before_consumers = episode.between(stopped, episode.marks["consumers stopped"])
    assert before_consumers and all(m.ready for m in before_consumers), before_consumers[:3]


@pytest.mark.claim("ha.alertmanager_peer")
def test_with_one_alertmanager_peer_down_the_alert_is_delivered_once_and_silences_gossip(
    containers, probe, prometheus, webhook, evidence
):
    stack = containers
    first, second = replicas_of(stack, "ALERTMANAGER")[:2]
    wait_for_steady_state(stack, probe, prometheus)
    webhook.clear()
    peer_one, peer_two = AlertmanagerApi(stack.url(first)), AlertmanagerApi(stack.url(second))
    count_for = delivered_once_window_s(stack)
    episode = Episode(
        f"HA: Alertmanager {first} down while {SERVICE_DOWN} fires",
        stack,
        probe,
        extra=lambda: {"deliveries": service_down_deliveries(webhook)},
        floor_s=stack.alert_for_s(SERVICE_DOWN) + count_for,
    )
    with stack.fault("consumers-down"):
        episode.mark("consumers stopped")
        with stack.fault("replica-down", service=first):
            episode.mark(f"{first} stopped")
            delivered = consumers_down_until_delivered(stack, episode, webhook)
            hold_for(
                f"exactly one {SERVICE_DOWN} notification from the surviving peer",
                lambda: service_down_deliveries(webhook) == 1,
                duration=count_for,
                describe=lambda: notifications_described(webhook),
            )
            episode.mark("counting done")
            notified = service_down_deliveries(webhook)
        episode.mark(f"{first} started")
        wait_until(
            f"{first} to see both peers again",
            lambda: len(peer_one.cluster_peers()) == 2,
            timeout=60,
        )
        silence = peer_two.create_silence(
            {"alertname": SERVICE_DOWN}, minutes=60, comment="HA drill: silence on one peer"
        )
        try:
            silenced = wait_until(
                f"{first} to hold {SERVICE_DOWN} as silenced by the silence made on {second}",
                lambda: any(
                    silence in a["status"]["silencedBy"] for a in peer_one.alerts(SERVICE_DOWN)
                ),
                # Prometheus re-sends a firing alert every --rules.alert.resend-delay (1 min, its
                # own clock): the restarted peer may hear of the alert only then.
                timeout=90,
            )
            episode.mark(f"silence from {second} in force on {first}")
        finally:
            peer_two.expire_silence(silence)
        episode.mark("consumers starting")
    wait_for_steady_state(stack, probe, prometheus)
    total = service_down_deliveries(webhook)
    evidence.record(f"{SERVICE_DOWN} notifications with {first} down", notified)
    evidence.record(f"{SERVICE_DOWN} notifications in the whole episode", total)
    evidence.record(f"silence made on {second} seen by {first}", bool(silenced))
    assert total == 1, f"{total} {SERVICE_DOWN} notifications: the silence or the log leaked"
    assert delivered > 0


@pytest.mark.claim("ha.exporter_replica")
def test_one_exporter_replica_down_neither_doubles_nor_gaps_the_group_count(
    containers, probe, prometheus, evidence
):
    stack = containers
    second = replicas_of(stack, "KAFKA_EXPORTER")[1]
    wait_for_steady_state(stack, probe, prometheus)
    group, expected = stack.contract.group, stack.contract.consumer_count
    members = f'kafka_consumergroup_members{{consumergroup="{group}"}}'
    exporter_for = stack.alert_for_s(EXPORTER_DOWN)

    def extra() -> dict[str, object]:
        return {
            "raw member series": len(prometheus.query(members)),
            "kafka:group_consumer_count": prometheus.value(
                f'kafka:group_consumer_count{{consumergroup="{group}"}}'
            ),
            EXPORTER_DOWN: prometheus.alert_state(EXPORTER_DOWN),
        }

    def count(moment) -> object:
        return moment.extra.get("kafka:group_consumer_count")

    episode = Episode(f"HA: {second} down", stack, probe, extra=extra, floor_s=exporter_for)
    episode.watch_for(4 * stack.scrape_s)
    both = episode.mark(f"{second} stopping")
    with stack.fault("replica-down", service=second):
        stopped = episode.mark(f"{second} stopped")
        episode.watch_until(
            f"{EXPORTER_DOWN} firing for {second}",
            lambda m: m.extra.get(EXPORTER_DOWN) == "firing",
            timeout=exporter_for + 10 * stack.scrape_s + 30,
        )
        restarting = episode.mark(f"{second} starting")
    started = episode.mark(f"{second} started")
    episode.watch_until(
        "both exporters' series again", lambda m: m.extra.get("raw member series") == 2, timeout=60
    )
    episode.watch_until(
        f"{EXPORTER_DOWN} resolved",
        lambda m: m.extra.get(EXPORTER_DOWN) == "inactive",
        timeout=60,
    )
    with_both = episode.between(0, both)
    with_one = episode.between(stopped, restarting)
    series = sorted({str(m.extra.get("raw member series")) for m in with_both})
    evidence.record("raw member series with both replicas", series)
    evidence.record("kafka:group_consumer_count with both", sorted({count(m) for m in with_both}))
    evidence.record("kafka:group_consumer_count with one", sorted({count(m) for m in with_one}))
    evidence.record("watched with one replica", round(restarting - stopped, 1), "s")
    evidence.record("back to two series after the restart", round(episode.now() - started, 1), "s")
    # Both exporters were scraped (else "no doubling" proves nothing), and the rule's max by
    # kept the count at the group's size: never doubled, never missing while one was down.
    assert {m.extra.get("raw member series") for m in with_both} == {2}, with_both[:3]
    assert {count(m) for m in with_both} == {expected}, with_both[:3]
    assert {count(m) for m in with_one} == {expected}, with_one[:3]
    assert len(with_one) >= episode.min_observations(restarting - stopped)
    episode.assert_ready_throughout(0, restarting)


def broker_services(stack) -> dict[int, str]:
    """Kafka node id -> compose service."""
    return {
        int(environment(stack.contract.service(name))["KAFKA_NODE_ID"]): name
        for name in replicas_of(stack, "KAFKA")
    }


@pytest.mark.claim("ha.leader_loss")
def test_the_partition_leaders_broker_killed_under_production_loses_nothing(
    containers, probe, prometheus, evidence
):
    stack = containers
    wait_for_steady_state(stack, probe, prometheus)
    topic = stack.contract.topic
    admin = AdminClient({"bootstrap.servers": stack.endpoints.kafka_bootstrap})
    nodes = broker_services(stack)

    def leaders() -> dict[int, int]:
        partitions = admin.list_topics(topic, timeout=5).topics[topic].partitions
        return {number: p.leader for number, p in partitions.items()}

    # A partition whose leader is not the group's coordinator: losing the coordinator stalls
    # every commit for Kafka's own failover (broker fencing, then loading the group's offsets:
    # 10-25 s measured here), which Kafka does not compress; at 1/15 that is a whole 20 s window,
    # and the probe's progress check then rightly fails. That loss is a drill of its own.
    [group_future] = admin.describe_consumer_groups([stack.contract.group]).values()
    coordinator = group_future.result(timeout=10).coordinator.id
    partition = min(p for p, node in leaders().items() if node != coordinator)

    def leader() -> int:
        return leaders()[partition]

    under_replicated = (
        f'count(max by (partition) (kafka_topic_partition_replicas{{topic="{topic}"}}'
        f' - kafka_topic_partition_in_sync_replica{{topic="{topic}"}}) > 0) or vector(0)'
    )

    def extra() -> dict[str, object]:
        return {
            "under-replicated partitions": prometheus.value(under_replicated),
            "leader": leader(),
        }

    def urp(moment) -> float:
        return float(moment.extra.get("under-replicated partitions") or 0)

    killed_id = leader()
    killed = nodes[killed_id]
    prefix = f"leaderloss-{uuid.uuid4().hex[:6]}"
    episode = Episode(
        f"HA: partition {partition}'s leader ({killed}) killed under production",
        stack,
        probe,
        extra=extra,
        floor_s=TRAFFIC_S + BROKER_FENCED_S,
    )
    producer = SteadyProducer(stack.endpoints.kafka_bootstrap, topic, RATE, prefix, max_seconds=180)
    # Watched in the background from start to end as well: the fault's restore blocks until the
    # broker is back, and so do the flush and the consumption; the probe must not flap then either.
    with episode.watching():
        with producer:
            episode.watch_for(TRAFFIC_S)
            with stack.fault("replica-down", service=killed, kill=True):
                killed_at = episode.mark(f"{killed} killed")
                moved = episode.watch_until(
                    "leadership moved and under-replicated partitions in Prometheus",
                    lambda m: m.extra.get("leader") not in (killed_id, -1) and urp(m) > 0,
                    timeout=BROKER_FENCED_S + 10 * stack.scrape_s + 30,
                )
                restarting = episode.mark(f"{killed} starting")
            started = episode.mark(f"{killed} started")
            in_sync = episode.watch_until(
                "every partition in sync again in Prometheus",
                lambda m: m.known and urp(m) == 0,
                timeout=120,
            )
        acked = producer.stop_and_flush()
        episode.mark("production stopped")
        assert acked, "nothing was acknowledged"
        assert len(acked) + len(producer.failed) == len(producer.sent), "events unaccounted for"
        wait_until_consumed(acked, lambda: stack.consumed_ids(prefix))
        done = episode.mark("every acknowledged event consumed")
    evidence.record(
        "killed broker",
        f"{killed} (node {killed_id}, leader of partition {partition}; coordinator: {coordinator})",
    )
    evidence.record(f"new leader of partition {partition}", moved.extra.get("leader"))
    evidence.record("leader moved, URP seen, after the kill", round(moved.t - killed_at, 1), "s")
    evidence.record("most under-replicated partitions", max(urp(m) for m in episode.moments))
    # What a broker loss costs the monitoring: kafka_exporter (the first replica) without the
    # group's members. 13-26 s once, and the probe's window is 20 s (docs/design.md, section 11).
    evidence.record(
        "longest without the group in kafka_exporter, from the kill",
        round(episode.longest_gap(lambda m: m.members is not None, killed_at, done), 1),
        "s",
    )
    evidence.record("in sync again after the restart", round(in_sync.t - started, 1), "s")
    evidence.record("events acknowledged", len(acked))
    evidence.record("events refused (not acknowledged)", len(producer.failed))
    evidence.record("events consumed (unique)", len(set(stack.consumed_ids(prefix))))
    assert not producer.failed, f"{len(producer.failed)} events refused with one broker of three"
    # The probe judges the group, not the cluster: it never flapped through the loss.
    episode.assert_ready_throughout(0, done)
    assert restarting > killed_at

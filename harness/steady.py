"""The steady state every test and drill starts from, and that a drill must leave behind."""

from __future__ import annotations

from dataclasses import dataclass

from harness.clients import ProbeClient, PrometheusApi
from harness.stack import Stack
from harness.waits import wait_until

GROUP_ALERTS = "CrmEvents"


@dataclass(frozen=True)
class SteadyState:
    consumers: float
    lag_sum: float
    ready: bool


def active_group_alerts(prometheus: PrometheusApi) -> list[str]:
    return sorted(
        f"{alert['labels']['alertname']} ({alert['state']})"
        for alert in prometheus.alerts()
        if alert["labels"].get("alertname", "").startswith(GROUP_ALERTS)
    )


def observe(stack: Stack, probe: ProbeClient, prometheus: PrometheusApi) -> SteadyState:
    group = stack.contract.group
    consumers = prometheus.value(f'kafka:group_consumer_count{{consumergroup="{group}"}}')
    lag = prometheus.value(f'sum(kafka:group_lag_sum{{consumergroup="{group}"}})')
    return SteadyState(consumers or 0.0, lag or 0.0, probe.ready().ready)


def wait_for_steady_state(
    stack: Stack, probe: ProbeClient, prometheus: PrometheusApi
) -> SteadyState:
    """/ready 200, all the deployed consumers, the backlog drained, and no CrmEvents alert
    pending or firing."""
    timeout = max(120.0, 3 * stack.window_s)

    def steady() -> SteadyState | None:
        state = observe(stack, probe, prometheus)
        healthy = (
            state.ready and state.consumers >= stack.contract.consumer_count and state.lag_sum < 10
        )
        return state if healthy and not active_group_alerts(prometheus) else None

    return wait_until(
        f"the steady state (/ready 200, {stack.contract.consumer_count} consumers, no backlog, "
        "no CrmEvents alert active)",
        steady,
        timeout=timeout,
        describe=lambda: (
            f"{observe(stack, probe, prometheus)}, alerts {active_group_alerts(prometheus)}"
        ),
    )

"""Prometheus metrics (prometheus-client): what an operator graphs and alerts on.

Counters and histograms are module-level, as prometheus-client intends: the code that sees
an event counts it (``SESSIONS_CLOSED.labels(reason=…).inc()``) without a metrics object
handed down every layer. What is a state rather than an event (sessions open, pool
readiness, queue depth) is read when scraped, from the running service, by a collector the
service registers at start-up (``StateCollector``). The process collector that
prometheus-client registers by default adds the server's memory, CPU and open descriptors.
Labels are bounded sets only (languages, tenants, command types, error kinds); never a
session id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from codebeaker_client.models import CommandOutcome
from codebeaker_client.models.commands import ShellResult
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "AGENT_RESTARTS",
    "COMMANDS",
    "COMMAND_SECONDS",
    "CONNECTIONS",
    "REJECTED",
    "RUN_WAIT_SECONDS",
    "SESSIONS_CLOSED",
    "SESSIONS_CREATED",
    "ServiceState",
    "StateCollector",
    "close_reason",
    "count_cell",
    "count_command",
]

# A `_created` series per label set doubles the scrape for nothing (the function is untyped).
disable_created_metrics()  # type: ignore[no-untyped-call]

DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

SESSIONS_CREATED = Counter(
    "codebeaker_sessions_created", "Sessions created.", ["language", "tenant"]
)
SESSIONS_CLOSED = Counter(
    "codebeaker_sessions_closed",
    "Sessions ended, by reason: client, idle, lifetime, gone (container lost), shutdown.",
    ["reason"],
)
COMMANDS = Counter(
    "codebeaker_commands",
    "Commands and cells answered, by type and outcome: ok, timeout, cancelled, or the "
    "error kind (nonzero_exit, file_not_found, agent_lost …); cells: ok, error, timeout.",
    ["type", "outcome"],
)
COMMAND_SECONDS = Histogram(
    "codebeaker_command_duration_seconds",
    "Time from a command's start to its answer (queueing behind others excluded).",
    ["type"],
    buckets=DURATION_BUCKETS,
)
RUN_WAIT_SECONDS = Histogram(
    "codebeaker_run_queue_wait_seconds",
    "Time a one-shot or interactive run waited for a slot.",
    ["queue"],
    buckets=DURATION_BUCKETS,
)
AGENT_RESTARTS = Counter(
    "codebeaker_agent_restarts", "In-container agents started again after one was lost."
)
CONNECTIONS = Gauge(
    "codebeaker_connections", "Open WebSocket connections and HTTP requests, by door.", ["door"]
)
REJECTED = Counter(
    "codebeaker_rejected_requests",
    "Requests refused with limit_exceeded, by the limit they hit.",
    ["limit"],
)


def close_reason(reason: str) -> str:
    """The bounded label for a session's end; the reason text itself is for logs."""
    if reason.startswith("closed by client"):
        return "client"
    if reason.startswith("idle"):
        return "idle"
    if reason.startswith("max lifetime"):
        return "lifetime"
    if reason.startswith("server"):
        return "shutdown"
    return "gone"


OUTCOME_LABELS: Final = 32
"""Distinct error kinds kept as ``outcome`` labels; the sandbox words some of them (a file
operation's errno kind), and under the exec driver user code could forge those: past this
many, a new one is counted as ``other``."""
_KIND = re.compile(r"[a-z][a-z_]{0,39}")
_outcomes: set[str] = set()


def _bounded(kind: str) -> str:
    if kind in _outcomes:
        return kind
    if len(_outcomes) < OUTCOME_LABELS and _KIND.fullmatch(kind):
        _outcomes.add(kind)
        return kind
    return "other"


def count_command(kind: str, outcome: CommandOutcome) -> None:
    """One command answered: its outcome label, and its time (queueing excluded)."""
    result = outcome.result
    if isinstance(result, ShellResult) and result.cancelled:
        label = "cancelled"
    elif isinstance(result, ShellResult) and result.timed_out:
        label = "timeout"
    elif outcome.error is not None:
        label = _bounded(outcome.error.partition(":")[0])
    else:
        label = "ok" if outcome.success else "failed"
    kind = "execute_shell" if kind == "shell" else kind  # one label for the two spellings
    COMMANDS.labels(type=kind, outcome=label).inc()
    COMMAND_SECONDS.labels(type=kind).observe(outcome.duration_ms / 1000)


def count_cell(status: str, seconds: float) -> None:
    COMMANDS.labels(type="run_code", outcome=status).inc()
    COMMAND_SECONDS.labels(type="run_code").observe(seconds)


@dataclass(frozen=True)
class ServiceState:
    """What the collector reads from the service at each scrape."""

    sessions: Callable[[], Iterable[tuple[str, str]]]
    """(language, tenant) of every open session."""
    pools: Callable[[], Iterable[tuple[str, int, int]]]
    """(language, ready, size) of every pool."""
    queues: Callable[[], Iterable[tuple[str, int]]]
    """(queue, waiting) of every run queue."""


class StateCollector(Collector):
    def __init__(self, state: ServiceState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        open_sessions = GaugeMetricFamily(
            "codebeaker_sessions_open", "Sessions open now.", labels=["language", "tenant"]
        )
        counts: dict[tuple[str, str], int] = {}
        for key in self._state.sessions():
            counts[key] = counts.get(key, 0) + 1
        for (language, tenant), count in sorted(counts.items()):
            open_sessions.add_metric([language, tenant], count)
        yield open_sessions
        ready = GaugeMetricFamily(
            "codebeaker_pool_ready", "Warm containers ready.", labels=["language"]
        )
        size = GaugeMetricFamily(
            "codebeaker_pool_size", "Warm containers wanted.", labels=["language"]
        )
        for language, have, want in self._state.pools():
            ready.add_metric([language], have)
            size.add_metric([language], want)
        yield ready
        yield size
        depth = GaugeMetricFamily(
            "codebeaker_run_queue_depth", "Runs waiting for a slot.", labels=["queue"]
        )
        for queue, waiting in self._state.queues():
            depth.add_metric([queue], waiting)
        yield depth

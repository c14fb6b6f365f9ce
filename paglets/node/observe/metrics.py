"""The node's Prometheus metrics (``GET /metrics``), read from snapshots at scrape time.

Nothing on the message path knows about Prometheus: the broker loop keeps
plain counts and fixed-bucket histograms (:mod:`paglets.node.broker.stats`)
and hands over a copy when a scrape asks (one command through its control
channel); moves and other events are counted by a listener on the event log;
process memory is read from /proc. :class:`NodeMetrics` turns those into
metric families when ``prometheus-client`` renders a scrape, so a scrape
costs the loop one short pass over its slots and nothing per message.

Every label set is bounded: mailbox depths and worker memory are given per
paglet for the :data:`TOP_N` largest only (the totals cover all), and event
kinds beyond :data:`MAX_KINDS` are counted as ``other``. The metric names
are listed in ``docs/operations.md``.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterator
from typing import Any

from paglets.core.errors import PagletError
from paglets.core.event_kinds import ARRIVAL, CLONE, DISPATCH, RETRACT, TRANSFER_FAILED
from paglets.core.event_log import ContextEvent, ContextEventLog
from paglets.node.broker.stats import LoopHistogram
from paglets.node.observe.procfs import rss_bytes
from paglets.waiting import wait_for

TOP_N = 20  # paglets named (by label) in the per-paglet mailbox and memory metrics
MAX_RSS_READS = 1000  # worker processes whose memory one scrape reads
MAX_KINDS = 64  # event kinds counted by name; the rest are "other"
SCRAPE_DEADLINE = 2.0  # seconds a scrape waits for the broker loop's figures
MOVE_KINDS = (DISPATCH, RETRACT, CLONE, ARRIVAL)
MOVE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# slot phase -> the paglet state a metric shows
PHASE_STATES = {"ready": "active", "crashed": "crashed", "starting": "starting", "prepared": "starting",
                "moving": "moving", "departed": "leaving", "stopping": "leaving"}  # fmt: skip


class EventCounters:
    """An event log listener: events per kind, moves and their durations (any thread; a lock inside)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.kinds: dict[str, int] = {}
        self.move_durations = {kind: LoopHistogram(MOVE_BUCKETS) for kind in (DISPATCH, RETRACT, CLONE)}

    def __call__(self, event: ContextEvent) -> None:
        with self._lock:
            kind = event.kind if event.kind in self.kinds or len(self.kinds) < MAX_KINDS else "other"
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            duration = event.details.get("duration")
            histogram = self.move_durations.get(event.kind)
            if histogram is not None and isinstance(duration, (int, float)) and duration >= 0:
                histogram.observe(float(duration))

    def snapshot(self) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        with self._lock:
            return dict(self.kinds), {kind: h.snapshot() for kind, h in self.move_durations.items()}


class NodeMetrics:
    """Renders one node's metrics; ``parts()`` gives the current run's parts (None while stopped)."""

    def __init__(self, base: Any, parts: Callable[[], Any]):
        """``base``: the node's :class:`~paglets.node.assembly.Foundation` (identity, events, parked
        records, processes, mesh)."""
        self._base = base
        self._events: ContextEventLog = base.events
        self._parts = parts
        self.counters = EventCounters()
        self._events.add_listener(self.counters)
        self._registry: Any = None
        self._lock = threading.Lock()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric, read now."""
        from prometheus_client import CollectorRegistry, generate_latest  # imported on the first scrape only

        with self._lock:
            if self._registry is None:
                self._registry = CollectorRegistry(auto_describe=False)
                self._registry.register(self)
            registry = self._registry
        return generate_latest(registry)

    # -- the collector prometheus-client calls -------------------------------------------
    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        loop = self._loop_figures()
        here = self._base.here
        info = GaugeMetricFamily(
            "paglets_node_info", "This node: its name and versions.", labels=["node", "version", "code_version"]
        )
        info.add_metric([here.name, _version(), here.code_version], 1)
        yield info
        yield _gauge("paglets_node_up", "1 while the node runs and its broker loop answers.", 1 if loop else 0)
        yield from self._paglets(loop)
        if loop:
            yield from _loop_metrics(loop)
        yield from self._event_metrics()
        yield from self._memory()
        yield from self._mesh()

    def _loop_figures(self) -> dict[str, Any] | None:
        parts = self._parts()
        if parts is None:
            return None
        try:
            return wait_for(parts.commands.metrics(TOP_N), SCRAPE_DEADLINE, "the broker loop's figures")
        except PagletError:
            return None

    def _paglets(self, loop: dict[str, Any] | None) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        states = dict.fromkeys(("active", "parked", "crashed", "starting", "moving", "leaving"), 0)
        for phase, count in (loop or {}).get("phases", {}).items():
            state = PHASE_STATES.get(phase, "starting")
            states[state] += count
        states["parked"] = len(self._base.parked.ids())
        family = GaugeMetricFamily("paglets_paglets", "Paglets on this node by state.", labels=["state"])
        for state, count in states.items():
            family.add_metric([state], count)
        yield family

    def _event_metrics(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        kinds, durations = self.counters.snapshot()
        events = CounterMetricFamily("paglets_events", "Events recorded by this node, by kind.", labels=["kind"])
        for kind, count in sorted(kinds.items()):
            events.add_metric([kind], count)
        yield events
        moves = CounterMetricFamily(
            "paglets_moves", "Paglets that left (dispatch, retract, clone) or arrived.", labels=["kind"]
        )
        for kind in MOVE_KINDS:
            moves.add_metric([kind], kinds.get(kind, 0))
        yield moves
        yield _counter(
            "paglets_move_failures", "Moves that did not happen (either side).", kinds.get(TRANSFER_FAILED, 0)
        )
        yield _histogram(
            "paglets_move_duration_seconds", "How long moves took at their source, prepare to departure.",
            {kind: durations[kind] for kind in (DISPATCH, RETRACT, CLONE)}, label="kind",
        )  # fmt: skip
        yield _gauge("paglets_event_log_last_id", "The id of the newest event.", self._events.last_seq)

    def _memory(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        yield _gauge("paglets_node_rss_bytes", "Resident memory of the node process.", rss_bytes() or 0)
        alive = self._base.processes.alive()
        sizes = []
        for pid, agent_id in list(alive.items())[:MAX_RSS_READS]:
            size = rss_bytes(pid)
            if size is not None:
                sizes.append((size, agent_id))
        yield _gauge("paglets_worker_processes", "Live worker processes of this node.", len(alive))
        yield _gauge(
            "paglets_workers_rss_bytes", f"Resident memory of the workers, summed (of at most {MAX_RSS_READS}).",
            sum(size for size, _ in sizes),
        )  # fmt: skip
        top = GaugeMetricFamily(
            "paglets_worker_rss_bytes", f"Resident memory of the {TOP_N} largest workers.", labels=["agent_id"]
        )
        for size, agent_id in heapq.nlargest(TOP_N, sizes):
            top.add_metric([agent_id], size)
        yield top

    def _mesh(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        online, offline = self._base.mesh.peer_counts(self._base.here.name)
        family = GaugeMetricFamily("paglets_mesh_nodes", "Other nodes this node knows.", labels=["online"])
        family.add_metric(["true"], online)
        family.add_metric(["false"], offline)
        yield family


def _loop_metrics(loop: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    yield _gauge("paglets_mailbox_queued", "Messages waiting in the mailboxes of active paglets.", loop["queued"])
    yield _gauge("paglets_mailbox_in_flight", "Messages handlers hold right now.", loop["in_flight"])
    depth = GaugeMetricFamily(
        "paglets_mailbox_depth", f"Queued messages of the {TOP_N} deepest mailboxes.", labels=["agent_id", "class_name"]
    )
    for queued, agent_id, class_name in loop["deepest"]:
        depth.add_metric([agent_id, class_name], queued)
    yield depth
    yield _counter("paglets_messages_delivered", "Messages handled (the handler returned).", loop["delivered"])
    yield _counter(
        "paglets_messages_failed", "Messages that failed: the handler raised, or the paglet crashed or went away.",
        loop["failed"],
    )  # fmt: skip
    yield _histogram(
        "paglets_message_handling_seconds", "From a message handed to a handler to its reply (per message).",
        {"": loop["handling"]},
    )  # fmt: skip
    yield _histogram(
        "paglets_sync_roundtrip_seconds", "A sync message in this node: from its mailbox to its reply leaving.",
        {"": loop["sync_rtt"]},
    )  # fmt: skip
    yield _gauge("paglets_peer_links", "Open broker links to other nodes (forwarding).", loop["links"])
    yield _gauge("paglets_forwards_waiting", "Forwarded messages waiting for the next node's reply.",
                 loop["forwards_waiting"])  # fmt: skip
    yield _gauge("paglets_forwarding_entries", "Paglets that left and are still forwarded to.", loop["forwarding"])
    lanes = GaugeMetricFamily("paglets_requests_running", "Requests running or waiting, by lane.", labels=["lane"])
    for lane, held in loop["lanes"].items():
        lanes.add_metric([lane], held)
    yield lanes
    yield _counter("paglets_rejected_requests", "Front requests refused (malformed, wrong key).",
                   loop["rejected_requests"])  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> Any:
    from prometheus_client.core import CounterMetricFamily

    return CounterMetricFamily(name, documentation, value=value)


def _histogram(name: str, documentation: str, series: dict[str, dict[str, Any]], label: str | None = None) -> Any:
    """A histogram family from LoopHistogram snapshots: one series per ``label`` value (or one, unlabelled)."""
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, documentation, labels=[label] if label else None)
    for value, snap in series.items():
        buckets, running = [], 0
        for bound, count in zip([*snap["bounds"], float("inf")], snap["counts"], strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        family.add_metric([value] if label else [], buckets, snap["sum"])
    return family


def _version() -> str:
    import paglets

    return paglets.__version__


__all__ = ["MAX_KINDS", "TOP_N", "EventCounters", "NodeMetrics"]

"""The relay's Prometheus metrics (``GET /metrics`` on its HTTP port): its nodes and their queues.

A node behind a relay cannot see the relay's queue for it, so the relay
answers for itself. The figures come from the snapshot the relay's loop
publishes for ``/health`` (no loop work per scrape); one label set per node
the relay knows, which its registration rules bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def render(snapshot: dict[str, Any]) -> bytes:
    """The Prometheus text of a relay ``health()`` snapshot."""
    from prometheus_client import CollectorRegistry, generate_latest  # imported on the first scrape only

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snapshot))
    return generate_latest(registry)


class _Snapshot:
    def __init__(self, snapshot: dict[str, Any]):
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        nodes = self._snapshot.get("nodes") or []
        info = GaugeMetricFamily("paglets_relay_info", "This relay: its name.", labels=["relay"])
        info.add_metric([str(self._snapshot.get("name") or "")], 1)
        yield info
        connected = GaugeMetricFamily(
            "paglets_relay_nodes", "Nodes the relay knows, by connection.", labels=["connected"]
        )
        connected.add_metric(["true"], sum(1 for node in nodes if node.get("connected")))
        connected.add_metric(["false"], sum(1 for node in nodes if not node.get("connected")))
        yield connected
        depth = GaugeMetricFamily(
            "paglets_relay_queue_depth", "Messages queued on disk for a node away.", labels=["node"]
        )
        seen = GaugeMetricFamily(
            "paglets_relay_node_last_seen_seconds", "Seconds since the node was last heard from.", labels=["node"]
        )
        for node in nodes:
            depth.add_metric([str(node.get("name"))], node.get("queue_depth") or 0)
            if isinstance(node.get("last_seen_s"), (int, float)):
                seen.add_metric([str(node.get("name"))], node["last_seen_s"])
        yield depth
        yield seen


__all__ = ["render"]

"""Mesh and relay benchmarks: sync RTT through a relay against direct, gossip convergence.

Run ``python bench/mesh.py [--quick]``; prints ONE JSON object.

* Relay: a ``paglets-relay`` process, a node behind it (``--connect``) and a
  node reached directly, each with an echo paglet; this process sends sync
  messages to both, alternating blocks so both see the same noise. Goal: the
  relayed p50 at most 2x the direct p50.
* Gossip: ten node processes started in a chain (each names the previous one
  as its only peer); the figure is the time from the last start until every
  node lists all ten online (starting them takes ``gossip_nodes_start_s``,
  during which gossip already runs).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import judge, main, percentile, progress  # noqa: E402
from bench.node_process import start_node  # noqa: E402
from paglets.client.host_client import HostClient  # noqa: E402
from paglets.core.errors import PagletError  # noqa: E402
from paglets.core.messages import Message  # noqa: E402
from tests.conftest import start_relay_process  # noqa: E402

GOALS: dict[str, tuple[str, float]] = {"relay_rtt_ratio": ("<=", 2.0)}

ECHO = "paglets.examples.echo:EchoPaglet"
FULL = {"samples": 2000, "blocks": 3, "nodes": 10, "gossip_interval": 1.0}
QUICK = {"samples": 500, "blocks": 2, "nodes": 10, "gossip_interval": 1.0}


def rtts(proxy: Any, samples: int) -> list[float]:
    times = []
    for i in range(samples):
        started = time.perf_counter()
        proxy.send(Message("echo", arg=i))
        times.append(time.perf_counter() - started)
    return times


def relay_round_trips(tmp: Path, samples: int, blocks: int) -> dict[str, Any]:
    relay = start_relay_process("relay", tmp / "relay")
    direct_node = start_node("direct", tmp / "direct")
    relayed_node = start_node("relayed", tmp / "relayed", "--connect", relay.address)
    try:
        client = HostClient()
        direct = client.create(direct_node.address, ECHO)
        relayed = client.create(relayed_node.address, ECHO)
        for proxy in (direct, relayed):
            rtts(proxy, 200)  # warm-up
        direct_times, relayed_times = [], []
        for _ in range(blocks):
            direct_times += rtts(direct, samples)
            relayed_times += rtts(relayed, samples)
        direct_p50 = statistics.median(direct_times)
        relayed_p50 = statistics.median(relayed_times)
        return {
            "direct_rtt_p50_us": round(direct_p50 * 1e6, 1),
            "direct_rtt_p99_us": round(percentile(direct_times, 0.99) * 1e6, 1),
            "relay_rtt_p50_us": round(relayed_p50 * 1e6, 1),
            "relay_rtt_p99_us": round(percentile(relayed_times, 0.99) * 1e6, 1),
            "relay_rtt_ratio": round(relayed_p50 / direct_p50, 2),
        }
    finally:
        relayed_node.stop()
        direct_node.stop()
        relay.stop()


def gossip_convergence(tmp: Path, count: int, interval: float) -> dict[str, Any]:
    flags = ("--gossip-interval", str(interval), "--offline-after", str(interval * 10))
    nodes = []
    first = time.perf_counter()
    try:
        for index in range(count):
            peer = ("--peer", nodes[-1].address) if nodes else ()
            nodes.append(start_node(f"n{index}", tmp / f"n{index}", *peer, *flags))
        started = time.perf_counter()
        client = HostClient(timeout=2)
        names = {f"n{index}" for index in range(count)}
        waiting = {node.address for node in nodes}
        deadline = started + 60
        while waiting and time.perf_counter() < deadline:
            for address in list(waiting):
                try:
                    hosts = client.request(address, "hosts", {"online": True}).header["hosts"]
                except PagletError:
                    continue
                if {h["name"] for h in hosts} == names:
                    waiting.discard(address)
            time.sleep(0.02)  # an outside observer of other processes has nothing to wait on
        elapsed = time.perf_counter() - started
        return {
            "gossip_nodes": count,
            "gossip_interval_s": interval,
            "gossip_nodes_start_s": round(started - first, 2),
            "gossip_convergence_s": round(elapsed, 2) if not waiting else None,
            "gossip_convergence_rounds": round(elapsed / interval, 1) if not waiting else None,
        }
    finally:
        for node in nodes:
            node.stop()


def run(quick: bool) -> dict[str, Any]:
    params = QUICK if quick else FULL
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pgl-bench-mesh-") as tmp:
        progress("relay round trips")
        figures.update(relay_round_trips(Path(tmp), params["samples"], params["blocks"]))
        progress("gossip convergence")
        figures.update(gossip_convergence(Path(tmp), params["nodes"], params["gossip_interval"]))
    return {
        **figures,
        "goals": judge(figures, GOALS),
        "cpu_count": os.cpu_count(),
        "mode": "quick" if quick else "full",
        "run_s": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    main("paglets mesh and relay benchmarks", run)

"""Movement benchmarks: dispatch legs, clones and a stale proxy, between two node processes.

Run ``python bench/movement.py [--quick]``; prints ONE JSON object. Two
``paglets-node`` processes on loopback; this process is the client that asks
a paglet's current node to move it (``PagletProxy.dispatch``), so a leg is
timed end to end as a user sees it: prepare on the target (a worker forked
and loaded), the hooks, the state snapshot and transfer, the arrival hook.
The raw pyzmq round trip of the same run is recorded for scale.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import raw_baseline  # noqa: E402
from bench.common import main, percentile, progress, report  # noqa: E402
from bench.node_process import start_node  # noqa: E402
from paglets.client.host_client import HostClient  # noqa: E402
from paglets.client.proxy import PagletProxy  # noqa: E402
from paglets.core.messages import Message  # noqa: E402

ECHO = "paglets.examples.echo:EchoPaglet"
GOALS = {
    "dispatch_1kib_p50_ms": ("<=", 15.0),
    "dispatch_1mib_p50_ms": ("<=", 60.0),
    "clone_p50_ms": ("<=", 15.0),
}
FULL = {"legs": 60, "clones": 40, "stale": 200}
QUICK = {"legs": 20, "clones": 15, "stale": 50}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def dispatch_legs(client: HostClient, nodes: list[str], state_bytes: int, legs: int) -> dict[str, Any]:
    """Move one paglet back and forth ``legs`` times; returns leg latency percentiles."""
    proxy = client.create(nodes[0], ECHO, {"greeting": "x" * state_bytes})
    times = []
    for leg in range(legs + 2):
        target = nodes[(leg + 1) % 2]
        started = time.perf_counter()
        proxy.dispatch(target)
        if leg >= 2:  # the first legs warm both nodes' template processes
            times.append(time.perf_counter() - started)
    assert proxy.send(Message("echo", arg="ok")) == "ok"
    proxy.dispose()
    return {"p50_ms": ms(statistics.median(times)), "p90_ms": ms(percentile(times, 0.9)), "legs": len(times)}


def clones(client: HostClient, nodes: list[str], count: int) -> dict[str, Any]:
    original = client.create(nodes[0], ECHO, {"greeting": "x" * 1024})
    times, copies = [], []
    for _ in range(count + 2):
        started = time.perf_counter()
        copies.append(original.clone(nodes[1]))
        times.append(time.perf_counter() - started)
    for proxy in [original, *copies]:
        proxy.dispose()
    times = times[2:]
    return {"clone_p50_ms": ms(statistics.median(times)), "clone_p90_ms": ms(percentile(times, 0.9))}


def stale_proxy(client: HostClient, nodes: list[str], count: int) -> dict[str, Any]:
    """A send through a proxy that still names the old node (forwarded once, then it follows)."""
    proxy = client.create(nodes[0], ECHO)
    proxy.dispatch(nodes[1])
    direct, forwarded = [], []
    for i in range(count):
        stale = PagletProxy(nodes[0], proxy.agent_id, client)
        started = time.perf_counter()
        stale.send(Message("echo", arg=i))
        forwarded.append(time.perf_counter() - started)
        started = time.perf_counter()
        stale.send(Message("echo", arg=i))  # it learned the new address from the first reply
        direct.append(time.perf_counter() - started)
    proxy.dispose()
    return {
        "stale_proxy_first_send_p50_us": round(statistics.median(forwarded) * 1e6, 1),
        "stale_proxy_next_send_p50_us": round(statistics.median(direct) * 1e6, 1),
    }


def run(quick: bool) -> dict[str, Any]:
    params = QUICK if quick else FULL
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    raw = sorted(raw_baseline.measure_rtt(samples=1000 if quick else 3000))
    figures["raw_rtt_p50_us"] = round(statistics.median(raw) * 1e6, 1)
    with tempfile.TemporaryDirectory(prefix="pgl-bench-move-") as tmp:
        alpha = start_node("alpha", Path(tmp) / "alpha-data")
        beta = start_node("beta", Path(tmp) / "beta-data")
        try:
            client = HostClient()
            nodes = [alpha.address, beta.address]
            for label, size in (("1kib", 1024), ("1mib", 1024 * 1024)):
                progress(f"dispatch legs with {label} of state")
                legs = dispatch_legs(client, nodes, size, params["legs"])
                figures[f"dispatch_{label}_p50_ms"] = legs["p50_ms"]
                figures[f"dispatch_{label}_p90_ms"] = legs["p90_ms"]
            progress("clones")
            figures.update(clones(client, nodes, params["clones"]))
            progress("stale proxy")
            figures.update(stale_proxy(client, nodes, params["stale"]))
        finally:
            alpha.stop()
            beta.stop()
    return report(figures, GOALS, quick=quick, started=started)


if __name__ == "__main__":
    main("paglets movement benchmarks", run)

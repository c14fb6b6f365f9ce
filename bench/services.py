"""Service benchmarks: lookup latency (LOCAL and MESH), and a typed contract call against a plain send.

Run ``python bench/services.py [--quick]``; prints ONE JSON object.

Three ``paglets-node`` processes in a mesh (gossip every 0.5 s), each with a
quote service advertised MESH-wide (``paglets.examples.quotes``).

* Lookups, from a paglet on the first node (its ``lookup_services`` is a
  host call to its node): LOCAL (the node's own registry) and MESH (the node
  asks the two others in parallel and merges). The same two from this
  process through the ``services`` front op (``HostClient.services``).
* Typed call vs plain send, from this process to the first node's quote
  service: ``ServiceHandle.call(QUOTE, QuoteRequest(...))`` (request checked
  and encoded here, decoded and checked by the provider, the reply checked
  and encoded there and decoded here) against ``proxy.send(Message(
  "plain-quote", {...}))`` answered by a hand-written untyped handler with the
  same result; alternating blocks so both see the same noise. Goal: typed p50
  at most 1.2 x the plain p50.
* Leases and wakes, against a fourth node (``bench/idle_node.py --resident``)
  running the lazy resident service ``BenchCounter``: ``lease_acquire`` and
  ``lease_release`` (``HostClient.lease`` / ``unlease``, front ops), and
  ``wake_call``: the service parked (``HostClient.deactivate``; its pinned
  record stays), then a typed ``ServiceHandle.call`` that wakes it and
  returns its reply.
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

from bench.common import judge, main, percentile, progress, source_version  # noqa: E402
from bench.idle_node import BENCH_COUNTER, BUMP  # noqa: E402
from bench.node_process import start_node, start_script  # noqa: E402
from paglets.client.host_client import HostClient  # noqa: E402
from paglets.core.messages import Message  # noqa: E402
from paglets.examples.quotes import QUOTE, QUOTES, QuoteRequest, QuoteServiceState  # noqa: E402
from paglets.services.contracts import ServiceHandle  # noqa: E402
from paglets.services.records import ServiceRecord  # noqa: E402

GOALS: dict[str, tuple[str, float]] = {"typed_call_ratio": ("<=", 1.2)}
FULL = {"lookups": 2000, "samples": 2000, "blocks": 3}
QUICK = {"lookups": 300, "samples": 500, "blocks": 2}
FLAGS = ("--gossip-interval", "0.5", "--allow-module", "bench")


def us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


def summary(prefix: str, times: list[float]) -> dict[str, float]:
    return {f"{prefix}_p50_us": us(statistics.median(times)), f"{prefix}_p99_us": us(percentile(times, 0.99))}


def wait_for_mesh(client: HostClient, addresses: list[str], names: set[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = [{h["name"] for h in client.request(a, "hosts", {"online": True}).header["hosts"]} for a in addresses]
        if all(names == one for one in seen):
            return
        time.sleep(0.05)  # an outside observer of other processes has nothing to wait on
    raise RuntimeError("the mesh did not form in 30 s")


def lookups(client: HostClient, first: str, count: int) -> dict[str, Any]:
    probe = client.create(first, "bench.service_probe:LookupProbe")
    figures: dict[str, Any] = {}
    for scope in ("local", "mesh"):
        probe.send(Message("time-lookups", {"name": "quotes", "scope": scope, "count": 50}))  # warm-up
        answer = probe.send(Message("time-lookups", {"name": "quotes", "scope": scope, "count": count}), timeout=300)
        figures.update(summary(f"lookup_{scope}_paglet", answer["times"]))
        figures[f"lookup_{scope}_found"] = answer["found"]
        times = []
        for _ in range(count):
            started = time.perf_counter()
            client.services(first, name="quotes", mesh=scope == "mesh")
            times.append(time.perf_counter() - started)
        figures.update(summary(f"lookup_{scope}_client", times))
    return figures


def typed_against_plain(client: HostClient, first: str, samples: int, blocks: int) -> dict[str, Any]:
    [wire] = client.services(first, name="quotes")
    record = ServiceRecord.from_wire(wire)
    proxy = record.ref.resolve(client)
    handle = ServiceHandle(QUOTES, record, proxy)

    def typed(count: int) -> list[float]:
        times = []
        for i in range(count):
            started = time.perf_counter()
            handle.call(QUOTE, QuoteRequest("ACME", i + 1))
            times.append(time.perf_counter() - started)
        return times

    def plain(count: int) -> list[float]:
        times = []
        for i in range(count):
            started = time.perf_counter()
            proxy.send(Message("plain-quote", {"symbol": "ACME", "quantity": i + 1}))
            times.append(time.perf_counter() - started)
        return times

    typed(200)
    plain(200)  # warm-up
    typed_times: list[float] = []
    plain_times: list[float] = []
    for _ in range(blocks):
        typed_times += typed(samples)
        plain_times += plain(samples)
    typed_p50, plain_p50 = statistics.median(typed_times), statistics.median(plain_times)
    return {
        **summary("typed_call", typed_times),
        **summary("plain_send", plain_times),
        "typed_call_ratio": round(typed_p50 / plain_p50, 3),
    }


def leases_and_wakes(client: HostClient, address: str, samples: int) -> dict[str, Any]:
    """Lease acquire (+ release) of a resident service through the front op; wake from parked + typed reply."""
    [wire] = client.services(address, name=BENCH_COUNTER.name)
    record = ServiceRecord.from_wire(wire)
    handle = ServiceHandle(BENCH_COUNTER, record, record.ref.resolve(client))
    handle.call(BUMP)  # the lazy service starts on its first call
    acquire, release = [], []
    for _ in range(samples):
        started = time.perf_counter()
        grant = client.lease(address, record.agent_id, record.name, 60.0)
        middle = time.perf_counter()
        client.unlease(address, grant["lease_id"])
        acquire.append(middle - started)
        release.append(time.perf_counter() - middle)
    wakes = []
    for _ in range(max(20, samples // 10)):
        client.deactivate(address, record.agent_id, reason="bench")  # parked as idle parking would, records kept
        started = time.perf_counter()
        handle.call(BUMP)
        wakes.append(time.perf_counter() - started)
    return {**summary("lease_acquire", acquire), **summary("lease_release", release), **summary("wake_call", wakes)}


def run(quick: bool) -> dict[str, Any]:
    params = QUICK if quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    nodes = []
    with tempfile.TemporaryDirectory(prefix="pgl-bench-services-") as tmp:
        try:
            for name in ("s0", "s1", "s2"):
                peer = ("--peer", nodes[0].address) if nodes else ()
                nodes.append(start_node(name, Path(tmp) / name, *peer, *FLAGS))
            client = HostClient()
            addresses = [node.address for node in nodes]
            wait_for_mesh(client, addresses, {"s0", "s1", "s2"})
            for number, address in enumerate(addresses):
                state = QuoteServiceState(f"venue-{number}", {"ACME": 10.0 + number})
                client.create(address, "bench.service_probe:PlainQuoteService", state)
            progress("lookups")
            figures.update(lookups(client, addresses[0], params["lookups"]))
            progress("typed call against plain send")
            figures.update(typed_against_plain(client, addresses[0], params["samples"], params["blocks"]))
            progress("leases and wakes of a resident service")
            nodes.append(start_script("bench.idle_node", "s3", Path(tmp) / "s3", "--resident"))
            figures.update(leases_and_wakes(client, nodes[-1].address, params["lookups"]))
        finally:
            for node in nodes:
                node.stop()
    return {
        **figures,
        "goals": judge(figures, GOALS),
        "source": source_version(),
        "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpu_count": os.cpu_count(),
        "mode": "quick" if quick else "full",
        "run_s": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    main("paglets service benchmarks", run)

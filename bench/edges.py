"""Edge benchmarks: how fast a node still answers reads while slow requests hang.

Run ``python bench/edges.py [--quick]``; it prints ONE JSON object on stdout
(progress goes to stderr). The node runs as its own process; this process
is the client and also holds a "silent" ZeroMQ ROUTER on 127.0.0.1 that
accepts connections and never reads, so moves toward it hang until their
ticket's timeout.

Figures: ``health`` round trips (ZeroMQ, from a raw DEALER) on an idle node,
then with 64 moves hanging toward the silent address (the default
``max_slow_ops``, so every slow thread of the node is taken); and how long
the 65th slow request took to be refused.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/edges.py` puts bench/, not the repo, on sys.path
    sys.path.insert(0, str(ROOT))

import zmq  # noqa: E402

from bench.common import judge, main, percentile, progress, source_version  # noqa: E402
from bench.node_process import start_node  # noqa: E402
from paglets.client.host_client import HostClient  # noqa: E402
from paglets.client.transfer import TransferTicket  # noqa: E402
from paglets.wire import protocol  # noqa: E402

ECHO = "paglets.examples.echo:EchoPaglet"
HANGING = 64
ANSWER_MS = 30_000

GOALS: dict[str, tuple[str, float]] = {"health_p99_ms_while_moves_hang": ("<=", 1000.0)}


def health_round_trips(sock: zmq.Socket, count: int) -> list[float]:
    """Milliseconds per ``health`` request, one after another on ``sock``."""
    times = []
    for index in range(count):
        cid = b"h%d" % index
        started = time.perf_counter()
        sock.send_multipart(protocol.request_frames("health", cid, {}))
        while True:
            if not sock.poll(ANSWER_MS):
                raise RuntimeError("the node did not answer health")
            if protocol.parse_reply(sock.recv_multipart()).cid == cid:
                break
        times.append((time.perf_counter() - started) * 1000)
    return times


def dealer(address: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(address)
    return sock


def measure(address: str, samples: int) -> dict[str, Any]:
    agent = HostClient(timeout=30).create(address, ECHO).agent_id
    reads, moves = dealer(address), dealer(address)
    silent = zmq.Context.instance().socket(zmq.ROUTER)
    silent.linger = 0
    target = f"tcp://127.0.0.1:{silent.bind_to_random_port('tcp://127.0.0.1')}"
    try:
        health_round_trips(reads, 20)  # warm-up
        idle = health_round_trips(reads, samples)
        progress(f"{HANGING} moves toward a silent address")
        ticket = TransferTicket(target, timeout=120.0).to_wire()
        header = {"agent": agent, "ticket": ticket}
        for index in range(HANGING):
            moves.send_multipart(protocol.request_frames("dispatch", b"m%d" % index, header))
        started = time.perf_counter()
        moves.send_multipart(protocol.request_frames("create", b"one-too-many", {"cls": ECHO}, (b"", b"")))
        if not moves.poll(ANSWER_MS):
            raise RuntimeError("the 65th slow request was not answered")
        refused = protocol.parse_reply(moves.recv_multipart())
        refused_ms = (time.perf_counter() - started) * 1000
        busy = health_round_trips(reads, samples)
    finally:
        silent.close(0)  # the hanging moves fail at once
        reads.close(0)
        moves.close(0)
    return {
        "health_p50_ms_idle": round(percentile(idle, 0.5), 3),
        "health_p99_ms_idle": round(percentile(idle, 0.99), 3),
        "health_p50_ms_while_moves_hang": round(percentile(busy, 0.5), 3),
        "health_p99_ms_while_moves_hang": round(percentile(busy, 0.99), 3),
        "hanging_moves": HANGING,
        "slow_request_over_limit_refused_ms": round(refused_ms, 3),
        "slow_request_over_limit_error": refused.header.get("type") if not refused.ok else None,
        "health_samples_each": samples,
    }


def run(quick: bool) -> dict[str, Any]:
    samples = 100 if quick else 1000
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pgl-bench-") as tmp:
        node = start_node("edges", Path(tmp) / "edges")
        try:
            figures = measure(node.address, samples)
        finally:
            node.stop()
    return {
        **figures,
        "goals": judge(figures, GOALS),
        "mode": "quick" if quick else "full",
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "source": source_version(),
        "run_s": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    main("paglets edge benchmarks", run, "fewer samples (about 10 s)")

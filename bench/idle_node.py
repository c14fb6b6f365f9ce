"""A node for the idle and service benchmarks: a real node process with paglets created parked, and residents.

``python -m bench.idle_node NAME DATA_DIR [--parked N] [--resident] [--threads T]``

Starts a :class:`~paglets.node.host.Host` on 127.0.0.1 (free ports), creates
``N`` :class:`Sleeper` paglets parked (``Host.create_parked``: a durable
record each, nothing runs), prints ``address ADDR``, ``created N SECONDS``
and ``ready``, and serves until SIGTERM. ``--resident`` adds the lazy
resident service :class:`BenchCounter` (agent id ``service.bench-counter``).
The paglet classes live here so the node's workers can import them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.services.contracts import EmptyPayload, ServiceContract, ServiceOperation
from paglets.services.resident import ResidentServiceSpec

BENCH_COUNTER_ID = "service.bench-counter"


@dataclass
class SleeperState(PagletState):
    number: int = 0
    hits: int = 0


class Sleeper(Paglet[SleeperState]):
    """Answers ``hit`` with its number and hit count; parks itself after 2 s without a message."""

    State = SleeperState
    IDLE_TIMEOUT = 2.0
    MAILBOX_WORKERS = 1  # one message at a time is all it needs: one handler thread to start, not four

    def handle_message(self, message: Message) -> Any:
        with self.locked():
            self.state.hits += 1
            return [self.state.number, self.state.hits]


@dataclass
class Count:
    value: int = 0


BUMP = ServiceOperation("bump", EmptyPayload, Count)
BENCH_COUNTER = ServiceContract("bench-counter", operations=(BUMP,))


@dataclass
class BenchCounterState(PagletState):
    value: int = 0


class BenchCounter(Paglet[BenchCounterState]):
    """A lazy resident service (idle after 60 s) the services benchmark leases and wakes."""

    State = BenchCounterState
    RESIDENT_SERVICE = ResidentServiceSpec(BENCH_COUNTER, agent_id=BENCH_COUNTER_ID, idle_timeout=60.0)

    def handle_message(self, message: Message) -> Any:
        return BENCH_COUNTER.route(message, {BUMP: self._bump})

    def _bump(self, request: EmptyPayload) -> Count:
        with self.locked():
            self.state.value += 1
            return Count(self.state.value)


def sleeper_id(number: int) -> str:
    return f"sleeper-{number:06d}"


def create_parked(node: Any, count: int, threads: int) -> float:
    """Create ``count`` Sleepers parked, ``threads`` at a time (each write waits for its fsync); seconds taken."""
    started = time.perf_counter()

    def create(number: int) -> None:
        node.create_parked(Sleeper, SleeperState(number=number), agent_id=sleeper_id(number))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(create, range(count), chunksize=256):
            pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--parked", type=int, default=0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--resident", action="store_true")
    args = parser.parse_args()
    import bench.idle_node as here  # run as __main__: the classes the workers import are the module's
    from paglets.node.host import Host

    residents = ["bench.idle_node:BenchCounter"] if args.resident else []
    node = Host(
        args.name, persistence_dir=args.data_dir, mesh_lan_discovery=False, allow_modules=["bench"],
        resident_services=residents, worker_pool=4,
    )  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node.start_background()
    try:
        print(f"address {node.address}", flush=True)
        took = here.create_parked(node, args.parked, args.threads) if args.parked else 0.0
        print(f"created {args.parked} {took:.3f}", flush=True)
        print("ready", flush=True)
        stop.wait()
    finally:
        node.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()

"""Persistence benchmarks: parking and waking a paglet, and durable mail for a parked one.

Run ``python bench/persistence.py [--quick]``; prints ONE JSON object (progress
goes to stderr). One ``paglets-node`` process on loopback with its data dir in
a temporary directory; this process is the client, so every figure is what a
user of :class:`~paglets.client.host_client.HostClient` sees.

Figures (each timing a median, with p90, over many samples):

* ``deactivate_p50_ms`` — ``HostClient.deactivate`` of an ``EchoPaglet`` with
  1 KiB of state, no policy given (so the paglet is asked for one): hook,
  snapshot, record written and fsync'd, worker released. Goal <= 8 ms.
* ``activate_p50_ms`` — ``HostClient.activate`` of the same paglet: worker
  forked, state restored, ``on_activation`` run. Goal <= 11 ms.
* ``durable_queue_msgs_per_s`` — N ``send_oneway`` to the paglet parked
  queue-only, timed until ``flush`` returns; the node acks a oneway only once
  it is fsync'd, so every message is then on disk. Goal >= 5,000.
* ``durable_queue_sync_msgs_per_s`` — sync sends from 8 client threads; each
  returns ``{"queued": True}`` only after its fsync.
* ``activate_with_queue_ms`` — waking the paglet with all that mail queued (the
  reply comes once the mail is in its mailbox, ahead of anything newer).
* ``queued_mail_delivered_msgs_per_s`` — all that mail / the time from the
  activate call until the mailbox is empty again (polled: activation may fill
  the mailbox past its limit, and a send is refused until it drains).
* ``delivered_after_activation`` — messages the paglet had handled before a
  ``count`` sent afterwards; must equal ``queued_messages``.
* ``fsync_p50_ms`` — 4 KiB append + fsync on the data dir's filesystem, 50
  times: what the disk costs, for scale.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/persistence.py` puts bench/, not the repo, on sys.path
    sys.path.insert(0, str(ROOT))

from bench.common import main, percentile, progress, report  # noqa: E402
from bench.node_process import start_node  # noqa: E402
from paglets.client.host_client import HostClient  # noqa: E402
from paglets.core.errors import MessageQueuedError  # noqa: E402
from paglets.core.messages import Message  # noqa: E402
from paglets.persistence.persistency import DeactivationPolicy  # noqa: E402

ECHO = "paglets.examples.echo:EchoPaglet"
STATE = {"greeting": "x" * 1024}
QUEUE_ONLY = DeactivationPolicy(activate_on_message=False)
SYNC_THREADS = 8
DRAIN_TIMEOUT = 120.0
DRAIN_POLL = 0.005  # between mailbox queries while the woken paglet works through its mail
FSYNC_SAMPLES = 50
GOALS: dict[str, tuple[str, float]] = {
    "deactivate_p50_ms": ("<=", 8.0),
    "activate_p50_ms": ("<=", 11.0),
    "durable_queue_msgs_per_s": (">=", 5_000),
}
FULL = {"cycles": 40, "warmup_cycles": 2, "oneway": 20_000, "sync": 4_000}
QUICK = {"cycles": 15, "warmup_cycles": 1, "oneway": 3_000, "sync": 800}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def fsync_cost(directory: Path, samples: int = FSYNC_SAMPLES) -> dict[str, Any]:
    """Append 4 KiB and fsync, ``samples`` times, in ``directory``: the floor under every durable ack."""
    path = directory / "fsync-probe.bin"
    block = os.urandom(4096)
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(samples):
            started = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"fsync_p50_ms": ms(statistics.median(times)), "fsync_p90_ms": ms(percentile(times, 0.9))}


def park_and_wake_cycles(client: HostClient, address: str, cycles: int, warmup: int) -> dict[str, Any]:
    """Deactivate and activate one paglet ``cycles`` times (after ``warmup`` untimed cycles)."""
    agent_id = client.create(address, ECHO, STATE).agent_id
    parks, wakes = [], []
    for cycle in range(warmup + cycles):
        parked = timed(lambda: client.deactivate(address, agent_id, reason="bench"))
        woken = timed(lambda: client.activate(address, agent_id))
        if cycle >= warmup:
            parks.append(parked)
            wakes.append(woken)
    assert client.send(address, agent_id, Message("echo", arg="ok")) == "ok"
    client.dispose(address, agent_id)
    return {
        "deactivate_p50_ms": ms(statistics.median(parks)),
        "deactivate_p90_ms": ms(percentile(parks, 0.9)),
        "activate_p50_ms": ms(statistics.median(wakes)),
        "activate_p90_ms": ms(percentile(wakes, 0.9)),
        "cycles": len(parks),
    }


def sync_sends(client: HostClient, address: str, agent_id: str, count: int) -> float:
    """``count`` sync sends (a multiple of SYNC_THREADS) split over SYNC_THREADS threads; returns the wall time."""
    share = count // SYNC_THREADS
    start = threading.Barrier(SYNC_THREADS + 1)

    def sender(_: int) -> None:
        start.wait()
        for _ in range(share):
            try:  # the acknowledgement of a message queued on disk for a parked paglet is MessageQueuedError
                reply = client.send(address, agent_id, Message("add", arg=1))
            except MessageQueuedError:
                continue
            raise RuntimeError(f"a send to the parked paglet was answered {reply!r:.100}, not queued")

    with ThreadPoolExecutor(SYNC_THREADS) as pool:
        futures = [pool.submit(sender, i) for i in range(SYNC_THREADS)]
        start.wait()
        started = time.perf_counter()
        for future in futures:
            future.result()
        return time.perf_counter() - started


def durable_queue(client: HostClient, address: str, oneway: int, sync: int) -> dict[str, Any]:
    """Queue mail for a paglet parked queue-only: oneway, then sync; then wake it and check delivery."""
    agent_id = client.create(address, ECHO, STATE).agent_id
    client.deactivate(address, agent_id, reason="bench", policy=QUEUE_ONLY)
    message = Message("add", arg=1)
    started = time.perf_counter()
    for _ in range(oneway):
        client.send_oneway(address, agent_id, message)
    client.flush(address, timeout=120)
    oneway_s = time.perf_counter() - started
    synced = sync // SYNC_THREADS * SYNC_THREADS
    sync_s = sync_sends(client, address, agent_id, synced)
    queued = oneway + synced
    started = time.perf_counter()
    client.activate(address, agent_id, timeout=120)
    wake_s = time.perf_counter() - started
    wait_mailbox_empty(client, address, agent_id)
    drained_s = time.perf_counter() - started
    handled = client.send(address, agent_id, "count", timeout=120)
    client.dispose(address, agent_id)
    return {
        "durable_queue_msgs_per_s": round(oneway / oneway_s),
        "durable_queue_sync_msgs_per_s": round(synced / sync_s),
        "activate_with_queue_ms": ms(wake_s),
        "queued_mail_delivered_msgs_per_s": round(queued / drained_s),
        "queued_messages": queued,
        "delivered_after_activation": handled - 1,
    }


def wait_mailbox_empty(client: HostClient, address: str, agent_id: str, timeout: float = DRAIN_TIMEOUT) -> None:
    """Wait until the woken paglet has handled its queued mail.

    Activation may put more mail in the mailbox than its limit allows, and a
    send is refused while it is over; the node signals nothing a client can wait
    on, so this asks for the mailbox's status until it is empty.
    """
    deadline = time.monotonic() + timeout
    while any(client.mailbox_status(address, agent_id)[key] for key in ("queued", "in_flight")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"paglet {agent_id} at {address} still had queued mail after {timeout:g} s")
        time.sleep(DRAIN_POLL)


def checkpoint_overhead(tmp: Path, samples: int, blocks: int = 3) -> dict[str, Any]:
    """Sync RTT of a state-changing message with and without checkpoints every 0.1 s (same run)."""
    plain = start_node("plain", tmp / "plain-data")
    checked = start_node("checked", tmp / "checked-data", "--checkpoint-interval", "0.1")
    try:
        client = HostClient()
        proxies = [client.create(n.address, ECHO, {"greeting": "x" * 1024}) for n in (plain, checked)]
        times: list[list[float]] = [[], []]
        for _ in range(blocks):
            for index, proxy in enumerate(proxies):
                for _ in range(samples):
                    times[index].append(timed(lambda p=proxy: p.send(Message("add", arg=1))))
        base, with_checkpoints = (statistics.median(t) for t in times)
        return {
            "rtt_p50_us_without_checkpoints": round(base * 1e6, 1),
            "rtt_p50_us_with_checkpoints_every_0_1_s": round(with_checkpoints * 1e6, 1),
            "checkpoint_rtt_overhead_ratio": round(with_checkpoints / base, 2),
        }
    finally:
        plain.stop()
        checked.stop()


def run(quick: bool) -> dict[str, Any]:
    params = QUICK if quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pgl-bench-persist-") as tmp:
        data_dir = Path(tmp) / "alpha-data"
        node = start_node("alpha", data_dir)
        progress(f"node at {node.address} (pid {node.pid}, {node.launcher}), data in {data_dir}")
        try:
            client = HostClient()
            progress("fsync cost of the data dir's filesystem")
            figures.update(fsync_cost(data_dir))
            progress(f"{params['cycles']} deactivate/activate cycles")
            figures.update(park_and_wake_cycles(client, node.address, params["cycles"], params["warmup_cycles"]))
            progress(f"{params['oneway']} oneway + {params['sync']} sync messages queued for a parked paglet")
            figures.update(durable_queue(client, node.address, params["oneway"], params["sync"]))
        finally:
            node.stop()
        launcher = node.launcher
        progress("checkpoint overhead on sync round trips")
        figures.update(checkpoint_overhead(Path(tmp), 300 if quick else 1000))
    return report(
        figures, GOALS, quick=quick, started=started, load_before=load_before[0],
        python=platform.python_version(), node_launcher=launcher, params=params,
    )  # fmt: skip


if __name__ == "__main__":
    main("paglets persistence benchmarks", run)

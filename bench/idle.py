"""Idle parking at scale: 100,000 addressable paglets on one node, then 1,000 random ones messaged.

Run ``python bench/idle.py [--quick]``; prints ONE JSON object.

One node process (``bench/idle_node.py``) creates the paglets parked
(``Host.create_parked``: one durable record each, 8 writers at once;
nothing runs), then this process sends ``hit`` to ``messages`` paglets
picked at random, one at a time, each a sync send through a PagletProxy: the
node wakes the paglet (forks its worker, runs ``on_creation``), delivers,
and the reply comes back. The paglets park themselves again after 2 s idle
(``IDLE_TIMEOUT``), so at most a few hundred workers run at once.

Figures: creation rate; disk per parked paglet (file bytes and allocated
blocks under ``inactive/``); the node process's RSS with everything parked
and after the messages (workers are separate processes, listed apart);
wake + reply p50/p99. Goal: p50 <= 15 ms. ``--quick``: 2,000 paglets, 300
messages.
"""

from __future__ import annotations

import os
import random
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
from bench.idle_node import sleeper_id  # noqa: E402
from bench.node_process import start_script  # noqa: E402
from paglets.client.host_client import HostClient  # noqa: E402
from paglets.core.messages import Message  # noqa: E402

GOALS: dict[str, tuple[str, float]] = {"wake_reply_p50_ms": ("<=", 15.0)}
FULL = {"paglets": 100_000, "messages": 1000}
QUICK = {"paglets": 2000, "messages": 300}
CREATE_TIMEOUT = 1800.0  # seconds the node may take to create the paglets


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def children_rss_mib(pid: int) -> tuple[int, float]:
    """(count, total RSS) of the node's descendants: its template process and workers."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent:
                found.append(child)
                todo.append(child)
    total = 0.0
    for child in found:
        try:
            total += rss_mib(child)
        except OSError:
            continue
    return len(found), round(total, 1)


def disk_use(directory: Path) -> tuple[int, int, int]:
    """(record files, bytes in them, bytes allocated on disk) under ``directory``."""
    files = size = blocks = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.endswith(".mpk"):
                stat = entry.stat()
                files += 1
                size += stat.st_size
                blocks += stat.st_blocks * 512
    return files, size, blocks


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    count, messages = sizes["paglets"], sizes["messages"]
    figures: dict[str, Any] = {"cpus": os.cpu_count(), "paglets": count, "messages": messages, **source_version()}
    load_before = os.getloadavg()[0]
    data = Path(tempfile.mkdtemp(prefix="pgl-bench-idle-"))
    progress(f"creating {count} parked paglets")
    node = start_script("bench.idle_node", "idle", data / "idle", "--parked", str(count), timeout=CREATE_TIMEOUT)
    client = HostClient(timeout=30)
    try:
        created = next((float(line.split()[2]) for line in node.startup_lines if line.startswith("created ")), None)
        files, size, blocks = disk_use(data / "idle" / "inactive")
        figures.update(
            parked_records=files,
            disk_bytes_per_parked=round(size / max(files, 1), 1),
            disk_allocated_per_parked=round(blocks / max(files, 1), 1),
            node_rss_parked_mib=rss_mib(node.pid),
        )
        if created is not None:
            figures["create_parked_per_s"] = round(count / created, 1)
        progress(f"messaging {messages} random paglets")
        picks = random.Random(7).sample(range(count), messages)
        times: list[float] = []
        for number in picks:
            proxy = client.proxy(node.address, sleeper_id(number))
            started = time.perf_counter()
            reply = proxy.send(Message("hit"))
            times.append(time.perf_counter() - started)
            if reply[0] != number:
                raise RuntimeError(f"paglet {sleeper_id(number)} answered {reply!r}")
        workers, workers_rss = children_rss_mib(node.pid)
        figures.update(
            wake_reply_p50_ms=round(statistics.median(times) * 1000, 2),
            wake_reply_p99_ms=round(percentile(times, 0.99) * 1000, 2),
            wake_reply_mean_ms=round(statistics.fmean(times) * 1000, 2),
            node_rss_after_mib=rss_mib(node.pid),
            node_children_after=workers,
            node_children_rss_after_mib=workers_rss,
        )
    finally:
        node.stop()
    figures["loadavg_1m_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    figures["goals"] = judge(figures, GOALS)
    return figures


if __name__ == "__main__":
    main("Idle parking at scale", run, "2,000 paglets and 300 messages")

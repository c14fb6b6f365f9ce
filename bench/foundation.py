"""Foundation benchmarks: the speed goals, measured in one run next to the raw baseline.

Run ``python bench/foundation.py [--quick]``; it prints ONE JSON object on
stdout (progress goes to stderr). The shape mirrors the raw baseline's three
processes: this process is the client, the node runs in its own process
(:mod:`bench.node_process`), and every paglet runs in its own worker process
forked by the node's template process.

One function per figure; each cleans up the paglets it creates. Timings are
medians (and tail percentiles) because this machine is small and noisy.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/foundation.py` puts bench/, not the repo, on sys.path
    sys.path.insert(0, str(ROOT))

import zmq  # noqa: E402

from bench import raw_baseline  # noqa: E402
from bench.common import main, percentile, progress, report  # noqa: E402
from bench.node_process import NodeProcess, start_node  # noqa: E402
from paglets.client.host_client import HostClient  # noqa: E402
from paglets.client.proxy import PagletProxy  # noqa: E402
from paglets.core.messages import Message  # noqa: E402

ECHO = "paglets.examples.echo:EchoPaglet"
POOL_THREADS = 8
PROCESSED_TIMEOUT = 60.0
PROCESSED_POLL = 0.002  # between "count" queries while the paglet works through its backlog

GOALS: dict[str, tuple[str, float]] = {
    "sync_rtt_ratio": ("<=", 1.5),
    "oneway_msgs_per_s": (">=", 30_000),
    "create_p50_ms": ("<=", 9.0),
    "uss_per_idle_paglet_mib": ("<=", 4.5),
    "create_and_message_200_s": ("<=", 3.0),
}

FULL = {
    "rtt_samples": 3000, "rtt_warmup": 300, "oneway": 30_000, "creates": 60, "idle": 50, "batch": 200, "sequential": 1,
}  # fmt: skip
QUICK = {
    "rtt_samples": 1000, "rtt_warmup": 200, "oneway": 5_000, "creates": 20, "idle": 50, "batch": 200, "sequential": 0,
}  # fmt: skip


# -- helpers ----------------------------------------------------------------------
def uss_mib(pid: int) -> float | None:
    """Unique set size (Private_Clean + Private_Dirty) of ``pid`` in MiB, None if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            lines = rollup.read().splitlines()
    except OSError:
        return None
    kib = sum(int(line.split()[1]) for line in lines if line.startswith(("Private_Clean:", "Private_Dirty:")))
    return kib / 1024


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            return raw.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def template_pid(node_pid: int) -> int | None:
    """The node's template process: its child running ``paglets.node.procs.template_process``."""
    for child in children_of(node_pid):
        if "paglets.node.procs.template_process" in cmdline(child):
            return child
    return None


def create_many(client: HostClient, address: str, count: int, threads: int = POOL_THREADS) -> list[PagletProxy]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda _: client.create(address, ECHO), range(count)))


def dispose_all(proxies: list[PagletProxy], threads: int = POOL_THREADS) -> list[float]:
    """Dispose every proxy from a thread pool; the seconds each dispose took (failures are reported, not raised)."""

    def dispose(proxy: PagletProxy) -> float:
        start = time.perf_counter()
        try:
            proxy.dispose()
        except Exception as exc:  # a benchmark reports, it does not stop at cleanup
            progress(f"dispose of {proxy.agent_id} failed: {type(exc).__name__}: {exc}")
        return time.perf_counter() - start

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(dispose, proxies))


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


# -- figures ----------------------------------------------------------------------
def raw_rtt_samples(samples: int, warmup: int) -> list[float]:
    """Figure 1: round trips through a raw pyzmq client -> ROUTER broker -> worker, 3 processes."""
    return raw_baseline.measure_rtt(samples=samples, warmup=warmup)


def sync_rtt_samples(proxy: PagletProxy, samples: int, warmup: int) -> list[float]:
    """Figure 2: ``proxy.send(Message("echo", arg=n))`` round trips to one EchoPaglet, after a warm-up."""
    for i in range(warmup):
        proxy.send(Message("echo", arg=i))
    rtts = []
    clock = time.perf_counter
    for i in range(samples):
        start = clock()
        proxy.send(Message("echo", arg=i))
        rtts.append(clock() - start)
    return rtts


def round_trips(client: HostClient, address: str, samples: int, warmup: int, blocks: int = 3) -> dict[str, Any]:
    """Figures 1 and 2, interleaved in ``blocks`` so both see the same machine noise.

    Each block runs the raw baseline (its own three processes), then the
    paglets round trips; the node stays up throughout with its one paglet.
    """
    proxy = client.create(address, ECHO)
    raw: list[float] = []
    ours: list[float] = []
    try:
        for _ in range(blocks):
            raw.extend(raw_rtt_samples(samples // blocks, warmup))
            ours.extend(sync_rtt_samples(proxy, samples // blocks, warmup))
    finally:
        dispose_all([proxy])
    raw_p50 = statistics.median(raw)
    return {
        "raw_rtt_p50_us": round(raw_p50 * 1e6, 1),
        "raw_rtt_p99_us": round(percentile(raw, 0.99) * 1e6, 1),
        "sync_rtt_p50_us": round(statistics.median(ours) * 1e6, 1),
        "sync_rtt_p90_us": round(percentile(ours, 0.90) * 1e6, 1),
        "sync_rtt_p99_us": round(percentile(ours, 0.99) * 1e6, 1),
        "sync_rtt_ratio": round(statistics.median(ours) / raw_p50, 2),
        "rtt_samples_each": len(ours),
        "rtt_blocks": blocks,
    }


def wait_all_handled(proxy: PagletProxy, adds: int, queries: int) -> int:
    """Query "count" until the paglet handled ``adds`` oneway adds; returns the queries made so far.

    EchoPaglet's "count" is every message it handled, this query included,
    and these queries run one after another, so a query's answer is at least
    ``adds + queries`` exactly when every add is done. The query waits behind
    the backlog in the mailbox, so one or two usually suffice.
    """
    deadline = time.monotonic() + PROCESSED_TIMEOUT
    while True:
        queries += 1
        handled = proxy.send("count")
        if handled >= adds + queries:
            return queries
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"paglet {proxy.agent_id} processed {handled - queries} of {adds} oneway messages "
                f"within {PROCESSED_TIMEOUT:g} s"
            )
        time.sleep(PROCESSED_POLL)


def oneway_throughput(client: HostClient, address: str, count: int, warmup: int = 500) -> dict[str, Any]:
    """Figure 3: ``count`` oneway "add" messages to one paglet, timed until it has PROCESSED them all."""
    proxy = client.create(address, ECHO)
    try:
        message = Message("add", arg=1)
        for _ in range(warmup):  # warm the path and the paglet's handler threads
            client.send_oneway(address, proxy.agent_id, message)
        client.flush(address)
        queries = wait_all_handled(proxy, warmup, 0)
        start = time.perf_counter()
        for _ in range(count):
            client.send_oneway(address, proxy.agent_id, message)
        client.flush(address)
        accepted = time.perf_counter() - start
        final_queries = wait_all_handled(proxy, warmup + count, queries) - queries
        processed = time.perf_counter() - start
    finally:
        dispose_all([proxy])
    return {
        "oneway_msgs_per_s": round(count / processed),
        "oneway_accepted_msgs_per_s": round(count / accepted),
        "oneway_count": count,
        "oneway_processed_s": round(processed, 3),
        "oneway_final_count_queries": final_queries,
    }


def create_latency(client: HostClient, address: str, count: int) -> dict[str, Any]:
    """Figure 4: ``HostClient.create`` latency from the client, sequential; dispose timed for context."""
    warm = client.create(address, ECHO)  # the first create after start-up may pay one-off costs
    proxies: list[PagletProxy] = [warm]
    creates: list[float] = []
    disposes: list[float] = []
    try:
        for _ in range(count):
            took, proxy = timed(lambda: client.create(address, ECHO))
            creates.append(took)
            proxies.append(proxy)
        while len(proxies) > 1:
            proxy = proxies.pop()
            took, _ = timed(proxy.dispose)
            disposes.append(took)
    finally:
        dispose_all(proxies)
    return {
        "create_p50_ms": round(statistics.median(creates) * 1e3, 2),
        "create_p90_ms": round(percentile(creates, 0.90) * 1e3, 2),
        "create_count": count,
        "dispose_p50_ms": round(statistics.median(disposes) * 1e3, 2),
    }


def idle_memory(client: HostClient, node: NodeProcess, count: int) -> dict[str, Any]:
    """Figure 5: median USS of ``count`` idle paglets' workers, plus the node and its template process."""
    proxies = create_many(client, node.address, count)
    try:
        for proxy in proxies:  # each paglet has handled one message: "idle", not "never used"
            proxy.send(Message("echo", arg=1))
        time.sleep(0.5)  # let start-up allocations settle (a heartbeat or so)
        ours = {p.agent_id for p in proxies}
        pids = [a["pid"] for a in client.list_agents(node.address) if a["agent_id"] in ours and a.get("pid")]
        uss = [v for v in (uss_mib(pid) for pid in pids) if v is not None]
        template = template_pid(node.pid)
        node_uss = uss_mib(node.pid)
        template_uss = uss_mib(template) if template else None
    finally:
        dispose_all(proxies)
    return {
        "uss_per_idle_paglet_mib": round(statistics.median(uss), 2),
        "uss_idle_paglet_min_max_mib": [round(min(uss), 2), round(max(uss), 2)],
        "uss_idle_paglets_measured": len(uss),
        "uss_node_mib": round(node_uss, 2) if node_uss is not None else None,
        "uss_template_mib": round(template_uss, 2) if template_uss is not None else None,
    }


def create_and_message(client: HostClient, address: str, count: int, threads: int = POOL_THREADS) -> dict[str, Any]:
    """Figure 6: wall time to create ``count`` paglets and send each one sync message.

    From a pool of ``threads`` client threads (1 = sequential), as a user
    starting many paglets would; the disposes afterwards are timed for context.
    """

    def one(i: int) -> PagletProxy:
        proxy = client.create(address, ECHO)
        proxy.send(Message("echo", arg=i))
        return proxy

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(one, i) for i in range(count)]
        proxies = [f.result() for f in futures if f.exception() is None]
        errors = [f.exception() for f in futures if f.exception() is not None]
    took = time.perf_counter() - start
    try:
        if errors:
            raise RuntimeError(f"{len(errors)} of {count} create+send failed; first: {errors[0]!r}")
    finally:
        dispose_start = time.perf_counter()
        disposes = dispose_all(proxies)
        dispose_wall = time.perf_counter() - dispose_start
    return {
        "s": round(took, 3),
        "threads": threads,
        "dispose_all_s": round(dispose_wall, 3),
        "dispose_p50_ms": round(statistics.median(disposes) * 1e3, 1),
        "dispose_max_ms": round(max(disposes) * 1e3, 1),
    }


# -- the run ----------------------------------------------------------------------
def run_phase(figures: dict[str, Any], name: str, measure: Callable[[], dict[str, Any]]) -> None:
    """Add one phase's figures; a failure is recorded under ``errors`` and the run goes on."""
    progress(name)
    try:
        figures.update(measure())
    except Exception as exc:
        progress(f"{name} failed: {type(exc).__name__}: {exc}")
        figures.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"


def measure_default_node(client: HostClient, node: NodeProcess, params: dict[str, int]) -> dict[str, Any]:
    """Figures 1-6 against a node started with default options."""
    address, batch = node.address, params["batch"]

    def batch_figures(threads: int, label: str) -> dict[str, Any]:
        detail = create_and_message(client, address, batch, threads)
        return {f"create_and_message_{batch}{label}_s": detail.pop("s"), f"create_and_message{label}_detail": detail}

    figures: dict[str, Any] = {}
    samples, warmup = params["rtt_samples"], params["rtt_warmup"]
    run_phase(figures, "round trips, raw and paglets", lambda: round_trips(client, address, samples, warmup))
    run_phase(figures, "oneway throughput", lambda: oneway_throughput(client, address, params["oneway"]))
    run_phase(figures, "create latency", lambda: create_latency(client, address, params["creates"]))
    run_phase(figures, "idle memory", lambda: idle_memory(client, node, params["idle"]))
    run_phase(figures, f"create and message {batch}, {POOL_THREADS} threads", lambda: batch_figures(POOL_THREADS, ""))
    if params.get("sequential"):
        run_phase(figures, f"create and message {batch}, sequential", lambda: batch_figures(1, "_sequential"))
    return figures


def measure_preloaded_node(client: HostClient, node: NodeProcess, params: dict[str, int]) -> dict[str, Any]:
    """Figures 4 and 5 again, on a node whose template process preloaded the paglet's module."""
    figures: dict[str, Any] = {}
    run_phase(figures, "create latency, preloaded", lambda: create_latency(client, node.address, params["creates"]))
    run_phase(figures, "idle memory, preloaded", lambda: idle_memory(client, node, params["idle"]))
    keep = ("create_p50_ms", "create_p90_ms", "uss_per_idle_paglet_mib", "uss_template_mib", "errors")
    return {f"{name}_preload": figures[name] for name in keep if name in figures}


def with_node(
    tmp: Path,
    name: str,
    extra: tuple[str, ...],
    measure: Callable[..., dict[str, Any]],
    params: dict[str, int],
) -> tuple[dict[str, Any], str]:
    node = start_node(name, tmp / f"{name}-data", *extra)
    try:
        progress(f"node {name} at {node.address} (pid {node.pid}, {node.launcher}) {' '.join(extra)}".rstrip())
        return measure(HostClient(), node, params), node.launcher
    finally:
        node.stop()


def run(quick: bool) -> dict[str, Any]:
    params = QUICK if quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pgl-bench-") as tmp:
        measured, used = with_node(Path(tmp), "bench", (), measure_default_node, params)
        figures.update(measured)
        preload = ("--preload", ECHO.split(":")[0])
        measured, _ = with_node(Path(tmp), "bench-preload", preload, measure_preloaded_node, params)
        figures.update(measured)
    return report(
        figures, GOALS, quick=quick, started=started, load_before=load_before[0],
        python=platform.python_version(), pyzmq=zmq.__version__, libzmq=zmq.zmq_version(),
        # No bytecode cache means every worker compiles its paglet's module from source.
        python_env={k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")},
        node_launcher=used, params=params,
    )  # fmt: skip


if __name__ == "__main__":
    main("paglets foundation benchmarks", run, "fewer samples (about 30 s)")

"""Artifact benchmarks: a large file moved between two node processes, against raw pyzmq moving the same bytes.

Run ``python bench/artifacts.py [--quick]``; prints ONE JSON object. Two
``paglets-node`` processes on loopback. A file (1 GiB; 256 MiB with
``--quick``) is uploaded to alpha, then beta fetches it from alpha
(``HostClient.fetch_artifact``: node to node, chunks in a window, written to
a ``.part``, sha256 checked, fsync'd, renamed). The raw baseline, timed in
the same run and interleaved with it, is two plain processes: one reads the
file in 1 MiB pieces and PUSHes them, the other PULLs and writes them to a
file and fsyncs it (high-water marks of 16 messages: a window too). Neither
side of the raw transfer hashes anything.

A full run also moves 2 GiB (512 MiB with ``--quick``) from alpha to beta
once more while watching both nodes' resident memory: VmHWM, reset through
``/proc/PID/clear_refs`` before the move, minus VmRSS at that moment.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import judge, main, progress, source_version  # noqa: E402
from bench.node_process import start_node  # noqa: E402
from paglets.client.host_client import HostClient  # noqa: E402

MIB = 1024 * 1024
GOALS = {
    "fetch_vs_raw_ratio": (">=", 0.7),
    "rss_growth_max_mib": ("<=", 64.0),
}
FULL = {"size_mib": 1024, "rounds": 3, "rss_size_mib": 2048}
QUICK = {"size_mib": 256, "rounds": 2, "rss_size_mib": 512}
NODE_FLAGS = ("--artifact-max-bytes", str(8192 * MIB), "--artifact-storage-quota-bytes", str(16384 * MIB))
RAW_HWM = 16


def write_file(path: Path, size: int) -> str:
    """``size`` bytes, no two MiB alike, written one MiB at a time; the sha256."""
    block = bytearray(os.urandom(MIB))
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for index in range(size // MIB):
            block[:8] = index.to_bytes(8, "big")
            handle.write(block)
            digest.update(block)
    return digest.hexdigest()


# -- raw pyzmq ------------------------------------------------------------------------------------
def _raw_receiver(target: str, size: int, ports: Any, done: Any) -> None:
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.rcvhwm = RAW_HWM
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    ports.put(port)
    received = 0
    with open(target, "wb") as handle:
        while received < size:
            chunk = sock.recv()
            handle.write(chunk)
            received += len(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    done.put(received)
    sock.close(0)


def _raw_sender(source: str, port: int, go: Any) -> None:
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.sndhwm = RAW_HWM
    sock.linger = -1
    sock.connect(f"tcp://127.0.0.1:{port}")
    go.wait()
    with open(source, "rb") as handle:
        while chunk := handle.read(MIB):
            sock.send(chunk)
    sock.close()


def raw_transfer(source: Path, target: Path, size: int) -> float:
    """Seconds for raw pyzmq to move ``source`` into ``target`` between two fresh processes (fsync'd)."""
    ctx = mp.get_context("spawn")
    ports, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    receiver = ctx.Process(target=_raw_receiver, args=(str(target), size, ports, done))
    receiver.start()
    sender = ctx.Process(target=_raw_sender, args=(str(source), ports.get(timeout=30), go))
    sender.start()
    time.sleep(0.5)  # let the sender connect: only the transfer is timed
    started = time.perf_counter()
    go.set()
    received = done.get(timeout=600)
    elapsed = time.perf_counter() - started
    sender.join(30)
    receiver.join(30)
    target.unlink()
    assert received == size, (received, size)
    return elapsed


# -- paglets ----------------------------------------------------------------------------------------
def fetch_once(client: HostClient, beta: str, ref: Any) -> float:
    started = time.perf_counter()
    on_beta = client.fetch_artifact(beta, ref)
    elapsed = time.perf_counter() - started
    assert (on_beta.id, on_beta.size) == (ref.id, ref.size)
    client.delete_artifact(on_beta)
    return elapsed


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> int:
    """Reset the process's VmHWM to its VmRSS; the VmRSS in bytes."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear:
        clear.write("5")
    return status_kib(pid, "VmRSS") * 1024


def rss_move(client: HostClient, alpha: Any, beta: Any, tmp: Path, size: int) -> dict[str, Any]:
    """Move ``size`` bytes alpha -> beta once, watching both nodes' peak resident memory."""
    source = tmp / "rss.bin"
    write_file(source, size)
    start_alpha = reset_peak(alpha.pid)
    ref = client.upload_artifact(alpha.address, source)
    upload_growth = status_kib(alpha.pid, "VmHWM") * 1024 - start_alpha
    source.unlink()
    start_alpha, start_beta = reset_peak(alpha.pid), reset_peak(beta.pid)
    seconds = fetch_once(client, beta.address, ref)
    growth = {
        "alpha_upload": upload_growth,
        "alpha_send": status_kib(alpha.pid, "VmHWM") * 1024 - start_alpha,
        "beta_fetch": status_kib(beta.pid, "VmHWM") * 1024 - start_beta,
    }
    client.delete_artifact(ref)
    return {
        "rss_move_mib": size // MIB,
        "rss_move_mib_s": round(size / MIB / seconds, 1),
        **{f"rss_growth_{name}_mib": round(value / MIB, 1) for name, value in growth.items()},
        "rss_growth_max_mib": round(max(growth.values()) / MIB, 1),
    }


def run(quick: bool) -> dict[str, Any]:
    params = QUICK if quick else FULL
    size = params["size_mib"] * MIB
    figures: dict[str, Any] = {"size_mib": params["size_mib"]}
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pgl-bench-art-") as name:
        tmp = Path(name)
        source = tmp / "source.bin"
        progress(f"writing {params['size_mib']} MiB")
        write_file(source, size)
        alpha = start_node("alpha", tmp / "alpha-data", *NODE_FLAGS)
        beta = start_node("beta", tmp / "beta-data", *NODE_FLAGS)
        try:
            client = HostClient(timeout=60)
            progress("upload to alpha")
            t0 = time.perf_counter()
            ref = client.upload_artifact(alpha.address, source)
            figures["upload_with_hash_mib_s"] = round(size / MIB / (time.perf_counter() - t0), 1)
            t0 = time.perf_counter()
            client.download_artifact(ref, tmp / "download.bin")
            figures["download_mib_s"] = round(size / MIB / (time.perf_counter() - t0), 1)
            (tmp / "download.bin").unlink()
            raw, fetched = [], []
            for round_index in range(params["rounds"]):  # interleaved: both see the same noise
                progress(f"round {round_index + 1}: raw pyzmq, then alpha -> beta")
                raw.append(raw_transfer(source, tmp / "raw.bin", size))
                fetched.append(fetch_once(client, beta.address, ref))
            source.unlink()
            client.delete_artifact(ref)
            figures["raw_mib_s"] = round(size / MIB / statistics.median(raw), 1)
            figures["fetch_mib_s"] = round(size / MIB / statistics.median(fetched), 1)
            figures["fetch_vs_raw_ratio"] = round(statistics.median(raw) / statistics.median(fetched), 3)
            figures["raw_s"] = [round(s, 3) for s in raw]
            figures["fetch_s"] = [round(s, 3) for s in fetched]
            progress(f"{params['rss_size_mib']} MiB alpha -> beta, watching memory")
            figures.update(rss_move(client, alpha, beta, tmp, params["rss_size_mib"] * MIB))
        finally:
            alpha.stop()
            beta.stop()
    goals = judge(figures, GOALS)
    return {
        **figures,
        "goals": goals,
        "all_goals_pass": all(g["pass"] for g in goals.values()),
        "cpu_count": os.cpu_count(),
        "mode": "quick" if quick else "full",
        "source": source_version(),
        "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "run_s": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    main("paglets artifact benchmarks", run)

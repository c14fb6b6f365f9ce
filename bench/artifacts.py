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
import multiprocessing.connection
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

from bench.common import main, progress, report  # noqa: E402
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
# Each side of the raw pair reports on its own one-way pipe; the parent waits on those pipes and on
# the children's sentinels together, so a child that dies or stalls ends the run at once with what
# it got so far, instead of leaving the parent (and multiprocessing's exit hook) waiting forever.
RAW_STEP_S = 60.0  # longest wait for one step: a start, a connect, one chunk; over it the pair is broken


class RawTransferError(RuntimeError):
    """The raw pyzmq baseline did not move the file: which side, where, and how many bytes got across."""


def _raw_receiver(target: str, size: int, report: Any) -> None:
    """PULL ``size`` bytes into ``target`` and fsync it.

    Reports ("port", p), then ("received", n) or ("failed", n, why)."""
    received = 0
    try:
        with zmq.Context() as ctx, ctx.socket(zmq.PULL) as sock:
            sock.rcvhwm = RAW_HWM
            sock.rcvtimeo = int(RAW_STEP_S * 1000)  # zmq.Again instead of waiting forever for a chunk
            sock.linger = 0
            report.send(("port", sock.bind_to_random_port("tcp://127.0.0.1")))
            with open(target, "wb") as handle:
                while received < size:
                    chunk = sock.recv()
                    handle.write(chunk)
                    received += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        report.send(("received", received))
    except Exception as exc:  # the parent raises it, with the byte count
        report.send(("failed", received, f"{type(exc).__name__}: {exc}"))


def _raw_sender(source: str, port: int, report: Any) -> None:
    """PUSH ``source`` to ``port`` in 1 MiB pieces once the parent says ("go",) on ``report``.

    Reports ("connected",), then ("sent", n) or ("failed", n, why). Every wait is bounded: a PUSH
    blocks while its peer is away, and linger -1 would make close wait forever for a receiver that is gone."""
    sent = 0
    try:
        with zmq.Context() as ctx, ctx.socket(zmq.PUSH) as sock:
            sock.sndhwm = RAW_HWM
            sock.sndtimeo = sock.linger = int(RAW_STEP_S * 1000)
            monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            sock.connect(f"tcp://127.0.0.1:{port}")
            if not monitor.poll(int(RAW_STEP_S * 1000)):  # only the transfer is timed, not the connect
                raise TimeoutError(f"no ZMTP handshake with 127.0.0.1:{port} in {RAW_STEP_S:g} s")
            sock.disable_monitor()
            monitor.close(0)
            report.send(("connected",))
            # A pipe, not a multiprocessing.Event: Event.set() waits for every waiter to wake, so a
            # sender that died waiting would hang the parent in set().
            if not report.poll(RAW_STEP_S) or report.recv() != ("go",):
                raise TimeoutError(f"no go from the parent in {RAW_STEP_S:g} s")
            with open(source, "rb") as handle:
                while chunk := handle.read(MIB):
                    sock.send(chunk)
                    sent += len(chunk)
        report.send(("sent", sent))
    except Exception as exc:
        report.send(("failed", sent, f"{type(exc).__name__}: {exc}"))


class _RawSide:
    """One child of the raw pair, its report pipe, and the last thing it said."""

    def __init__(self, ctx: Any, name: str, target: Any, args: tuple[Any, ...]):
        self.name = name
        self.inbox, outbox = ctx.Pipe()  # duplex: the sender gets its go on it
        self.proc = ctx.Process(target=target, args=(*args, outbox), name=f"raw-{name}", daemon=True)
        self.proc.start()
        outbox.close()  # ours closed: the inbox sees EOF when the child is gone
        self.last: tuple[Any, ...] = ("started",)

    def state(self) -> str:
        return f"{self.name} (pid {self.proc.pid}, exit code {self.proc.exitcode}) last said {self.last}"

    def stop(self) -> None:
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.inbox.close()


def _raw_await(sides: list[_RawSide], wanted: _RawSide, kinds: tuple[str, ...], timeout: float) -> tuple[Any, ...]:
    """The next report of ``wanted`` of one of ``kinds``; raises at once if any side fails, dies or goes quiet."""
    deadline = time.monotonic() + timeout
    listening = {side.inbox: side for side in sides}
    while (remaining := deadline - time.monotonic()) > 0:  # each pass reads a report or drops a finished side
        ready = mp.connection.wait(list(listening), timeout=remaining)
        for inbox in ready:
            side = listening[inbox]
            try:
                side.last = inbox.recv()
            except (EOFError, OSError):  # gone without a word: killed, or died starting up
                side.proc.join(5)
                raise RawTransferError(f"raw baseline: {side.name} exited silently; {_raw_states(sides)}") from None
            if side.last[0] == "failed":
                raise RawTransferError(f"raw baseline: {side.name} failed after {side.last[1]} bytes: "
                                       f"{side.last[2]}; {_raw_states(sides)}")  # fmt: skip
            if side is wanted and side.last[0] in kinds:
                return side.last
            if side.last[0] in ("received", "sent"):
                del listening[inbox]  # its last word; its EOF is no news
    waited_for = "/".join(kinds)
    raise RawTransferError(f"raw baseline: no {waited_for} from {wanted.name} in {timeout:g} s; {_raw_states(sides)}")


def _raw_states(sides: list[_RawSide]) -> str:
    return "; ".join(side.state() for side in sides)


def raw_transfer(source: Path, target: Path, size: int) -> float:
    """Seconds for raw pyzmq to move ``source`` into ``target`` between two fresh processes (fsync'd)."""
    ctx = mp.get_context("spawn")
    sides: list[_RawSide] = []
    try:
        receiver = _RawSide(ctx, "receiver", _raw_receiver, (str(target), size))
        sides.append(receiver)
        port = _raw_await(sides, receiver, ("port",), RAW_STEP_S)[1]
        sender = _RawSide(ctx, "sender", _raw_sender, (str(source), port))
        sides.append(sender)
        _raw_await(sides, sender, ("connected",), 2 * RAW_STEP_S)  # its start-up, then the handshake
        started = time.perf_counter()
        try:
            sender.inbox.send(("go",))
        except OSError as exc:
            raise RawTransferError(f"raw baseline: cannot tell the sender to go ({exc}); {_raw_states(sides)}") from exc
        # Each chunk comes within RAW_STEP_S or the receiver says so; the deadline is only a backstop.
        received = _raw_await(sides, receiver, ("received",), RAW_STEP_S + size / MIB)[1]
        elapsed = time.perf_counter() - started
    finally:
        for side in sides:
            side.stop()
        target.unlink(missing_ok=True)
    if received != size:
        raise RawTransferError(f"raw baseline: the receiver got {received} bytes of {size}")
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
    return report(figures, GOALS, quick=quick, started=started, load_before=load_before)


if __name__ == "__main__":
    main("paglets artifact benchmarks", run)

"""Start a paglets node in its own process (and its own process group) for benchmarks.

Runs the real ``paglets-node`` CLI (``python -m paglets.cli.node``) in a new
session, so :meth:`NodeProcess.stop` can kill the node, its template process
and every worker with one ``killpg``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1


class NodeProcess:
    """A node process: its address, its pid, and how to make it go away."""

    def __init__(self, proc: subprocess.Popen, address: str, launcher: str, log_path: Path):
        self.proc = proc
        self.address = address
        self.launcher = launcher
        self.log_path = log_path
        self.startup_lines: list[str] = []  # what it printed up to ``ready``

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the node, then SIGKILL its whole process group whatever happened."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)


def node_command(name: str, data_dir: Path, extra: tuple[str, ...]) -> list[str]:
    return [
        sys.executable, "-m", "paglets.cli.node", "--name", name, "--bind", "127.0.0.1",
        "--port", "0", "--http-port", "0", "--data-dir", str(data_dir), *extra,
    ]  # fmt: skip


def start_node(name: str, data_dir: Path, *extra: str) -> NodeProcess:
    """Start ``paglets-node`` and return once it printed its address and ``ready``."""
    return _start("cli", name, data_dir, extra)


def start_script(module: str, name: str, data_dir: Path, *extra: str, timeout: float = START_TIMEOUT) -> NodeProcess:
    """Start ``python -m MODULE NAME DATA_DIR EXTRA...`` (a node of a benchmark's own making) and return
    once it printed ``address ...`` and ``ready``."""
    command = [sys.executable, "-m", module, name, str(data_dir), *extra]
    return _start(module.rsplit(".", 1)[-1], name, data_dir, extra, command, timeout)


def _start(
    launcher: str, name: str, data_dir: Path, extra: tuple[str, ...], command: list[str] | None = None,
    timeout: float = START_TIMEOUT,
) -> NodeProcess:  # fmt: skip
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    log_path = data_dir.parent / f"{name}-{launcher}.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            command or node_command(name, data_dir, extra),
            stdout=subprocess.PIPE, stderr=log_file, env=env, cwd=ROOT, text=True, start_new_session=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    # One thread reads stdout for the node's whole life: the start-up lines
    # come through ``lines`` (so waiting for them has a deadline) and a chatty
    # node never blocks on a full pipe.
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    address = None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line.rstrip("\n"))
            if line.startswith("address "):
                address = line.split()[1]
            elif line.startswith("ready") and address:
                node = NodeProcess(proc, address, launcher, log_path)
                node.startup_lines = seen
                return node
    except BaseException:
        _kill_group(proc)
        raise
    _kill_group(proc)
    raise RuntimeError(f"{launcher} node {name} did not start: {log_path.read_text()[-1500:]}")


def _die_with_parent() -> None:
    """In the node child: get SIGTERM if the benchmark dies without cleaning up (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _read_lines(stream, lines: queue.Queue) -> None:
    with contextlib.suppress(ValueError, OSError):
        for line in stream:
            lines.put(line)
    lines.put(None)

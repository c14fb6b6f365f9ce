"""The template process ("zygote") that forks paglet workers.

Starting a Python interpreter per paglet costs tens of milliseconds; forking
a process that has already imported paglets, zmq and msgpack costs a few.
The node starts the zygote once with ``subprocess``, so it is single-threaded
whatever the node looks like, and holds no zmq context when it forks.

Pipe protocol (node <-> zygote, each message a 4-byte big-endian length plus
a msgpack map):

=====================================  ==================================
node -> zygote                         zygote -> node
=====================================  ==================================
``{"fork": seq, "spec": {...}}``       ``{"ready": true}`` once preloaded
                                       ``{"forked": seq, "pid": n}``
                                       ``{"exited": pid, "code": n}``
                                       (negative code: killed by signal)
=====================================  ==================================

When the pipe from the node closes (the node stopped or died) the zygote
kills its workers and exits; workers also carry ``PR_SET_PDEATHSIG`` so they
die with the zygote. Where ``fork`` is unavailable :class:`Zygote` spawns
each worker as a fresh interpreter instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import itertools
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

import msgpack

from paglets.core.errors import HostError

log = logging.getLogger("paglets.zygote")
_LEN = struct.Struct(">I")
FORK_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


def write_frame(stream: IO[bytes], value: dict[str, Any]) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    stream.write(_LEN.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    head = _read_exactly(stream, _LEN.size)
    if head is None:
        return None
    body = _read_exactly(stream, _LEN.unpack(head)[0])
    return None if body is None else msgpack.unpackb(body, raw=False)


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# -- node side -------------------------------------------------------------------
class Zygote:
    """The node's handle on its template process (or, without fork, a spawner)."""

    def __init__(
        self,
        preload: list[str],
        on_forked: Callable[[str, int], None],
        on_exit: Callable[[int, int], None],
        *,
        use_fork: bool | None = None,
    ):
        self._preload = list(preload)
        self._on_forked = on_forked
        self._on_exit = on_exit
        self._use_fork = hasattr(os, "fork") if use_fork is None else use_fork
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._forks: dict[int, tuple[str, Future[int]]] = {}
        self._ready: Future[bool] = Future()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 30.0) -> None:
        if not self._use_fork:
            return
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "paglets.runtime.zygote", *self._preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env=_child_env(),
        )
        self._reader = threading.Thread(target=self._read_loop, name="paglets-zygote-reader", daemon=True)
        self._reader.start()
        try:
            self._ready.result(timeout)
        except Exception as exc:
            self.stop()
            raise HostError(f"paglet template process did not start: {exc}") from None

    def fork(self, spec: dict[str, Any]) -> int:
        """Start a worker for ``spec``; returns its pid."""
        if not self._use_fork:
            return self._spawn(spec)
        future: Future[int] = Future()
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                raise HostError("paglet template process is not running")
            seq = next(self._seq)
            self._forks[seq] = (spec["agent_id"], future)
            try:
                write_frame(self._proc.stdin, {"fork": seq, "spec": spec})
            except (BrokenPipeError, ValueError) as exc:
                self._forks.pop(seq, None)
                raise HostError(f"paglet template process is gone: {exc}") from None
        return future.result(FORK_TIMEOUT)

    def _read_loop(self) -> None:
        stdout = self._proc.stdout
        while True:
            try:
                frame = read_frame(stdout)
            except Exception:
                log.exception("zygote: unreadable frame")
                frame = None
            if frame is None:
                break
            if "exited" in frame:
                self._on_exit(int(frame["exited"]), int(frame["code"]))
            elif "forked" in frame:
                agent_id, future = self._forks.pop(int(frame["forked"]), (None, None))
                if future is not None:
                    # Tell the node before reading on: this pid's exit may be next.
                    self._on_forked(agent_id, int(frame["pid"]))
                    future.set_result(int(frame["pid"]))
            elif "ready" in frame:
                self._ready.set_result(True)
            elif "error" in frame:
                self._ready.set_exception(HostError(str(frame["error"])))
        if not self._ready.done():
            self._ready.set_exception(HostError("template process exited during start-up"))
        for _agent_id, future in list(self._forks.values()):
            if not future.done():
                future.set_exception(HostError("paglet template process exited"))

    def _spawn(self, spec: dict[str, Any]) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-m", "paglets.runtime.zygote", "--spawn"], stdin=subprocess.PIPE, env=_child_env()
        )
        write_frame(proc.stdin, {"spec": spec})
        proc.stdin.close()
        self._on_forked(spec["agent_id"], proc.pid)

        def wait() -> None:
            self._on_exit(proc.pid, proc.wait())

        threading.Thread(target=wait, name=f"paglets-wait-{proc.pid}", daemon=True).start()
        return proc.pid

    def stop(self, timeout: float = 5.0) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(Exception):
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        with contextlib.suppress(Exception):
            proc.stdout.close()
        self._proc = None


def _child_env() -> dict[str, str]:
    """The node's environment, with paglets importable even if only sys.path (not PYTHONPATH) found it."""
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))


# -- zygote side -----------------------------------------------------------------
def _prctl(option: int, value: Any) -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _become_worker(spec: dict[str, Any], zygote_pid: int, fds: list[int]) -> None:
    """Runs in the forked child: shed the zygote's plumbing, then serve."""
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    # Ctrl-C in a terminal reaches the whole process group; stopping workers is the node's job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote_pid:  # the zygote died between fork and prctl
        os._exit(0)
    _prctl(PR_SET_NAME, f"pgl-{spec['agent_id'][:11]}".encode())
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    for fd in (*fds, devnull):
        with contextlib.suppress(OSError):
            os.close(fd)
    _enter_worker(spec)


def _enter_worker(spec: dict[str, Any]) -> None:
    sys.path[:] = list(spec.get("sys_path") or sys.path)
    with contextlib.suppress(OSError):
        os.chdir(spec.get("cwd") or "/")
    from paglets.runtime.worker import worker_main

    worker_main(spec)


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the node
    children: set[int] = set()
    me = os.getpid()
    fds = [stdin.fileno(), stdout.fileno(), wake_r, wake_w]
    while True:
        try:
            readable, _, _ = select.select([stdin, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError, OSError):
                os.read(wake_r, 512)
            _reap(children, stdout)
        if stdin in readable:
            frame = read_frame(stdin)
            if frame is None:
                break
            spec = frame["spec"]
            pid = os.fork()
            if pid == 0:
                try:
                    _become_worker(spec, me, fds)
                finally:
                    os._exit(1)
            children.add(pid)
            write_frame(stdout, {"forked": frame["fork"], "pid": pid})
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _reap(children: set[int], stdout: IO[bytes]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        write_frame(stdout, {"exited": pid, "code": code})


def main(argv: list[str]) -> None:
    stdin = sys.stdin.buffer.raw  # unbuffered: select() must see every byte not yet read
    if argv[:1] == ["--spawn"]:
        frame = read_frame(stdin)
        if frame is not None:
            _enter_worker(frame["spec"])
        return
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from preloaded modules go to stderr, not the pipe
    try:
        import paglets.runtime.worker  # noqa: F401 - the point is to import it before forking

        for name in argv:
            importlib.import_module(name)
    except BaseException as exc:
        write_frame(stdout, {"error": f"preloading failed: {type(exc).__name__}: {exc}"})
        return
    gc.collect()
    gc.freeze()  # keep the collector from touching (and so copying) inherited pages
    write_frame(stdout, {"ready": True})
    _serve(stdin, stdout)


if __name__ == "__main__":
    main(sys.argv[1:])

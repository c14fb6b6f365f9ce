"""The node's handle on its template process, which forks paglet workers.

Starting a Python interpreter per paglet costs tens of milliseconds; forking
a process that has already imported paglets, zmq and msgpack costs a few.
The node starts the template process once with ``subprocess``, so it is single-threaded
whatever the node looks like, and holds no zmq context when it forks.

The node tells the template process which modules its paglets come from ("hot"
modules); the template process imports them once, so every later worker inherits them
(no import per paglet, and their pages stay shared). A module that starts a
thread at import would make forking unsafe: the template process then reports it
(``tainted``) and retires — it forks no more, keeps reporting on the workers
it has, and exits when they are gone — and the node starts a fresh template process
that leaves that module to each worker. The template process also keeps a small pool
of idle pre-forked workers, so starting a paglet does not even wait for a
fork. What runs inside the template process is :mod:`paglets.node.procs.template_main`.

Pipe protocol (node <-> template process, each message a 4-byte big-endian length plus
a msgpack map):

=====================================  ==================================
node -> template process                         template process -> node
=====================================  ==================================
``{"fork": seq, "spec": {...}}``       ``{"ready": true}`` once preloaded
``{"hot": [module], "sys_path": []}``  ``{"forked": seq, "pid": n}``
                                       ``{"tainted": module}`` (then retires)
                                       ``{"exited": pid, "code": n}``
                                       (negative code: killed by signal)
=====================================  ==================================

``spec`` is a :class:`~paglets.worker.spec.WorkerSpec` as :meth:`~paglets.worker.spec.WorkerSpec.to_wire`
gives it; the child checks it with ``WorkerSpec.from_wire`` before it becomes a worker.

When the pipe from the node closes (the node stopped or died) the template process
kills its workers and exits; workers also carry ``PR_SET_PDEATHSIG`` so they
die with the template process. Where ``fork`` is unavailable :class:`TemplateProcess` spawns
each worker as a fresh interpreter instead.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
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
from paglets.worker.spec import WorkerSpec

log = logging.getLogger("paglets.template process")
_LEN = struct.Struct(">I")
FORK_TIMEOUT = 10.0


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


class TemplateProcess:
    """The node's handle on its template process (or, without fork, a spawner)."""

    def __init__(
        self,
        preload: list[str],
        on_forked: Callable[[str, int], None],
        on_exit: Callable[[int, int], None],
        *,
        pool_size: int = 2,
        learn: bool = True,
        use_fork: bool | None = None,
    ):
        self._preload = list(preload)
        self._pool_size = max(0, pool_size)
        self._learn = learn
        self._on_forked = on_forked
        self._on_exit = on_exit
        self._use_fork = hasattr(os, "fork") if use_fork is None else use_fork
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._forks: dict[int, tuple[str, Future[int]]] = {}
        self._learned: dict[str, None] = {}  # modules paglets came from
        self._untrusted: set[str] = set()  # modules that start threads when imported
        self._sys_path: list[str] = []
        self._stopping = False
        self._retired: set[subprocess.Popen[bytes]] = set()
        self._replaced = threading.Condition(self._lock)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Launch the template process. With modules to preload, wait until it has imported them (a
        module that fails stops the node here); without, return at once: the first fork waits for it
        (frames sent before it is ready wait in the pipe), so a node serves while its template starts."""
        if self._use_fork:
            self._launch(timeout, wait=bool(self._preload))

    def _launch(self, timeout: float, *, wait: bool = True) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "paglets.node.procs.template_main", "--pool", str(self._pool_size), *self._preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env=_child_env(),
        )
        ready: Future[bool] = Future()
        with self._lock:
            self._proc = proc  # before its reader runs: a template that dies at once is then seen as ours
        threading.Thread(
            target=self._read_loop, args=(proc, ready), name="paglets-template process", daemon=True
        ).start()
        if wait:
            try:
                ready.result(timeout)
            except Exception as exc:
                with self._lock:
                    if self._proc is proc:
                        self._proc = None
                _end(proc, timeout)
                raise HostError(f"paglet template process did not start: {exc}") from None
        with self._lock:
            known = [m for m in self._learned if m not in self._untrusted]
            if known and self._proc is proc:
                with contextlib.suppress(HostError):
                    self._send_locked({"hot": known, "sys_path": self._sys_path})

    def fork(self, spec: WorkerSpec) -> int:
        """Start a worker for ``spec``; returns its pid."""
        if not self._use_fork:
            return self._spawn(spec)
        future: Future[int] = Future()
        with self._lock:
            seq = next(self._seq)
            self._forks[seq] = (spec.agent_id, future)
            try:
                self._send_locked({"fork": seq, "spec": spec.to_wire()})
            except HostError:
                self._forks.pop(seq, None)
                raise
        return future.result(FORK_TIMEOUT)

    def note_class(self, class_name: str, sys_path: list[str]) -> None:
        """A paglet of ``class_name`` starts: have the template import its module for the next ones."""
        module = class_name.split(":", 1)[0]
        if not self._use_fork or not self._learn or module in self._learned:
            return
        with self._lock:
            self._learned[module] = None
            self._sys_path = list(sys_path)
            with contextlib.suppress(HostError):
                self._send_locked({"hot": [module], "sys_path": self._sys_path})

    def _send_locked(self, frame: dict[str, Any]) -> None:
        if self._proc is None and self._retired and not self._stopping:
            self._replaced.wait(FORK_TIMEOUT)  # a replacement template is starting
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise HostError("paglet template process is not running")
        try:
            write_frame(proc.stdin, frame)
        except (BrokenPipeError, ValueError) as exc:
            raise HostError(f"paglet template process is gone: {exc}") from None

    def _read_loop(self, proc: subprocess.Popen[bytes], ready: Future[bool]) -> None:
        while True:
            try:
                frame = read_frame(proc.stdout)
            except Exception:
                log.exception("template process: unreadable frame")
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
                ready.set_result(True)
            elif "error" in frame:
                ready.set_exception(HostError(str(frame["error"])))
            elif "tainted" in frame:
                self._untrusted.add(str(frame["tainted"]))
                log.warning(
                    "module %s starts threads when imported; its paglets' workers will import it themselves",
                    frame["tainted"],
                )
                self._replace(proc)
        if not ready.done():
            ready.set_exception(HostError("template process exited during start-up"))
        reason = "exited"
        if ready.exception() is not None:  # it never became ready: say why to whoever waits on a fork
            reason = f"did not start: {ready.exception()}"
            log.error("paglet template process %s", reason)
        with self._lock:
            self._retired.discard(proc)
            if self._proc is not proc:
                return  # a retired template whose workers are all gone
            self._proc = None
            waiting = [future for _agent, future in self._forks.values()]
            self._forks.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(HostError(f"paglet template process {reason}"))
        _end(proc, 5.0)

    def _replace(self, old: subprocess.Popen[bytes]) -> None:
        """Retire ``old`` (it keeps its workers) and start a fresh template for new ones."""
        with self._lock:
            if self._proc is not old:
                return
            self._retired.add(old)
            self._proc = None
        if self._stopping:
            return
        try:
            self._launch(30.0)
        except HostError as exc:
            log.error("could not start a new paglet template process: %s", exc)
        with self._lock:
            self._replaced.notify_all()

    def _spawn(self, spec: WorkerSpec) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-m", "paglets.node.procs.template_main", "--spawn"],
            stdin=subprocess.PIPE,
            env=_child_env(),
        )
        write_frame(proc.stdin, {"spec": spec.to_wire()})
        proc.stdin.close()
        self._on_forked(spec.agent_id, proc.pid)

        def wait() -> None:
            self._on_exit(proc.pid, proc.wait())

        threading.Thread(target=wait, name=f"paglets-wait-{proc.pid}", daemon=True).start()
        return proc.pid

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        with self._lock:
            procs = [p for p in (self._proc, *self._retired) if p is not None]
            self._proc = None
            self._retired.clear()
            self._replaced.notify_all()
        for proc in procs:
            _end(proc, timeout)


def _end(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Close the pipe to a template process (it kills its workers and exits) and reap it."""
    with contextlib.suppress(Exception):
        proc.stdin.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    with contextlib.suppress(Exception):
        proc.stdout.close()


def _child_env() -> dict[str, str]:
    """The node's environment, with paglets importable even if only sys.path (not PYTHONPATH) found it."""
    package_root = str(Path(__file__).resolve().parents[3])
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))

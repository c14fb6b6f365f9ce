"""The template process itself: it forks paglet workers for its node.

Started by :class:`paglets.node.procs.template_process.TemplateProcess` as ``python -m
paglets.node.procs.template_main [--pool N] [preload modules...]``; the pipe
protocol and the reasons for a template process are described there. This
module is what runs inside it: the fork loop, the pool of idle workers, the
modules it learns to preload, and what a forked child does before it
becomes a worker.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import importlib
import logging
import os
import select
import signal
import sys
import threading
from typing import IO, Any

from paglets.core.errors import ProtocolError
from paglets.node.procs.template_process import read_frame, write_frame
from paglets.worker.spec import WorkerSpec

log = logging.getLogger("paglets.template")
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


def _prctl(option: int, value: Any) -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _detach(template_pid: int, keep_fd: int = -1) -> None:
    """In a freshly forked child: shed the template's signals and descriptors, die with the template."""
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    # Ctrl-C in a terminal reaches the whole process group; stopping workers is the node's job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != template_pid:  # the template process died between fork and prctl
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    # Keep stderr (logs) and our own pipe; the template process's pipes must not stay open in us.
    if keep_fd >= 3:
        os.closerange(3, keep_fd)
        os.closerange(keep_fd + 1, 65536)
    else:
        os.closerange(3, 65536)


def _enter_worker(wire: Any) -> None:
    """Become the worker ``wire`` (a :meth:`WorkerSpec.to_wire` map) describes."""
    try:
        spec = WorkerSpec.from_wire(wire)
    except ProtocolError as exc:
        print(f"paglet worker cannot start: {exc}", file=sys.stderr, flush=True)
        os._exit(1)
    _prctl(PR_SET_NAME, f"pgl-{spec.agent_id[:11]}".encode())
    if spec.sys_path:
        sys.path[:] = list(spec.sys_path)
    with contextlib.suppress(OSError):
        os.chdir(spec.cwd or "/")
    from paglets.worker.main import worker_main

    worker_main(spec)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _idle_worker(read_fd: int) -> None:
    """A pre-forked worker: wait for a paglet to run (or for the template process to let it go)."""
    _prctl(PR_SET_NAME, b"pgl-idle")
    stream = os.fdopen(read_fd, "rb", buffering=0)
    frame = read_frame(stream)
    if frame is None or "spec" not in frame:  # the template process is gone, or it renews its pool
        os._exit(0)
    stream.close()
    _enter_worker(frame["spec"])
    os._exit(1)


class _Template:
    """The template process process itself: its children, its pool of idle workers, the modules worth preloading."""

    HOT_LIMIT = 64

    def __init__(self, stdin: IO[bytes], stdout: IO[bytes], pool_size: int):
        self._stdin = stdin
        self._stdout = stdout
        self._pool_size = pool_size
        self._children: set[int] = set()
        self._idle: collections.deque[tuple[int, int]] = collections.deque()  # (pid, write end of its pipe)
        self._hot: dict[str, None] = {}
        self._me = os.getpid()
        self._retired = False

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the node
        while True:
            # Refill the pool only when nothing else is waiting: a burst of forks goes first.
            timeout = 0 if len(self._idle) < self._pool_size else None
            try:
                readable, _, _ = select.select([self._stdin, wake_r], [], [], timeout)
            except InterruptedError:
                continue
            if wake_r in readable:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.read(wake_r, 512)
                self._reap()
                if self._retired and not self._children:
                    return  # every worker of ours is gone
            if self._stdin in readable:
                frame = read_frame(self._stdin)
                if frame is None:
                    break
                self._handle(frame)
            elif not readable:
                self._add_idle()
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _handle(self, frame: dict[str, Any]) -> None:
        if "fork" in frame:
            pid = self._start(frame["spec"])
            write_frame(self._stdout, {"forked": frame["fork"], "pid": pid})
        elif "hot" in frame:
            self._learn(list(frame["hot"]), frame.get("sys_path"))

    def _start(self, spec: dict[str, Any]) -> int:
        """Hand ``spec`` (a WorkerSpec's wire map, checked by the child) to an idle worker, or fork one."""
        while self._idle:
            pid, pipe = self._idle.popleft()
            try:
                with os.fdopen(pipe, "wb") as stream:
                    write_frame(stream, {"spec": spec})
                return pid
            except OSError:
                continue  # that idle worker died; take the next
        pid = os.fork()
        if pid == 0:
            try:
                _detach(self._me)
                _enter_worker(spec)
            finally:
                os._exit(1)
        self._children.add(pid)
        return pid

    def _add_idle(self) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(write_fd)
                _detach(self._me, keep_fd=read_fd)
                _idle_worker(read_fd)
            finally:
                os._exit(1)
        os.close(read_fd)
        self._children.add(pid)
        self._idle.append((pid, write_fd))

    def _learn(self, modules: list[str], sys_path: list[str] | None) -> None:
        """The node starts paglets from ``modules``: import them here, so every later worker inherits them.

        A module that starts a thread when imported would make forking unsafe;
        the template process then reports it and exits, and the node starts a fresh one
        that leaves the module to each worker.
        """
        if sys_path:
            sys.path[:] = list(sys_path)
        learned = False
        for name in modules:
            if name in self._hot or name in sys.modules:
                continue
            self._hot[name] = None
            try:
                importlib.import_module(name)
            except BaseException as exc:  # even SystemExit: the worker that needs it reports the failure
                log.debug("template process could not preload %s: %s", name, exc)
                continue
            if _thread_count() > 1:
                # Forking from here is no longer safe: retire. Our workers keep running;
                # the node starts a fresh template for new ones.
                write_frame(self._stdout, {"tainted": name})
                self._retired = True
                self._pool_size = 0
                self._renew_pool()
                return
            learned = True
        if learned:
            gc.collect()
            gc.freeze()
            self._renew_pool()

    def _renew_pool(self) -> None:
        """Let idle workers forked before the last import go; the loop forks fresh ones."""
        while self._idle:
            _pid, pipe = self._idle.popleft()
            with contextlib.suppress(OSError):
                os.close(pipe)

    def _reap(self) -> None:
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._children.discard(pid)
            self._idle = collections.deque(item for item in self._idle if item[0] != pid)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            write_frame(self._stdout, {"exited": pid, "code": code})


def main(argv: list[str]) -> None:
    stdin = sys.stdin.buffer.raw  # unbuffered: select() must see every byte not yet read
    if argv[:1] == ["--spawn"]:
        frame = read_frame(stdin)
        if frame is not None:
            _enter_worker(frame["spec"])
        return
    pool_size = 0
    if argv[:1] == ["--pool"]:
        pool_size, argv = int(argv[1]), argv[2:]
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from preloaded modules go to stderr, not the pipe
    try:
        import paglets.worker.main  # noqa: F401 - the point is to import it before forking

        for name in argv:
            importlib.import_module(name)
    except BaseException as exc:
        write_frame(stdout, {"error": f"preloading failed: {type(exc).__name__}: {exc}"})
        return
    gc.collect()
    gc.freeze()  # keep the collector from touching (and so copying) inherited pages
    write_frame(stdout, {"ready": True})
    _Template(stdin, stdout, pool_size).serve()


if __name__ == "__main__":
    main(sys.argv[1:])

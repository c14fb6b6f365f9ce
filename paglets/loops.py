"""How other threads hand work to a loop thread that owns ZeroMQ sockets.

Sockets are not thread-safe, so a loop (the broker, a client reactor) owns its
sockets and everyone else asks it to act. A caller appends a callable to a
deque and, if the loop has not been woken since it last drained, pokes the
loop's inproc PULL socket from a PUSH socket owned by the calling thread.
The loop runs each callable in its own thread; :meth:`LoopChannel.call`
returns a Future the callable's result (or exception) completes.

A command that raises never takes the loop with it. What it raised fails
its Future, if anyone waits for one; and it is logged with its traceback
whenever it is not a :class:`~paglets.core.errors.PagletError` (a bug, not a
refusal) or nobody waits for the command (a :meth:`LoopChannel.post`).
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq

from paglets.core.errors import PagletError
from paglets.wire.frames import has_input

log = logging.getLogger("paglets.loops")
_channel_ids = itertools.count(1)
DOORBELLS_PER_THREAD = 16  # loops one thread keeps a doorbell to (each node run has its own loop)
_thread_state = threading.local()


class LoopChannel:
    """The inproc doorbell and command queue of one loop."""

    def __init__(self, ctx: zmq.Context, name: str):
        self._ctx = ctx
        self.name = name
        self.endpoint = f"inproc://paglets-loop-{next(_channel_ids)}-{name}"
        self._commands: collections.deque[tuple[Callable[[], Any], Future[Any] | None]] = collections.deque()
        self._woken = False
        self._closed = False
        self.loop_thread: threading.Thread | None = None
        self.pull: zmq.Socket | None = None

    # -- loop side -----------------------------------------------------------
    def bind(self) -> zmq.Socket:
        """Create and bind the PULL socket; call from the loop thread."""
        self.loop_thread = threading.current_thread()
        pull = self._ctx.socket(zmq.PULL)
        pull.linger = 0
        pull.bind(self.endpoint)
        self.pull = pull
        return pull

    def drain(self) -> None:
        """Run every queued command; call when the PULL socket is readable."""
        pull = self.pull
        assert pull is not None
        while has_input(pull):
            pull.recv()
        # Clear the flag before draining so a command appended meanwhile either
        # is drained now or pokes again.
        self._woken = False
        commands = self._commands
        while commands:
            fn, future = commands.popleft()
            self._run(fn, future)

    def _run(self, fn: Callable[[], Any], future: Future[Any] | None) -> None:
        if future is not None and not future.set_running_or_notify_cancel():
            return
        try:
            result = fn()
        except BaseException as exc:  # the loop outlives any one command
            if future is None or not isinstance(exc, PagletError):
                log.error("loop %s: a command failed: %r", self.name, exc, exc_info=exc)
            if future is not None:
                future.set_exception(exc)
            return
        if future is not None:
            future.set_result(result)

    def close(self) -> None:
        """Refuse new commands and fail the queued ones; call from the loop thread."""
        self._closed = True
        while self._commands:
            _fn, future = self._commands.popleft()
            if future is not None and not future.done():
                future.set_exception(RuntimeError("loop stopped"))
        if self.pull is not None:
            self.pull.close(0)
            self.pull = None

    # -- caller side ---------------------------------------------------------
    def in_loop(self) -> bool:
        return threading.current_thread() is self.loop_thread

    def post(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in the loop soon; nobody waits for it."""
        self._enqueue(fn, None)

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` in the loop; the Future completes with its result."""
        future: Future[Any] = Future()
        if self.in_loop():
            self._run(fn, future)
        else:
            self._enqueue(fn, future)
        return future

    def _enqueue(self, fn: Callable[[], Any], future: Future[Any] | None) -> None:
        if self._closed:
            raise RuntimeError("loop stopped")
        self._commands.append((fn, future))
        if not self._woken:
            self._woken = True
            try:
                self._doorbell().send(b"", zmq.NOBLOCK)
            except zmq.Again:
                pass  # the loop has unread pokes: it is awake already

    def _doorbell(self) -> zmq.Socket:
        """The calling thread's PUSH to this loop; a thread keeps a few, least recently used closed first."""
        sockets: collections.OrderedDict[str, zmq.Socket] | None = getattr(_thread_state, "doorbells", None)
        if sockets is None:
            sockets = _thread_state.doorbells = collections.OrderedDict()
        push = sockets.get(self.endpoint)
        if push is None:
            push = self._ctx.socket(zmq.PUSH)
            push.linger = 0
            push.sndhwm = 16
            push.connect(self.endpoint)
            sockets[self.endpoint] = push
            if len(sockets) > DOORBELLS_PER_THREAD:
                _endpoint, oldest = sockets.popitem(last=False)
                oldest.close(0)
        else:
            sockets.move_to_end(self.endpoint)
        return push


class LoopThread:
    """The thread of a loop: it opens the loop's sockets, serves, and closes them, all on itself.

    :meth:`start` returns once ``open`` has returned, raising what it raised
    (``open`` cleans up after itself when it fails; ``close`` runs only after
    ``serve``).
    """

    def __init__(
        self, name: str, open: Callable[[], None], serve: Callable[[], None], close: Callable[[], None]
    ) -> None:
        self._name = name
        self._steps = (open, serve, close)
        self._opened = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._error is not None:
            raise self._error

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        open_sockets, serve, close = self._steps
        try:
            open_sockets()
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            serve()
        finally:
            close()


__all__ = ["LoopChannel", "LoopThread"]

"""One background thread per process that completes Futures for requests to any node.

The reactor owns its own DEALERs (one per node address and Curve identity)
and serves ``HostClient``'s ``*_future`` calls and multicasts; :func:`then`
chains a conversion onto such a Future. Replies are matched by correlation
id; a reply to a request that already timed out is dropped.
"""

from __future__ import annotations

import collections
import heapq
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq

from paglets.client.addresses import route
from paglets.client.dealer import CONNECT_TIMEOUT, new_dealer, next_cid
from paglets.client.security import CurveIdentity
from paglets.core.errors import NodeUnreachableError, ProtocolError, RequestTimeoutError
from paglets.loops import LoopChannel
from paglets.wire import protocol
from paglets.wire.frames import read_waiting

MAX_SOCKETS = 256  # node addresses the reactor keeps a socket to (least recently used closed first)


class Reactor:
    """A background thread that completes Futures for requests to any node."""

    _instance: Reactor | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def shared(cls) -> Reactor:
        with cls._instance_lock:
            if cls._instance is None or not cls._instance._thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        self._ctx = zmq.Context.instance()
        self._channel = LoopChannel(self._ctx, "client-reactor")
        self._sockets: collections.OrderedDict[tuple[str, bytes], zmq.Socket] = collections.OrderedDict()
        self._poller = zmq.Poller()
        self._waiting: dict[bytes, tuple[Future[protocol.Reply], str, str]] = {}
        self._deadlines: list[tuple[float, bytes]] = []
        self._pending_sends: collections.deque[tuple[float, zmq.Socket, list[bytes], bytes]] = collections.deque()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paglets-client-reactor", daemon=True)
        self._thread.start()
        self._ready.wait()

    def submit(
        self,
        address: str,
        op: str,
        header: dict[str, Any],
        payload: tuple[bytes, ...],
        timeout: float,
        curve: CurveIdentity | None = None,
    ) -> Future[protocol.Reply]:
        future: Future[protocol.Reply] = Future()
        cid = next_cid()
        endpoint, prefix = route(address)
        frames = [*prefix, *protocol.request_frames(op, cid, header, payload)]
        self._channel.post(lambda: self._send(address, endpoint, curve, op, cid, frames, future, timeout))
        return future

    def _send(
        self,
        address: str,
        endpoint: str,
        curve: CurveIdentity | None,
        op: str,
        cid: bytes,
        frames: list[bytes],
        future: Future[Any],
        timeout: float,
    ) -> None:
        key = (address, curve.cache_key() if curve is not None else b"")
        sock = self._sockets.get(key)
        if sock is None:
            self._forget_idle_sockets()
            sock = self._sockets[key] = new_dealer(self._ctx, endpoint, curve)
            self._poller.register(sock, zmq.POLLIN)
        else:
            self._sockets.move_to_end(key)
        self._waiting[cid] = (future, address, op)
        heapq.heappush(self._deadlines, (time.monotonic() + timeout, cid))
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            # Not connected (yet): the deadline decides, as for a lost reply.
            self._pending_sends.append((time.monotonic() + min(timeout, CONNECT_TIMEOUT), sock, frames, cid))

    def _forget_idle_sockets(self) -> None:
        """Past MAX_SOCKETS, close the least recently used sockets that no request waits on."""
        if len(self._sockets) < MAX_SOCKETS:
            return
        busy = {address for _future, address, _op in self._waiting.values()}
        for key in list(self._sockets)[: len(self._sockets) - MAX_SOCKETS + 1]:
            if key[0] in busy:
                continue
            sock = self._sockets.pop(key)
            self._poller.unregister(sock)
            self._pending_sends = collections.deque(item for item in self._pending_sends if item[1] is not sock)
            sock.close(0)

    def _run(self) -> None:
        pull = self._channel.bind()
        self._poller.register(pull, zmq.POLLIN)
        self._ready.set()
        while True:
            timeout = self._next_timeout()
            for sock, _ in self._poller.poll(timeout):
                if sock is pull:
                    self._channel.drain()
                else:
                    self._read(sock)
            self._retry_sends()
            self._expire()

    def _next_timeout(self) -> float | None:
        if self._pending_sends:
            return 10
        if not self._deadlines:
            return None
        return max(0.0, (self._deadlines[0][0] - time.monotonic()) * 1000)

    def _read(self, sock: zmq.Socket) -> None:
        read_waiting(sock, self._complete, limit=1000)

    def _complete(self, frames: list[bytes]) -> None:
        try:
            replies = protocol.parse_replies(frames)
        except ProtocolError:
            return
        for reply in replies:
            waiting = self._waiting.pop(reply.cid, None)
            if waiting is not None and not waiting[0].done():
                waiting[0].set_result(reply)

    def _retry_sends(self) -> None:
        now = time.monotonic()
        for _ in range(len(self._pending_sends)):
            give_up_at, sock, frames, cid = self._pending_sends.popleft()
            if cid not in self._waiting:
                continue
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                if now < give_up_at:
                    self._pending_sends.append((give_up_at, sock, frames, cid))
                else:
                    future, address, op = self._waiting.pop(cid)
                    _fail(
                        future,
                        NodeUnreachableError(
                            f"cannot reach node {address} for {op!r}: no connection", address=address, op=op
                        ),
                    )

    def _expire(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, cid = heapq.heappop(self._deadlines)
            waiting = self._waiting.pop(cid, None)
            if waiting is not None:
                future, address, op = waiting
                _fail(future, RequestTimeoutError(f"no reply from {address} to {op!r} in time", address=address, op=op))


def _fail(future: Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def then(future: Future[Any], convert: Callable[[Any], Any]) -> Future[Any]:
    """A Future completing with ``convert(result)`` (or the failure) of ``future``."""
    out: Future[Any] = Future()

    def done(source: Future[Any]) -> None:
        exc = source.exception()
        if exc is not None:
            out.set_exception(exc)
            return
        try:
            out.set_result(convert(source.result()))
        except BaseException as conv_exc:
            out.set_exception(conv_exc)

    future.add_done_callback(done)
    return out


__all__ = ["Reactor", "then"]

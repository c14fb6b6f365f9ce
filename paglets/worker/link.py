"""A worker's per-thread sockets to its node's back ROUTER.

Handler threads, the ``run()`` thread and any thread the paglet starts each
get their own DEALER (routing id ``IDENT/N``, where ``IDENT`` is the main
socket's: ``agent_id/KEY``), so a handler can reply, or
ask its node something (a host call), without handing work to the I/O
thread. One socket, one thread: a socket is only ever used by the thread
that created it.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import zmq

from paglets.core.errors import PagletCrashedError, RequestTimeoutError
from paglets.wire import back
from paglets.wire.errors import error_from_wire
from paglets.wire.frames import recv_frames, send_frames

DEFAULT_CALL_TIMEOUT = 120.0


class NodeLink:
    """Per-thread DEALER sockets of one worker process."""

    def __init__(self, ctx: zmq.Context, endpoint: str, agent_id: str, ident: str | None = None):
        """``ident``: the worker's main routing id (default: the agent id); each socket's is ``ident/N``."""
        self._ctx = ctx
        self._endpoint = endpoint
        self._agent_id = agent_id
        self._ident = ident or agent_id
        self._local = threading.local()
        self._ids = itertools.count(1)
        self.closed = False

    def socket(self) -> zmq.Socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            if self.closed:
                raise PagletCrashedError(f"paglet {self._agent_id!r} is shutting down")
            sock = self._ctx.socket(zmq.DEALER)
            sock.linger = 1000
            sock.identity = f"{self._ident}/{next(self._ids)}".encode()
            sock.connect(self._endpoint)
            self._local.sock = sock
            self._local.cids = itertools.count(1)
        return sock

    def reply_ok(self, cid: bytes, payload: bytes | None = None) -> None:
        self._send(back.rep_ok(cid, payload))

    def reply_error(self, cid: bytes, error: dict[str, Any]) -> None:
        self._send(back.rep_err(cid, error))

    def reply_batch(self, cid: bytes, failed: int) -> None:
        """The answer to a ``msgs``: how many of its messages failed."""
        self._send(back.rep_batch(cid, failed))

    def give_back(self, cid: bytes, count: int) -> None:
        """The last ``count`` messages of batch ``cid`` were not run: the node queues them again."""
        self._send(back.back_frames(cid, count))

    def event(self, kind: str, **fields: Any) -> None:
        self._send(back.event_frames(kind, **fields))

    def _send(self, frames: list[bytes]) -> None:
        try:
            send_frames(self.socket(), frames)
        except zmq.ContextTerminated:
            self.close_own()
            raise PagletCrashedError(f"paglet {self._agent_id!r} is exiting") from None

    def call(
        self, op: str, fields: dict[str, Any], payload: tuple[bytes, ...] = (), timeout: float | None = None
    ) -> bytes:
        """Ask the node (host call ``op``); returns the codec-encoded result frame, or raises the node's error."""
        sock = self.socket()
        cid = next(self._local.cids).to_bytes(8, "big")
        self._send(back.hcall_frames(cid, op, fields, payload))
        limit = DEFAULT_CALL_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._poll(sock, remaining):
                raise RequestTimeoutError(f"node did not answer host call {op!r} within {limit:.1f} s", op=op)
            try:
                frames = recv_frames(sock)
            except zmq.ContextTerminated:
                self.close_own()
                raise PagletCrashedError(f"paglet {self._agent_id!r} is exiting") from None
            reply = back.parse_hrep(frames, cid)
            if reply is None:
                continue  # an answer to an earlier call that timed out
            ok, result = reply
            if ok:
                return result[0] if result else b""
            raise error_from_wire(back.parse_error(result))

    def _poll(self, sock: zmq.Socket, seconds: float) -> bool:
        try:
            return bool(sock.poll(seconds * 1000))
        except zmq.ContextTerminated:
            self.close_own()
            raise PagletCrashedError(f"paglet {self._agent_id!r} is exiting") from None

    def close_own(self) -> None:
        """Close the calling thread's socket, if it has one."""
        sock = getattr(self._local, "sock", None)
        if sock is not None:
            self._local.sock = None
            sock.close(100)


__all__ = ["NodeLink"]

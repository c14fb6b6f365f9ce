"""The broker's own connections to other nodes, for messages that must follow a paglet.

When a paglet has left, its old node keeps a forwarding entry; messages that
still arrive there are sent on from the broker thread (which owns these
DEALERs, so forwarding never blocks the loop or a pool thread). The reply
is relayed to the original caller with ``moved_to`` in its header, so
proxies learn the new address; when the next node forwarded too, its
``moved_to`` wins and the chain collapses.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq

from paglets.client.security import CurveIdentity
from paglets.client.transport import route
from paglets.core.errors import OverloadedError, ProtocolError, RequestTimeoutError
from paglets.node.broker.slots import Delivery, Origin, Sender
from paglets.wire import protocol
from paglets.wire.errors import error_to_wire
from paglets.wire.frames import NOBLOCK, read_waiting, send_frames

log = logging.getLogger("paglets.forward")


class PeerLinks:
    """DEALERs to other nodes, owned by the broker thread, and the forwards awaiting replies."""

    def __init__(
        self,
        ctx: zmq.Context,
        poller: zmq.Poller,
        sender: Sender,
        *,
        api_key: str | None,
        on_moved: Callable[[str, str], None],
        timeout: float = 120.0,
        curve: CurveIdentity | None = None,
    ):
        self._curve = curve
        self._ctx = ctx
        self._poller = poller
        self._sender = sender
        self._api_key = api_key
        self._on_moved = on_moved
        self._timeout = timeout
        self._sockets: dict[str, zmq.Socket] = {}
        self._addresses: dict[zmq.Socket, str] = {}
        self._waiting: dict[bytes, tuple[Origin | None, str, str, float]] = {}
        self._cids = itertools.count(1)

    def owns(self, sock: zmq.Socket) -> bool:
        return sock in self._addresses

    def counts(self) -> dict[str, int]:
        """Open links to other nodes and forwarded messages awaiting their replies (for metrics)."""
        return {"links": len(self._sockets), "forwards_waiting": len(self._waiting)}

    def forward(self, address: str, agent_id: str, delivery: Delivery) -> None:
        """Send ``delivery`` on to ``address``; its origin gets the reply (or the failure)."""
        header: dict[str, Any] = {"agent": agent_id, "prio": delivery.priority, "fwd": True}
        if delivery.oneway:
            header["oneway"] = True
        if delivery.mid:
            header["mid"] = delivery.mid
        if self._api_key:
            header["key"] = self._api_key
        cid = b"f" + next(self._cids).to_bytes(8, "big")
        endpoint, prefix = route(address)
        frames = [*prefix, *protocol.request_frames("send", cid, header, (delivery.body,))]
        try:
            send_frames(self._socket(address, endpoint), frames, NOBLOCK)
        except zmq.Again:
            if delivery.origin is not None:
                error = OverloadedError(f"too many messages waiting to be forwarded to {address}")
                delivery.origin.fail(self._sender, error_to_wire(error))
            return
        self._waiting[cid] = (delivery.origin, agent_id, address, time.monotonic() + self._timeout)

    def _socket(self, address: str, endpoint: str) -> zmq.Socket:
        sock = self._sockets.get(address)
        if sock is None:
            sock = self._ctx.socket(zmq.DEALER)
            if self._curve is not None:
                self._curve.secure_client(sock)
            sock.linger = 0
            sock.sndhwm = sock.rcvhwm = 100_000
            sock.connect(endpoint)
            self._sockets[address] = sock
            self._addresses[sock] = address
            self._poller.register(sock, zmq.POLLIN)
        return sock

    def on_readable(self, sock: zmq.Socket) -> None:
        read_waiting(sock, self._on_reply)

    def _on_reply(self, frames: list[bytes]) -> None:
        try:
            replies = protocol.parse_replies(frames)
        except ProtocolError:
            return
        for reply in replies:
            self._relay(reply)

    def _relay(self, reply: protocol.Reply) -> None:
        waiting = self._waiting.pop(reply.cid, None)
        if waiting is None:
            return
        origin, agent_id, address, _deadline = waiting
        if not reply.ok:
            if origin is not None:
                origin.fail(self._sender, reply.header)
            else:
                log.warning("forwarded oneway message for %s refused by %s: %s", agent_id, address, reply.header)
            return
        location = reply.header.get("moved_to") or address
        if location != address:
            self._on_moved(agent_id, location)
        if origin is not None:
            header = dict(reply.header, moved_to=location)
            origin.ok(self._sender, reply.payload, protocol.pack(header))

    def expire(self, now: float) -> None:
        for cid, (origin, agent_id, address, deadline) in list(self._waiting.items()):
            if now > deadline:
                del self._waiting[cid]
                if origin is not None:
                    error = RequestTimeoutError(
                        f"forwarding to {address} for paglet {agent_id!r} got no reply", address=address, op="send"
                    )
                    origin.fail(self._sender, error_to_wire(error))

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close(0)
        self._sockets.clear()
        self._addresses.clear()


__all__ = ["PeerLinks"]

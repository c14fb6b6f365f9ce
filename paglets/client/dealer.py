"""What the channel and the reactor share: a DEALER to a node, correlation ids, reading a reply."""

from __future__ import annotations

import itertools

import zmq

from paglets.client.security import CurveIdentity
from paglets.wire import protocol
from paglets.wire.errors import error_from_wire

CONNECT_TIMEOUT = 5.0  # how long a request waits for a connection before the node counts as unreachable
_cid_counter = itertools.count(1)


def new_dealer(ctx: zmq.Context, endpoint: str, curve: CurveIdentity | None = None) -> zmq.Socket:
    """A DEALER connected to ``endpoint`` that never queues for a node it is not connected to."""
    sock = ctx.socket(zmq.DEALER)
    if curve is not None:
        curve.secure_client(sock)
    sock.linger = 0
    sock.immediate = 1  # never queue for a node we are not connected to
    sock.sndhwm = sock.rcvhwm = 100_000
    sock.reconnect_ivl = 100
    sock.reconnect_ivl_max = 2000
    sock.connect(endpoint)
    return sock


def next_cid() -> bytes:
    """A correlation id unique in this process."""
    return next(_cid_counter).to_bytes(8, "big")


def reply_value(reply: protocol.Reply) -> protocol.Reply:
    """Return an ok reply, or raise the error it carries."""
    if reply.ok:
        return reply
    raise error_from_wire(reply.header)


__all__ = ["CONNECT_TIMEOUT", "new_dealer", "next_cid", "reply_value"]

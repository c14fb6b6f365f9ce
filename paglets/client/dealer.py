"""What the channel and the reactor share: a DEALER to a node, correlation ids, reading a reply."""

from __future__ import annotations

import itertools
from typing import Any

import zmq

from paglets.client.security import CurveIdentity
from paglets.core.errors import NodeUnreachableError, PagletError
from paglets.wire import protocol, relay
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


def reply_value(reply: protocol.Reply, address: str = "", op: str = "") -> protocol.Reply:
    """Return an ok reply, or raise the error it carries (``address`` and ``op``: what the request was)."""
    if reply.ok:
        return reply
    raise reply_error(reply.header, address, op)


def reply_error(error: dict[str, Any], address: str, op: str) -> PagletError:
    """The exception a front error stands for; a relay's "not a node" names the address the client used."""
    if address and relay.reached_a_relay(error):
        return NodeUnreachableError(
            f"{address} is a paglets relay, not a node: address a node behind it as relay+{address}/NODE",
            address=address,
            op=op,
        )
    return error_from_wire(error)


__all__ = ["CONNECT_TIMEOUT", "new_dealer", "next_cid", "reply_error", "reply_value"]

"""The broker's two ROUTER sockets as its loop opens them: the back one for workers, the front one for the world.

Both are ``router_mandatory`` (a reply to a peer that is gone raises rather
than vanishing, and the loop drops it) with deep queues. The back socket
also takes ``router_handover``, so a worker that reconnects under its
routing id replaces its old connection; the front socket bounds the size
of what a peer may send (``max_message_size``) and speaks CURVE when the
node has a key pair.
"""

from __future__ import annotations

import zmq

from paglets.client.security import CurveServer

QUEUE_DEPTH = 100_000  # frame sets a socket queues each way before it refuses or drops


def back_socket(ctx: zmq.Context) -> zmq.Socket:
    """The (not yet bound) ROUTER the node's workers connect to."""
    back = ctx.socket(zmq.ROUTER)
    back.linger = 0
    back.router_mandatory = 1
    back.router_handover = 1
    back.sndhwm = back.rcvhwm = QUEUE_DEPTH
    return back


def open_front(
    ctx: zmq.Context, endpoint: str, *, max_message_size: int, curve: CurveServer | None
) -> tuple[zmq.Socket, str]:
    """The front ROUTER bound to ``endpoint`` (``tcp://host:0``: a free port), and the address it got."""
    front = ctx.socket(zmq.ROUTER)
    front.linger = 0
    front.router_mandatory = 1
    front.maxmsgsize = max_message_size
    front.sndhwm = front.rcvhwm = QUEUE_DEPTH
    if curve is not None:
        curve.serve(front)
    try:
        if endpoint.endswith(":0"):
            base = endpoint.rsplit(":", 1)[0]
            return front, f"{base}:{front.bind_to_random_port(base)}"
        front.bind(endpoint)
    except BaseException:
        front.close(0)
        raise
    return front, endpoint


__all__ = ["back_socket", "open_front"]

"""Request/reply over DEALER sockets: the bottom of the client SDK.

Two ways to talk to a node, both one socket per thread:

* :func:`~paglets.client.channel.channel` — the calling thread's own DEALER
  to a node address (:mod:`paglets.client.channel`): synchronous requests
  and pipelined oneway sends, with no thread hand-off.
* :class:`~paglets.client.reactor.Reactor` — one background thread per
  process that owns its own DEALERs and completes Futures (``send_future``,
  multicast) (:mod:`paglets.client.reactor`).

Addresses are checked and routed (directly, or through a relay) in
:mod:`paglets.client.addresses`; :mod:`paglets.client.dealer` holds what both
share. This module re-exports their public names under the old path.
"""

from __future__ import annotations

from paglets.client.addresses import ADDRESS_FORMS, check_address, route
from paglets.client.channel import ACK_CHECK_EVERY, ONEWAY_WINDOW, Channel, channel
from paglets.client.dealer import CONNECT_TIMEOUT, reply_value
from paglets.client.reactor import Reactor, then

__all__ = [
    "ACK_CHECK_EVERY",
    "ADDRESS_FORMS",
    "CONNECT_TIMEOUT",
    "ONEWAY_WINDOW",
    "Channel",
    "Reactor",
    "channel",
    "check_address",
    "reply_value",
    "route",
    "then",
]

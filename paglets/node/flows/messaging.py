"""Messages sent from inside the node process: deliver one, or multicast to all.

Paglets talk to each other through their workers and clients through the
front socket; this part is for code that holds the :class:`Host` itself (the
HTTP shim, tests, an embedding application). It encodes the message once and
hands it to the broker loop, which routes it like any other.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from paglets.client.transport import then
from paglets.core.agent import ACTIVE
from paglets.core.messages import FutureReply, Message, ReplySet
from paglets.node.broker.commands import BrokerCommands
from paglets.node.flows.inspection import Inspection
from paglets.node.identity import NodeIdentity
from paglets.waiting import wait_for
from paglets.wire import codec
from paglets.wire.message_codec import encode_message


class Messaging:
    """Local senders' way into the mailboxes of one node."""

    def __init__(self, broker: BrokerCommands, inspection: Inspection, here: NodeIdentity, call_timeout: float):
        self._broker = broker
        self._inspection = inspection
        self._here = here
        self._call_timeout = call_timeout

    def deliver(
        self,
        agent_id: str,
        message: Message | str,
        *,
        oneway: bool = False,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> Any:
        future = self.submit(agent_id, message, oneway, activate_if_inactive, no_delay)
        limit = self._call_timeout if timeout is None else timeout
        _header, payload = wait_for(future, limit, f"paglet {agent_id!r} on {self._here.name} to answer")
        if oneway or not payload or not payload[0]:
            return None
        return codec.decode(payload[0])

    def submit(
        self, agent_id: str, message: Message | str, oneway: bool, activate: bool = True, no_delay: bool = False
    ) -> Future:
        """Hand one message to the broker; the Future resolves to its (header, payload) reply."""
        message = Message(message) if isinstance(message, str) else message
        if message.sender is None:
            message.sender = self._here.address
        return self._broker.deliver(
            agent_id,
            encode_message(message),
            oneway=oneway,
            priority=message.priority,
            mid=message.message_id,
            activate=activate,
            no_delay=no_delay,
        )

    def multicast(
        self, kind: str | Message, args: dict[str, Any] | None = None, *, exclude: set[str] | None = None
    ) -> ReplySet:
        replies = ReplySet()
        for agent_id in self._inspection.agent_ids(ACTIVE):
            if exclude and agent_id in exclude:
                continue
            message = Message.from_wire(kind.to_wire()) if isinstance(kind, Message) else Message(kind, args or {})
            future = self.submit(agent_id, message, False)
            replies.add_future_reply(FutureReply(then(future, _decode_payload)))
        return replies


def _decode_payload(result: tuple[bytes, list[bytes]]) -> Any:
    _header, payload = result
    return codec.decode(payload[0]) if payload and payload[0] else None

"""The broker's view of parked paglets: how to route a message for one.

Owned by the broker thread. A parked paglet's record lives on disk (see
:mod:`paglets.node.storage.records`); here are only the two policy flags the
router needs, and the messages that woke a paglet while it is being
activated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paglets.core.errors import OverloadedError, PagletInactiveError
from paglets.node.broker.slots import Delivery, Sender
from paglets.wire.errors import error_to_wire


class ParkedPaglets:
    """Which paglets are parked here, and what a message for one of them does."""

    def __init__(
        self,
        node_name: str,
        sender: Sender,
        *,
        wake: Callable[[str], None],
        queue: Callable[[str, Delivery], None],
        limit: int,
    ):
        self._node_name = node_name
        self._sender = sender
        self._wake = wake
        self._queue = queue
        self._limit = limit
        self._flags: dict[str, tuple[bool, bool]] = {}  # agent -> (activate on message, queue when inactive)
        self._waking: dict[str, list[Delivery]] = {}

    def __contains__(self, agent_id: str) -> bool:
        return agent_id in self._flags

    def ids(self) -> list[str]:
        return list(self._flags)

    def park(self, agent_id: str, activate_on_message: bool, queue_when_inactive: bool) -> None:
        self._flags[agent_id] = (activate_on_message, queue_when_inactive)

    def route(self, agent_id: str, delivery: Delivery) -> None:
        activate_on_message, queue_when_inactive = self._flags[agent_id]
        if delivery.activate and activate_on_message:
            waking = self._waking.setdefault(agent_id, [])
            if len(waking) >= self._limit:
                self._fail(delivery, OverloadedError(f"too many messages waiting for paglet {agent_id!r} to wake"))
                return
            waking.append(delivery)
            if len(waking) == 1:
                self._wake(agent_id)
        elif delivery.no_delay or not queue_when_inactive:
            self._fail(delivery, PagletInactiveError(f"paglet {agent_id!r} is inactive on node {self._node_name}"))
        else:
            self._queue(agent_id, delivery)

    def queue_all(self, agent_id: str, deliveries: list[Delivery]) -> None:
        """Messages that were waiting in the paglet's mailbox when it parked: they go to disk, in order."""
        for delivery in deliveries:
            self._queue(agent_id, delivery)

    def unpark(self, agent_id: str) -> list[Delivery]:
        """The paglet is waking: stop routing here; returns the messages that woke it."""
        self._flags.pop(agent_id, None)
        return self._waking.pop(agent_id, [])

    def fail_waking(self, agent_id: str, error: BaseException) -> None:
        for delivery in self._waking.pop(agent_id, []):
            self._fail(delivery, error)

    def forget(self, agent_id: str, error: BaseException) -> None:
        self._flags.pop(agent_id, None)
        self.fail_waking(agent_id, error)

    def _fail(self, delivery: Delivery, error: BaseException) -> None:
        if delivery.origin is not None:
            delivery.origin.fail(self._sender, error_to_wire(error))

    def describe(self) -> dict[str, Any]:
        return {agent: {"waking": len(self._waking.get(agent, []))} for agent in self._flags}


__all__ = ["ParkedPaglets"]

"""The broker's view of parked paglets: how to route a message for one.

Owned by the broker thread. A parked paglet's record lives on disk (see
:mod:`paglets.node.storage.records`); here are only the two policy flags the
router needs, the messages that woke a paglet while it is being activated,
and which parked paglets' old workers are still running.

A message for a parked paglet wakes it (if its policy and the sender allow),
waits on disk (a sync sender then gets ``MessageQueuedError``: there is no
reply to give) or is refused (``PagletInactiveError``). A wake waits until the
worker the paglet parked from has exited: the new worker takes the same
routing ids, and two live workers under one id would steal each other's
frames.
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
        self._old_workers: dict[str, int] = {}  # agent -> pid of the worker it parked from, until it exits

    def __contains__(self, agent_id: str) -> bool:
        return agent_id in self._flags

    def ids(self) -> list[str]:
        return list(self._flags)

    def park(
        self, agent_id: str, activate_on_message: bool, queue_when_inactive: bool, old_worker: int | None = None
    ) -> None:
        """Route ``agent_id``'s mail here; ``old_worker``: the pid of its worker, which has not exited yet."""
        self._flags[agent_id] = (activate_on_message, queue_when_inactive)
        if old_worker is not None:
            self._old_workers[agent_id] = old_worker

    def route(self, agent_id: str, delivery: Delivery) -> None:
        activate_on_message, queue_when_inactive = self._flags[agent_id]
        if delivery.activate and activate_on_message:
            waking = self._waking.setdefault(agent_id, [])
            if len(waking) >= self._limit:
                self._fail(delivery, OverloadedError(f"too many messages waiting for paglet {agent_id!r} to wake"))
                return
            waking.append(delivery)
            if len(waking) == 1 and agent_id not in self._old_workers:
                self._wake(agent_id)
        elif delivery.no_delay or not queue_when_inactive:
            self._fail(delivery, PagletInactiveError(f"paglet {agent_id!r} is inactive on node {self._node_name}"))
        else:
            self._queue(agent_id, delivery)

    def take_mailbox(self, agent_id: str, deliveries: list[Delivery]) -> None:
        """The messages that waited in the paglet's mailbox when it parked, in order.

        Oneway mail already accepted goes to disk. A message whose sender still
        waits goes where it would go had it arrived now: a sync message may
        wake the paglet and get the handler's real reply, never a stand-in.
        """
        for delivery in deliveries:
            if delivery.oneway and delivery.origin is None:
                self._queue(agent_id, delivery)
            else:
                self.route(agent_id, delivery)

    def worker_exited(self, agent_id: str, pid: int) -> None:
        """The worker ``agent_id`` parked from is gone: a message waiting to wake it may now."""
        if self._old_workers.get(agent_id) != pid:
            return
        del self._old_workers[agent_id]
        if self._waking.get(agent_id) and agent_id in self._flags:
            self._wake(agent_id)

    def unpark(self, agent_id: str) -> list[Delivery]:
        """The paglet is waking: stop routing here; returns the messages that woke it."""
        self._flags.pop(agent_id, None)
        self._old_workers.pop(agent_id, None)
        return self._waking.pop(agent_id, [])

    def fail_waking(self, agent_id: str, error: BaseException) -> None:
        for delivery in self._waking.pop(agent_id, []):
            self._fail(delivery, error)

    def forget(self, agent_id: str, error: BaseException) -> None:
        self._flags.pop(agent_id, None)
        self._old_workers.pop(agent_id, None)
        self.fail_waking(agent_id, error)

    def _fail(self, delivery: Delivery, error: BaseException) -> None:
        if delivery.origin is not None:
            delivery.origin.fail(self._sender, error_to_wire(error))

    def describe(self) -> dict[str, Any]:
        return {agent: {"waking": len(self._waking.get(agent, []))} for agent in self._flags}


__all__ = ["ParkedPaglets"]

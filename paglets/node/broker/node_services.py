"""What the broker asks of the node, and the notices its loop hands over without waiting.

:class:`BrokerServices` is the node's side as the broker sees it: answers to
the front requests and host calls that leave the loop, and what the node
does about a crash, a worker's event, a parked paglet to wake or to queue
mail for, and messages that failed. :class:`NodeNotices` hands those notices
from the loop to the node on the broker's ``calls`` lane, so the loop never
runs node code and never waits on it.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol

from paglets.core.errors import PagletError
from paglets.loops import LoopChannel
from paglets.node.broker.lanes import Answer, Lane
from paglets.node.broker.slots import ACCEPTED, Delivery, Sender, WorkerSlot
from paglets.node.broker.stats import FailedNote, FailureNotes
from paglets.wire import back, protocol
from paglets.wire.errors import error_to_wire


class BrokerServices(Protocol):
    """What the broker asks of the node (called on its lanes)."""

    def handle_front(self, request: protocol.Request) -> Answer: ...

    def handle_host_call(
        self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]
    ) -> list[bytes]: ...

    def route_unknown(self, request: protocol.Request) -> Answer: ...

    def worker_crashed(self, agent_id: str, pid: int | None, reason: str) -> None: ...

    def worker_event(self, agent_id: str, header: dict[str, Any]) -> None: ...

    def wake_parked(self, agent_id: str) -> None: ...

    def queue_for_parked(self, agent_id: str, delivery: Delivery) -> Future[bytes | None]: ...

    def record_failures(self, notes: list[FailedNote], suppressed: int) -> None: ...


class NodeNotices:
    """In the loop: pass what it learned about workers and messages on to the node, never waiting for it."""

    def __init__(self, sender: Sender, channel: LoopChannel, calls: Lane, services: BrokerServices | None):
        self._sender = sender
        self._channel = channel
        self._calls = calls
        self.services = services  # set by Broker.attach before the loop starts

    def crashed(self, agent_id: str, pid: int | None, reason: str) -> None:
        """The table declared a worker crashed."""
        self._calls.submit(self.services.worker_crashed, agent_id, pid, reason)

    def worker_event(self, slot: WorkerSlot, rest: list[bytes]) -> None:
        """An ``event`` frame from a worker (a malformed one is dropped)."""
        try:
            header = back.parse_event(rest)
        except PagletError:
            return
        if header.get("kind") == "run-finished":
            slot.run_done = True  # from now on it may be parked when idle
        self._calls.submit(self.services.worker_event, slot.agent_id, header)

    def wake_parked(self, agent_id: str) -> None:
        self._calls.submit(self.services.wake_parked, agent_id)

    def queue_for_parked(self, agent_id: str, delivery: Delivery) -> None:
        """Hand a message to the durable mail queue; its sender hears back once it is on disk."""
        sender, origin = self._sender, delivery.origin
        try:
            written = self.services.queue_for_parked(agent_id, delivery)
        except PagletError as exc:
            if origin is not None:
                origin.fail(sender, error_to_wire(exc))
            return
        if origin is None:
            return

        def done(future: Future[bytes | None]) -> None:
            exc = future.exception()
            if exc is not None:
                wire = error_to_wire(exc)
                self._channel.post(lambda: origin.fail(sender, wire))
            else:
                reply = future.result()
                self._channel.post(lambda: origin.ok(sender, [] if reply is None else [reply], ACCEPTED))

        written.add_done_callback(done)

    def failures(self, notes: FailureNotes) -> None:
        """Failed messages this loop pass noted become events, recorded on the calls lane (never in the loop)."""
        taken, suppressed = notes.take()
        try:
            self._calls.submit(self.services.record_failures, taken, suppressed)
        except RuntimeError:
            pass  # the node is stopping; those events go with it


__all__ = ["BrokerServices", "NodeNotices"]

"""What the rest of the node asks of the broker loop, one named command each.

The broker's table is owned by the broker thread; every other thread (the
flows, the broker's lanes, the template process's reader) asks through these
commands. Each posts a closure to the loop's channel and returns at once:
a Future for the answer, or nothing for notices nobody waits for. A command
made while the broker is not running fails with HostError.

Commands that reserve something the caller then acts on (``expect_worker``,
``open_activation``) wait for the loop to confirm, so the caller forks a
worker only once the agent id is its own.

A command that raises in the loop fails its Future at once (the loop logs
it with its traceback unless it is a PagletError, a refusal); a caller never
waits out its deadline for an answer that cannot come. Every wait here is
bounded by :data:`LOOP_DEADLINE` or by a deadline the caller names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from paglets.core.errors import HostError, PagletError
from paglets.node.broker.slots import Delivery, FutureOrigin, Phase
from paglets.waiting import wait_for
from paglets.wire import back

if TYPE_CHECKING:
    from paglets.node.broker.loop import Broker

log = logging.getLogger("paglets.node")

LOOP_DEADLINE = 10.0  # seconds any loop command may take before its caller gives up
_ARRIVAL_STATUS = {Phase.READY: "arrived", Phase.STARTING: "starting", Phase.PREPARED: "prepared"}


class BrokerCommands:
    """The broker as the node's flows see it. Holds no state of its own."""

    def __init__(self, broker: Broker):
        self._broker = broker

    @property
    def node_name(self) -> str:
        return self._broker.node_name

    @property
    def back_endpoint(self) -> str:
        return self._broker.back_endpoint

    @property
    def running(self) -> bool:
        return self._broker.running

    # -- plumbing ------------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` in the loop; the Future gets its result."""
        try:
            return self._broker.channel.call(fn)
        except RuntimeError:
            return _failed(HostError(f"node {self.node_name} is not running"))

    def _post(self, fn: Callable[[], Any]) -> None:
        """A notice nobody waits for (the loop logs what it raises)."""
        try:
            self._broker.channel.post(fn)
        except RuntimeError:
            pass  # the loop stopped; what this notice was about went with it

    def _post_for(self, future: Future[Any], fn: Callable[[], None]) -> Future[Any]:
        """Post ``fn``, which answers ``future`` itself (through an origin); returns ``future``.

        If ``fn`` raises, ``future`` fails with that at once, never at its
        caller's deadline; anything but a PagletError is a bug, which the
        loop also logs with its traceback.
        """

        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
                if not isinstance(exc, PagletError):
                    raise

        try:
            self._broker.channel.post(run)
        except RuntimeError:
            future.set_exception(HostError(f"node {self.node_name} is not running"))
        return future

    def _ask(self, start: Callable[[FutureOrigin], None]) -> Future[Any]:
        """Post ``start(origin)``; the Future completes when the table answers that origin."""
        future: Future[Any] = Future()
        origin = FutureOrigin(future)
        return self._post_for(future, lambda: start(origin))

    def _confirm(self, fn: Callable[[], Any], what: str) -> Any:
        """Run ``fn`` in the loop and wait for it (only for quick table changes)."""
        return wait_for(self._call(fn), LOOP_DEADLINE, f"the broker loop to {what}")

    # -- workers --------------------------------------------------------------------------
    def expect_worker(
        self,
        agent_id: str,
        token: str,
        class_name: str,
        start_header: dict[str, Any] | None,
        start_payload: list[bytes],
        start_timeout: float,
        source_address: str | None = None,
    ) -> Future[Any]:
        """Reserve a slot for a worker about to be forked; returns once the agent id is ours.

        The Future completes when the start hook has run — or, with no start
        header (an arrival being prepared), once the worker has loaded its class.
        """
        future: Future[Any] = Future()
        header = None if start_header is None else _pack_start(start_header)
        deadline = time.monotonic() + start_timeout
        table = self._broker.table
        self._confirm(
            lambda: table.open_slot(
                agent_id, token, class_name, header, start_payload, FutureOrigin(future), deadline, source_address
            ),
            f"reserve {agent_id}",
        )
        return future

    def worker_forked(self, agent_id: str, pid: int) -> None:
        self._post(lambda: self._broker.table.record_pid(agent_id, pid))

    def worker_exited(self, pid: int, code: int) -> None:
        self._post(lambda: self._broker.table.on_exit(pid, code))

    def call_worker(self, agent_id: str, header: dict[str, Any], payload: list[bytes] = ()) -> Future[Any]:
        """A node request to the paglet's worker (state, hook, dispose...); the Future gets (header, payload)."""
        op = header.get("op")
        fields = {k: v for k, v in header.items() if k != "op"}
        frames = [back.pack_call(op, **fields), *payload]
        return self._ask(lambda origin: self._broker.table.call(agent_id, frames, origin))

    def stop_worker(self, agent_id: str, forward_to: str | None = None) -> Future[Any]:
        """Fail (or forward) what the paglet still owes, ask its worker to exit; the Future gets its pid."""
        return self._call(lambda: self._broker.table.stop(agent_id, forward_to=forward_to))

    # -- messages ------------------------------------------------------------------------
    def deliver(
        self,
        agent_id: str,
        body: bytes,
        *,
        oneway: bool,
        priority: int,
        mid: str | None = None,
        activate: bool = True,
        no_delay: bool = False,
    ) -> Future[Any]:
        """Queue a message from inside the node; the Future gets ``(header, payload)``."""
        future: Future[Any] = Future()
        delivery = Delivery(body, oneway, FutureOrigin(future), priority, mid, activate=activate, no_delay=no_delay)
        broker = self._broker
        return self._post_for(future, lambda: broker.route_local(agent_id, delivery))

    # -- arrivals -------------------------------------------------------------------------
    def start_prepared(
        self, agent_id: str, start_header: dict[str, Any], payload: list[bytes], seen_ids: list[str]
    ) -> Future[Any]:
        """Give an arriving paglet's prepared worker its state and run its arrival hook."""
        header = _pack_start(start_header)
        table = self._broker.table
        return self._ask(lambda origin: table.start_prepared(agent_id, header, payload, origin, seen_ids))

    def prepared_slot(self, agent_id: str) -> tuple[str, str] | None:
        """(phase, token) of the paglet's slot here, or None when there is none."""
        slot = self._confirm(lambda: self._broker.table.slots.get(agent_id), f"look up {agent_id}")
        return None if slot is None else (slot.phase.value, slot.token)

    def abort_prepared(self, agent_id: str, token: str) -> bool:
        """Drop a prepared arrival that never came (its early mail goes back to the source)."""
        table = self._broker.table

        def drop() -> bool:
            slot = table.slots.get(agent_id)
            if slot is None or slot.token != token or slot.phase is not Phase.PREPARED:
                return False
            table.stop(agent_id, forward_to=slot.source_address)
            return True

        return bool(self._confirm(drop, f"abort {agent_id}"))

    def arrival_status(self, agent_id: str, token: str) -> str:
        """ "arrived", "starting", "prepared" or "unknown" for the transfer ``token`` of ``agent_id``."""
        table = self._broker.table

        def status() -> str:
            slot = table.slots.get(agent_id)
            if slot is None or slot.token != token:
                return "unknown"
            return _ARRIVAL_STATUS.get(slot.phase, "unknown")

        return str(self._confirm(status, f"check {agent_id}"))

    # -- moving -----------------------------------------------------------------------------
    def freeze(self, agent_id: str, except_ident: bytes | None) -> Future[Any]:
        """Hold new messages; the Future completes once in-flight ones (but the mover's) are done."""
        return self._ask(lambda origin: self._broker.table.freeze(agent_id, except_ident, origin))

    def unfreeze(self, agent_id: str) -> None:
        """The move or park failed: the paglet stays and its mailbox flows again (no-op unless frozen)."""
        self._post(lambda: self._broker.table.unfreeze(agent_id))

    # -- stopping ---------------------------------------------------------------------------
    def cut_short(self, agent_id: str, error: PagletError) -> Future[Any]:
        """The node stops: fail the frozen paglet's messages in flight with ``error``; the Future gets their count."""
        return self._call(lambda: self._broker.table.cut_short(agent_id, error))

    def busy_handlers(self, agent_ids: list[str]) -> Future[Any]:
        """{agent id: [(handler, seconds busy)]} of the messages in flight to these paglets."""
        ids = list(agent_ids)
        return self._call(lambda: self._broker.table.reports.busy_handlers(ids))

    def seen_ids(self, agent_id: str) -> list[str]:
        """Ids of the messages the paglet already took in (they travel with it)."""
        return list(self._confirm(lambda: self._broker.table.reports.seen_ids(agent_id), f"list {agent_id}'s messages"))

    def depart(self, agent_id: str, address: str) -> None:
        """The frozen paglet now lives at ``address``: forward its backlog there, let its worker go."""
        self._confirm(lambda: self._broker.table.depart(agent_id, address), f"let {agent_id} go")

    # -- parking ----------------------------------------------------------------------------
    def park(self, agent_id: str, wake_on_message: bool, queue_when_inactive: bool) -> None:
        """The frozen paglet's record is on disk: route its mail as a parked paglet's from now on."""
        self._confirm(
            lambda: self._broker.table.park(agent_id, wake_on_message, queue_when_inactive), f"park {agent_id}"
        )

    def route_parked(self, agent_id: str, wake_on_message: bool, queue_when_inactive: bool) -> None:
        """A parked paglet found on disk (or arrived parked): route its mail as its policy says."""
        self._confirm(
            lambda: self._broker.table.parked.park(agent_id, wake_on_message, queue_when_inactive),
            f"route to parked {agent_id}",
        )

    def forget_parked(self, agent_id: str, error: PagletError) -> None:
        """A parked paglet was disposed of: stop routing to it; messages waiting to wake it fail."""
        self._confirm(lambda: self._broker.table.parked.forget(agent_id, error), f"forget {agent_id}")

    def open_activation(
        self, agent_id: str, token: str, class_name: str, start_header: dict[str, Any], payload: list[bytes],
        timeout: float,
    ) -> Future[Any]:  # fmt: skip
        """Reserve a held slot for a parked paglet about to wake; the Future completes when it has started."""
        future: Future[Any] = Future()
        header = _pack_start(start_header)
        deadline = time.monotonic() + timeout
        table = self._broker.table
        self._confirm(
            lambda: table.open_activation(agent_id, token, class_name, header, payload, FutureOrigin(future), deadline),
            f"wake {agent_id}",
        )
        return future

    def release(self, agent_id: str, mail: list[Delivery]) -> None:
        """The woken paglet is up: its parked mail goes first, then delivery starts."""
        self._confirm(lambda: self._broker.table.release(agent_id, mail), f"release {agent_id}")

    def repark(self, agent_id: str, wake_on_message: bool, queue_when_inactive: bool, error: PagletError) -> None:
        """Waking failed: drop the slot (failing what reached it) and keep the paglet parked."""
        self._confirm(
            lambda: self._broker.table.repark(agent_id, wake_on_message, queue_when_inactive, error),
            f"keep {agent_id} parked",
        )

    # -- reading ---------------------------------------------------------------------------
    def summaries(self) -> Future[Any]:
        """Every paglet slot of this node (phase, class, mailbox...)."""
        return self._call(self._broker.table.reports.summaries)

    def summary(self, agent_id: str) -> Future[Any]:
        return self._call(lambda: self._broker.table.reports.summary(agent_id))

    def metrics(self, top: int) -> Future[Any]:
        """The loop's figures for a metrics scrape: slots per phase, the ``top`` deepest mailboxes,
        message counts and timing histograms, peer links."""
        return self._call(lambda: self._broker.metrics(top))

    def has_slot(self, agent_id: str) -> Future[Any]:
        """Whether a worker slot (of any phase) holds ``agent_id``."""
        return self._call(lambda: agent_id in self._broker.table.slots)

    def quiet(self, timed_only: bool = False) -> Future[Any]:
        """``(agent_id, seconds quiet, class IDLE_TIMEOUT)`` of the paglets that could be parked as idle now
        (``timed_only``: only those whose class sets IDLE_TIMEOUT)."""
        return self._call(lambda: self._broker.table.reports.quiet(timed_only))

    def connect_relay(self) -> None:
        """Dial the relay and wait a little for its answer, so that a node that says it is
        ready is reachable; the node calls this once it is ready to answer (its parked paglets loaded)."""
        self._confirm(self._broker.open_relay, "dial the relay")
        if not self._broker.wait_for_relay():
            log.warning("node %s: the relay has not answered yet; still trying", self._broker.node_name)


def _pack_start(header: dict[str, Any]) -> bytes:
    return back.pack_start(header["hook"], bool(header.get("plain")), header.get("event"))


def _failed(exc: BaseException) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_exception(exc)
    return future


__all__ = ["LOOP_DEADLINE", "BrokerCommands"]

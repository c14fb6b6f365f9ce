"""The broker's table of workers: slots, their lifecycles, moves, parking and forwarding entries.

Owned by the broker thread and touched by nothing else. The broker feeds it
validated requests and worker frames; it answers through the broker (its
``Sender``) and sends messages for departed paglets on through
:class:`~paglets.node.broker.peers.PeerLinks`. The message path itself
(mailboxes, handler credits, requests in flight and their replies) is its
:class:`~paglets.node.broker.message_path.MessagePath`; the table owns the
slots, the routing ids and pids that find them, and the forwarding entries.
What it tells the rest of the node about them (listings, metrics, idle
paglets, busy handlers) is its :class:`~paglets.node.broker.slot_reports.SlotReports`.

A slot's life: STARTING (forked, waiting for ``ready`` and the start hook) or
PREPARED (an arriving paglet's worker, waiting for its state) -> READY ->
MOVING (leaving: new messages wait) -> DEPARTED (a forwarding entry takes
its place; the worker finishes what it holds, then exits). CRASHED and
STOPPING are the other ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from paglets.core.errors import HostError, InvalidAgentError, PagletCrashedError, PagletError
from paglets.node.broker.forwards import Forwards
from paglets.node.broker.message_path import GONE_PHASES, MessagePath
from paglets.node.broker.parked_routes import ParkedPaglets
from paglets.node.broker.peers import PeerLinks
from paglets.node.broker.slot_reports import SlotReports
from paglets.node.broker.slots import Delivery, Origin, Phase, Sender, WorkerSlot, worker_ident
from paglets.node.broker.stats import LoopStats, error_text
from paglets.wire import back
from paglets.wire.back import BACK, IDLE, READY, REP
from paglets.wire.errors import error_from_wire, error_to_wire

BATCH_MAX = 256  # the most oneway messages one handler may be given at once (MAILBOX_BATCH caps it lower)


class WorkerTable:
    """The slots of one node; its message path and forwarding entries are parts it owns."""

    def __init__(
        self,
        node_name: str,
        sender: Sender,
        peers: PeerLinks,
        parked: ParkedPaglets,
        *,
        on_crash: Callable[[str, int | None, str], None],
        mailbox_limit: int,
        liveness: float,
        forward_ttl: float,
    ):
        self.node_name = node_name
        self._sender = sender
        self._peers = peers
        self.parked = parked
        self._on_crash = on_crash
        self._liveness = liveness
        self.slots: dict[str, WorkerSlot] = {}
        self._by_ident: dict[bytes, WorkerSlot] = {}
        self._by_pid: dict[int, WorkerSlot] = {}
        self._forwards = Forwards(forward_ttl)
        self._mail = MessagePath(
            sender,
            mailbox_limit=mailbox_limit,
            on_started=self._started,
            on_drained=self._exit_worker,
            reroute=self.route,
        )
        self.reports = SlotReports(self.slots, self._mail, self._forwards, self.require)

    # -- slots --------------------------------------------------------------------
    def open_slot(
        self,
        agent_id: str,
        token: str,
        class_name: str,
        start_header: bytes | None,
        start_payload: list[bytes],
        origin: Origin,
        deadline: float,
        source_address: str | None = None,
    ) -> None:
        """Reserve ``agent_id`` for a worker about to be forked."""
        existing = self.slots.get(agent_id)
        if existing is not None and existing.phase is not Phase.CRASHED:
            raise HostError(f"paglet {agent_id!r} already exists on node {self.node_name}")
        self.forget(agent_id)
        slot = WorkerSlot(
            agent_id=agent_id,
            ident=worker_ident(agent_id, token).encode(),
            token=token,
            class_name=class_name,
            start_header=start_header,
            start_payload=start_payload,
            start_origin=origin,
            start_deadline=deadline,
            source_address=source_address,
        )
        self.slots[agent_id] = slot
        self._by_ident[slot.ident] = slot

    def record_pid(self, agent_id: str, pid: int) -> None:
        slot = self.slots.get(agent_id)
        if slot is not None and slot.pid is None:
            slot.pid = pid
            self._by_pid[pid] = slot

    def slot_for_ident(self, ident: bytes) -> WorkerSlot | None:
        """The slot of a worker socket: its main socket ``agent_id/KEY`` or another one, ``agent_id/KEY/N``."""
        by_ident = self._by_ident
        slot = by_ident.get(ident)
        if slot is None:
            slot = by_ident.get(ident.rpartition(b"/")[0])
            if slot is None:
                return None
        slot.expires_at = time.monotonic() + self._liveness
        return slot

    def require(self, agent_id: str) -> WorkerSlot:
        slot = self.slots.get(agent_id)
        if slot is None:
            raise InvalidAgentError(f"no active paglet {agent_id!r} on node {self.node_name}")
        return slot

    @property
    def stats(self) -> LoopStats:
        """The message path's counts and timings (loop thread only; read through ``reports.metrics``)."""
        return self._mail.stats

    def unknown(self, agent_id: str) -> InvalidAgentError:
        return InvalidAgentError(f"no paglet {agent_id!r} on node {self.node_name}")

    # -- messages ---------------------------------------------------------------------
    def route(self, agent_id: str, delivery: Delivery) -> bool:
        """Deliver to a local slot or forward to where the paglet went; False if unknown here."""
        slot = self.slots.get(agent_id)
        if slot is not None:
            self._mail.enqueue(slot, delivery)
            return True
        if agent_id in self.parked:
            self.parked.route(agent_id, delivery)
            return True
        address = self._forwards.address_of(agent_id)
        if address is not None:
            self._peers.forward(address, agent_id, delivery)
            return True
        return False

    def call(self, agent_id: str, frames: list[bytes], origin: Origin) -> None:
        """Send a node request (``frames``: a ``call`` header, then payload) to the worker's main socket."""
        slot = self.slots.get(agent_id)
        if slot is None or slot.phase in (Phase.STARTING, Phase.PREPARED) or not slot.connected:
            reason = "is not here" if slot is None else f"is not active here yet ({slot.phase.value})"
            if slot is not None and slot.phase is Phase.CRASHED:
                self._fail(origin, PagletCrashedError(f"paglet {agent_id!r} crashed: {slot.crash_reason}"))
            else:
                self._fail(origin, InvalidAgentError(f"paglet {agent_id!r} {reason} on node {self.node_name}"))
            return
        self._mail.call(slot, frames[0], frames[1:], origin)

    # -- worker frames ------------------------------------------------------------------
    def on_worker_frame(self, slot: WorkerSlot, ident: bytes, op: bytes, cid: bytes, rest: list[bytes]) -> None:
        """A ``rep``, ``back``, ``idle`` or ``ready`` from one of the slot's sockets."""
        if op == REP:
            self._mail.on_reply(slot, ident, cid, rest)
        elif op == BACK:
            self._mail.on_give_back(slot, ident, cid, rest)
        elif op == IDLE:
            self._mail.idle(slot, ident)
        elif op == READY:
            self._on_ready(slot, rest)

    def _on_ready(self, slot: WorkerSlot, rest: list[bytes]) -> None:
        try:
            ready = back.parse_ready(rest)
        except PagletError:
            return
        if ready.token != slot.token or slot.phase not in (Phase.STARTING, Phase.PREPARED):
            return
        if slot.connected:
            return
        if slot.pid is None:
            slot.pid = ready.pid
            self._by_pid[ready.pid] = slot
        if ready.error:  # it could not even load its class; it exits by itself
            origin, slot.start_origin = slot.start_origin, None
            if origin is not None:
                origin.fail(self._sender, ready.error)
            self._fail_slot(slot, error_from_wire(ready.error))  # mail that woke it learns why it did not
            self.stop(slot.agent_id)
            return
        slot.connected = True
        slot.state_class_name = ready.state_class or ""
        checkpoint = ready.checkpoint
        if isinstance(checkpoint, float) and checkpoint >= 0:
            slot.checkpoint_interval = checkpoint
        if isinstance(ready.idle, (int, float)) and ready.idle >= 0:
            slot.idle_timeout = float(ready.idle)
        if ready.batch is not None and 1 <= ready.batch <= BATCH_MAX:
            slot.batch_max = ready.batch
        if slot.start_header is None:  # prepared for an arrival: the state comes later
            slot.phase = Phase.PREPARED
            origin, slot.start_origin = slot.start_origin, None
            if origin is not None:
                origin.ok(self._sender, [])
            return
        self._send_start(slot, slot.start_header, slot.start_payload, slot.start_origin)

    def _send_start(self, slot: WorkerSlot, header: bytes, payload: list[bytes], origin: Origin | None) -> None:
        slot.phase = Phase.STARTING
        slot.start_origin = None
        slot.start_payload = []
        self._mail.start(slot, header, payload, origin)

    def start_prepared(
        self, agent_id: str, header: bytes, payload: list[bytes], origin: Origin, seen_ids: list[str]
    ) -> None:
        """Give an arriving paglet's prepared worker its state and run its arrival hook."""
        slot = self.slots.get(agent_id)
        if slot is None or slot.phase is not Phase.PREPARED:
            phase = "unknown" if slot is None else slot.phase.value
            self._fail(origin, HostError(f"paglet {agent_id!r} is not prepared to arrive here ({phase})"))
            return
        for mid in seen_ids:
            slot.seen.add(mid)
        self._send_start(slot, header, payload, origin)

    def _started(self, slot: WorkerSlot, ok: bool) -> None:
        if ok:
            slot.phase = Phase.READY
            slot.last_active = time.monotonic()
            self._forwards.drop(slot.agent_id)  # it lives here (again)
        else:
            source = slot.source_address
            self.stop(slot.agent_id, forward_to=source)

    # -- moving ---------------------------------------------------------------------------
    def freeze(self, agent_id: str, except_ident: bytes | None, origin: Origin) -> None:
        """Stop handing out messages; ``origin`` hears once the in-flight ones (but the mover's) are done."""
        slot = self.require(agent_id)
        if slot.phase is not Phase.READY:
            raise HostError(f"paglet {agent_id!r} cannot move while {slot.phase.value}")
        self._mail.freeze(slot, except_ident, origin)

    def cut_short(self, agent_id: str, error: PagletError) -> int:
        """The node stops and waits no longer: fail the frozen paglet's messages in flight, complete its freeze."""
        slot = self.slots.get(agent_id)
        if slot is None or slot.phase is not Phase.MOVING:
            return 0
        return self._mail.cut_short(slot, error)

    def unfreeze(self, agent_id: str) -> None:
        """The move failed: the paglet stays and its mailbox flows again."""
        slot = self.slots.get(agent_id)
        if slot is not None and slot.phase is Phase.MOVING:
            self._mail.unfreeze(slot)

    def depart(self, agent_id: str, address: str) -> None:
        """The paglet now lives at ``address``: forward its backlog there and let the worker go."""
        slot = self.require(agent_id)
        if slot.phase is not Phase.MOVING:
            raise HostError(f"paglet {agent_id!r} is not moving")
        del self.slots[agent_id]
        slot.phase = Phase.DEPARTED
        slot.moved_to = address
        slot.idle_handlers.clear()
        self._forwards.set(agent_id, address, time.monotonic())
        for delivery in slot.queue.drain():
            self._peers.forward(address, agent_id, delivery)
        if not slot.pending_cids:
            self._exit_worker(slot)

    # -- parking ---------------------------------------------------------------------------
    def park(self, agent_id: str, activate_on_message: bool, queue_when_inactive: bool) -> None:
        """The frozen paglet's record is on disk: route to the parked table from now on.

        What waited in its mailbox is routed as the parked paglet's mail, in
        order (see :meth:`ParkedPaglets.take_mailbox`); the worker finishes
        what it holds (a handler that parked it) and exits, and only then may
        a message wake the paglet again.
        """
        slot = self.require(agent_id)
        if slot.phase is not Phase.MOVING:
            raise HostError(f"paglet {agent_id!r} is not frozen")
        del self.slots[agent_id]
        slot.phase = Phase.DEPARTED
        slot.idle_handlers.clear()
        running = slot.pid if slot.pid is not None and self._by_pid.get(slot.pid) is slot else None
        self.parked.park(agent_id, activate_on_message, queue_when_inactive, old_worker=running)
        self.parked.take_mailbox(agent_id, slot.queue.drain())
        if not slot.pending_cids:
            self._exit_worker(slot)

    def open_activation(
        self, agent_id: str, token: str, class_name: str, header: bytes, payload: list[bytes], origin: Origin,
        deadline: float,
    ) -> None:  # fmt: skip
        """A parked paglet wakes: a held slot takes its messages from now on; its disk mail goes first later."""
        self.open_slot(agent_id, token, class_name, header, payload, origin, deadline)
        slot = self.slots[agent_id]
        slot.held = True
        for delivery in self.parked.unpark(agent_id):
            self._mail.enqueue(slot, delivery)

    def release(self, agent_id: str, mail: list[Delivery]) -> None:
        """The paglet is up: its parked mail goes ahead of what arrived meanwhile, and delivery starts."""
        slot = self.slots.get(agent_id)
        if slot is None:
            for delivery in mail:
                self._fail(delivery.origin, self.unknown(agent_id))
            return
        slot.queue.push_front([(d.priority, d) for d in mail])
        slot.held = False
        self._mail.pump(slot)

    def repark(self, agent_id: str, activate_on_message: bool, queue_when_inactive: bool, error: PagletError) -> None:
        """Waking failed: drop the slot (failing what reached it) and keep the paglet parked."""
        slot = self.slots.get(agent_id)
        if slot is not None:
            self._fail_slot(slot, error)
            self.stop(agent_id)
        self.parked.fail_waking(agent_id, error)
        self.parked.park(agent_id, activate_on_message, queue_when_inactive)

    def moved(self, agent_id: str, address: str) -> None:
        """A peer says the paglet is now at ``address``: collapse the chain."""
        self._forwards.moved(agent_id, address, time.monotonic())

    # -- ending ---------------------------------------------------------------------------
    def _exit_worker(self, slot: WorkerSlot) -> None:
        if slot.connected:
            self._sender.send_back(back.exit_frames(slot.ident))
            slot.connected = False
        if self._by_ident.get(slot.ident) is slot:
            del self._by_ident[slot.ident]

    def stop(self, agent_id: str, *, forward_to: str | None = None) -> int | None:
        """Fail (or forward) what the paglet still owes, ask its worker to exit, forget the slot.

        The pid stays mapped so the exit report is recognised as expected.
        """
        slot = self.slots.get(agent_id)
        if slot is None:
            return None
        if slot.phase is not Phase.CRASHED:
            slot.phase = Phase.STOPPING
        if forward_to:
            for delivery in slot.queue.drain():
                self._peers.forward(forward_to, agent_id, delivery)
        self._fail_slot(slot, InvalidAgentError(f"paglet {agent_id!r} was removed from node {self.node_name}"))
        if slot.connected:
            self._sender.send_back(back.exit_frames(slot.ident))
        self.forget(agent_id)
        return slot.pid

    def forget(self, agent_id: str) -> None:
        slot = self.slots.pop(agent_id, None)
        if slot is None:
            return
        if self._by_ident.get(slot.ident) is slot and slot.phase is not Phase.DEPARTED:
            del self._by_ident[slot.ident]
        if slot.phase not in GONE_PHASES and slot.pid is not None and self._by_pid.get(slot.pid) is slot:
            del self._by_pid[slot.pid]

    def on_exit(self, pid: int, code: int) -> None:
        slot = self._by_pid.pop(pid, None)
        if slot is None:
            return
        slot.exitcode = code
        if slot.phase is Phase.DEPARTED:
            self._fail_slot(slot, PagletCrashedError(f"paglet {slot.agent_id!r} left before answering"))
            if self._by_ident.get(slot.ident) is slot:
                del self._by_ident[slot.ident]
            self.parked.worker_exited(slot.agent_id, pid)
            return
        if slot.phase not in (Phase.STOPPING, Phase.CRASHED):
            if code == back.CRASH_EXIT_CODE:
                how = "ended: its paglet raised a BaseException (its worker's log says where)"
            else:
                how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            self._crash(slot, f"worker process {pid} {how}")

    def crash_reported(self, slot: WorkerSlot, reason: str) -> None:
        """The worker says its paglet raised a BaseException: it is crashed, whoever waits on it hears now."""
        if slot.phase is Phase.DEPARTED:  # it lives elsewhere now; only what this worker still held fails
            self._fail_slot(slot, PagletCrashedError(f"paglet {slot.agent_id!r} crashed after it left: {reason}"))
            return
        if self.slots.get(slot.agent_id) is slot:
            self._crash(slot, reason)

    def _crash(self, slot: WorkerSlot, reason: str) -> None:
        if slot.phase is Phase.CRASHED:
            return
        slot.phase = Phase.CRASHED
        slot.crash_reason = reason
        slot.connected = False
        self._fail_slot(slot, PagletCrashedError(f"paglet {slot.agent_id!r} crashed: {reason}"))
        self._on_crash(slot.agent_id, slot.pid, reason)

    def _fail_slot(self, slot: WorkerSlot, error: PagletError) -> None:
        self._mail.fail_pending(slot, error)
        slot.idle_handlers.clear()
        slot.in_flight = 0
        queued = slot.queue.drain()
        for delivery in queued:
            slot.failed += 1
            self._fail(delivery.origin, error)
        self._mail.stats.failed_messages(slot.agent_id, slot.class_name, len(queued), error_text(error_to_wire(error)))
        self._fail(slot.start_origin, error)
        self._fail(slot.freeze_origin, error)
        slot.start_origin = slot.freeze_origin = None

    def _fail(self, origin: Origin | None, exc: BaseException) -> None:
        self._mail.fail(origin, exc)

    # -- time -------------------------------------------------------------------------------
    def housekeeping(self, now: float) -> None:
        """Heartbeats, silent or late workers, expired forwarding entries."""
        for slot in list(self.slots.values()):
            if slot.phase is Phase.CRASHED:
                continue
            if not slot.connected or slot.phase is Phase.PREPARED:
                if now > slot.start_deadline:
                    if slot.phase is Phase.PREPARED:
                        self.stop(slot.agent_id, forward_to=slot.source_address)  # it never arrived
                    else:
                        self._crash(slot, "did not start in time")
                    continue
                if not slot.connected:
                    continue
            if now > slot.expires_at:
                self._crash(slot, f"missed heartbeats for {self._liveness:.1f} s")
                continue
            self._sender.send_back(back.hb_to_worker(slot.ident))
        self._forwards.expire(now)

    def close(self, error: PagletError) -> None:
        for slot in list(self.slots.values()):
            self._fail_slot(slot, error)


__all__ = ["WorkerTable"]

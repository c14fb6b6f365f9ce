"""The broker's table of workers: slots, mailboxes, lifecycles and forwarding entries.

Owned by the broker thread and touched by nothing else. The broker feeds it
validated requests and worker frames; it answers through the broker (its
``Sender``) and sends messages for departed paglets on through
:class:`~paglets.node.broker.peers.PeerLinks`.

A slot's life: STARTING (forked, waiting for ``ready`` and the start hook) or
PREPARED (an arriving paglet's worker, waiting for its state) -> READY ->
MOVING (leaving: new messages wait) -> DEPARTED (a forwarding entry takes
its place; the worker finishes what it holds, then exits). CRASHED and
STOPPING are the other ends.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from paglets.core.errors import (
    HostError,
    InvalidAgentError,
    OverloadedError,
    PagletCrashedError,
    PagletError,
)
from paglets.core.messages import UNQUEUED_PRIORITY
from paglets.node.broker.parked_routes import ParkedPaglets
from paglets.node.broker.peers import PeerLinks
from paglets.node.broker.slots import EMPTY_MAP, Delivery, Origin, Pending, Phase, Sender, WorkerSlot
from paglets.wire import protocol
from paglets.wire.errors import error_to_wire

MSG = b"msg"
MSGS = b"msgs"
START = b"start"
CALL = b"call"
HB = b"hb"
EXIT = protocol.pack({"op": "exit"})
MSG_HEADER = {False: protocol.pack({"oneway": False}), True: protocol.pack({"oneway": True})}
MSG_HEADER_UNQUEUED = {
    False: protocol.pack({"oneway": False, "unqueued": True}),
    True: protocol.pack({"oneway": True, "unqueued": True}),
}
ACK_LIMIT = 1000
BATCH_MAX = 256  # the most oneway messages one handler may be given at once (MAILBOX_BATCH caps it lower)
BATCH_SLOWER_THAN = 0.002  # s per message: handlers this slow get one message at a time
GONE_PHASES = (Phase.STOPPING, Phase.DEPARTED)


class WorkerTable:
    """Slots, pending requests and forwarding entries of one node."""

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
        self._mailbox_limit = mailbox_limit
        self._ack_limit = min(ACK_LIMIT, mailbox_limit)
        self._liveness = liveness
        self._forward_ttl = forward_ttl
        self.slots: dict[str, WorkerSlot] = {}
        self._by_ident: dict[bytes, WorkerSlot] = {}
        self._by_pid: dict[int, WorkerSlot] = {}
        self._pending: dict[bytes, Pending] = {}
        self._forwards: dict[str, tuple[str, float]] = {}
        self._rids = itertools.count(1)

    # -- slots --------------------------------------------------------------------
    def open_slot(
        self,
        agent_id: str,
        nonce: str,
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
            ident=agent_id.encode(),
            nonce=nonce,
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
        slot = self._by_ident.get(ident.split(b"/", 1)[0])
        if slot is not None:
            slot.expires_at = time.monotonic() + self._liveness
        return slot

    def require(self, agent_id: str) -> WorkerSlot:
        slot = self.slots.get(agent_id)
        if slot is None:
            raise InvalidAgentError(f"no active paglet {agent_id!r} on node {self.node_name}")
        return slot

    def unknown(self, agent_id: str) -> InvalidAgentError:
        return InvalidAgentError(f"no paglet {agent_id!r} on node {self.node_name}")

    def summaries(self) -> list[dict[str, Any]]:
        """Every paglet of this node — not workers waiting for a paglet that may still not come."""
        return [slot.summary() for slot in self.slots.values() if slot.phase is not Phase.PREPARED]

    # -- messages ---------------------------------------------------------------------
    def route(self, agent_id: str, delivery: Delivery) -> bool:
        """Deliver to a local slot or forward to where the paglet went; False if unknown here."""
        slot = self.slots.get(agent_id)
        if slot is not None:
            self._enqueue(slot, delivery)
            return True
        if agent_id in self.parked:
            self.parked.route(agent_id, delivery)
            return True
        forward = self._forwards.get(agent_id)
        if forward is not None:
            self._peers.forward(forward[0], agent_id, delivery)
            return True
        return False

    def _enqueue(self, slot: WorkerSlot, delivery: Delivery) -> None:
        origin = delivery.origin
        if slot.phase is Phase.CRASHED:
            self._fail(origin, PagletCrashedError(f"paglet {slot.agent_id!r} crashed: {slot.crash_reason}"))
            return
        if slot.phase is Phase.STOPPING:
            self._fail(origin, InvalidAgentError(f"paglet {slot.agent_id!r} is being removed"))
            return
        if delivery.mid is not None and self._is_duplicate(slot, delivery):
            return
        if delivery.priority == UNQUEUED_PRIORITY and self._may_bypass(slot):
            delivery.unqueued = True
            self._dispatch(slot, delivery, slot.ident)
            return
        if len(slot.queue) >= self._mailbox_limit:
            self._fail(
                origin, OverloadedError(f"mailbox of paglet {slot.agent_id!r} is full ({len(slot.queue)} queued)")
            )
            return
        if delivery.oneway and origin is not None:
            # Accept at once while the mailbox is short; past that the ack waits
            # until the message reaches the worker, which slows a fast sender
            # down to the paglet's pace instead of filling memory.
            if len(slot.queue) < self._ack_limit:
                origin.accepted(self._sender)
                delivery.origin = None
            else:
                delivery.ack_deferred = True
        slot.queue.push(delivery.priority, delivery)
        self._pump(slot)

    @staticmethod
    def _may_bypass(slot: WorkerSlot) -> bool:
        """Unqueued messages go straight in — while moving, only until the state snapshot."""
        return slot.phase is Phase.READY or (slot.phase is Phase.MOVING and slot.freeze_origin is not None)

    def _is_duplicate(self, slot: WorkerSlot, delivery: Delivery) -> bool:
        """Record the message id; a forwarded message already delivered is dropped.

        Only forwarded messages are checked: a caller that sends the same
        Message object twice means two deliveries.
        """
        seen, reply = slot.seen.lookup(delivery.mid)
        if not seen or not delivery.forwarded:
            slot.seen.add(delivery.mid)
            return False
        origin = delivery.origin
        if origin is not None:
            if delivery.oneway:
                origin.accepted(self._sender)
            elif reply is not None:
                ok, payload = reply
                if ok:
                    origin.ok(self._sender, payload)
                else:
                    origin.fail(self._sender, protocol.unpack_map(payload[0], "error"))
            else:
                self._fail(origin, HostError(f"message {delivery.mid} was already delivered to {slot.agent_id!r}"))
        return True

    def _pump(self, slot: WorkerSlot) -> None:
        idle = slot.idle_handlers
        queue = slot.queue
        while idle and queue and slot.phase is Phase.READY and not slot.held:
            handler = idle.popleft()
            delivery = queue.pop()
            if (
                delivery.oneway and queue and queue.peek().oneway
                and slot.batch_max > 1 and slot.handling_time < BATCH_SLOWER_THAN
            ):  # fmt: skip
                # A backlog of oneway mail: this handler takes its share of it in
                # one frame set (one wake-up, one reply), the idle others the rest.
                share = min(slot.batch_max, -(-(len(queue) + 1) // (len(idle) + 1)))
                batch = [delivery]
                while len(batch) < share and queue and queue.peek().oneway:
                    batch.append(queue.pop())
                if len(batch) > 1:
                    self._dispatch_batch(slot, batch, handler)
                    continue
            self._dispatch(slot, delivery, handler)

    def _dispatch(self, slot: WorkerSlot, delivery: Delivery, handler: bytes) -> None:
        """Send one message to a handler socket (or, unqueued, to the worker's main socket)."""
        rid = self._next_rid()
        origin = delivery.origin
        if delivery.oneway:
            if delivery.ack_deferred and origin is not None:
                origin.accepted(self._sender)
            origin = None
        self._pending[rid] = Pending(
            slot, origin, is_message=True, handler=None if delivery.unqueued else handler, mid=delivery.mid,
            sent_at=time.monotonic(),
        )  # fmt: skip
        slot.pending_rids.add(rid)
        slot.in_flight += 1
        headers = MSG_HEADER_UNQUEUED if delivery.unqueued else MSG_HEADER
        self._sender.send_back([handler, MSG, rid, headers[delivery.oneway], delivery.body])

    def _dispatch_batch(self, slot: WorkerSlot, batch: list[Delivery], handler: bytes) -> None:
        """Send several oneway messages to one handler; it runs them in order and answers once."""
        for delivery in batch:
            if delivery.ack_deferred and delivery.origin is not None:
                delivery.origin.accepted(self._sender)
        rid = self._next_rid()
        self._pending[rid] = Pending(
            slot, None, is_message=True, handler=handler, batch=batch, sent_at=time.monotonic()
        )
        slot.pending_rids.add(rid)
        slot.in_flight += len(batch)
        self._sender.send_back([handler, MSGS, rid, *[delivery.body for delivery in batch]])

    def _next_rid(self) -> bytes:
        return next(self._rids).to_bytes(8, "big")

    def call(self, agent_id: str, frames: list[bytes], origin: Origin) -> None:
        """Send a node request (state, hook, dispose...) to the worker's main socket."""
        slot = self.slots.get(agent_id)
        if slot is None or slot.phase in (Phase.STARTING, Phase.PREPARED) or not slot.connected:
            reason = "is not here" if slot is None else f"is not active here yet ({slot.phase.value})"
            if slot is not None and slot.phase is Phase.CRASHED:
                self._fail(origin, PagletCrashedError(f"paglet {agent_id!r} crashed: {slot.crash_reason}"))
            else:
                self._fail(origin, InvalidAgentError(f"paglet {agent_id!r} {reason} on node {self.node_name}"))
            return
        rid = self._next_rid()
        self._pending[rid] = Pending(slot, origin)
        slot.pending_rids.add(rid)
        self._sender.send_back([slot.ident, CALL, rid, *frames])

    # -- worker frames ------------------------------------------------------------------
    def on_worker_frame(self, slot: WorkerSlot, ident: bytes, op: bytes, rid: bytes, rest: list[bytes]) -> None:
        if op == b"rep":
            self._on_reply(rid, rest)
        elif op == b"back":
            self._on_give_back(rid, rest)
        elif op == b"idle":
            if ident not in slot.idle_handlers and slot.phase not in GONE_PHASES:
                slot.idle_handlers.append(ident)
                self._pump(slot)
        elif op == b"ready":
            self._on_ready(slot, rest)

    def _on_reply(self, rid: bytes, rest: list[bytes]) -> None:
        pending = self._pending.pop(rid, None)
        if pending is None or not rest:
            return
        slot = pending.slot
        slot.pending_rids.discard(rid)
        ok = rest[0] == protocol.OK
        payload = rest[1:]
        if pending.is_message:
            self._message_done(slot, pending, ok, payload)
        origin = pending.origin
        if origin is not None:
            if not ok:
                origin.fail(self._sender, _error_payload(payload))
            elif slot.moved_to is not None:  # the caller learns where the paglet went
                origin.ok(self._sender, payload, protocol.pack({"moved_to": slot.moved_to}))
            else:
                origin.ok(self._sender, payload)
        if pending.is_start:
            self._started(slot, ok)
        self._after_progress(slot)

    @staticmethod
    def _message_done(slot: WorkerSlot, pending: Pending, ok: bool, payload: list[bytes]) -> None:
        """Count a handled message (or batch), note how long it took, and free its handler."""
        count = pending.count
        slot.in_flight -= count
        if not ok:
            failed = count
        elif pending.batch is not None and payload:
            failed = min(count, int.from_bytes(payload[0], "big"))  # a batch's reply: how many failed
        else:
            failed = 0
        slot.delivered += count - failed
        slot.failed += failed
        # Batches stop once a batch's messages took long each (the backlog is better
        # shared among handlers one by one) and resume once a message goes fast again.
        took = (time.monotonic() - pending.sent_at) / count
        if pending.batch is not None or took < slot.handling_time:
            slot.handling_time = took
        if pending.handler is not None and slot.phase not in GONE_PHASES:
            slot.idle_handlers.append(pending.handler)
        if pending.mid is not None:
            slot.seen.record_reply(pending.mid, ok, payload)

    def _on_give_back(self, rid: bytes, rest: list[bytes]) -> None:
        """A handler leaving with its paglet returns the end of its batch: queue it again, first."""
        pending = self._pending.get(rid)
        if pending is None or pending.batch is None or not rest:
            return
        count = min(int.from_bytes(rest[0], "big"), len(pending.batch) - 1)
        if count <= 0:
            return
        returned = pending.batch[-count:]
        del pending.batch[-count:]
        slot = pending.slot
        slot.in_flight -= count
        if slot.phase in GONE_PHASES:  # cannot happen (``back`` precedes the request to leave); lose nothing
            for delivery in returned:
                self.route(slot.agent_id, delivery)
            return
        slot.queue.push_front([(delivery.priority, delivery) for delivery in returned])
        self._after_progress(slot)

    def _after_progress(self, slot: WorkerSlot) -> None:
        if slot.phase is Phase.READY:
            self._pump(slot)
        elif slot.phase is Phase.MOVING:
            self._check_frozen(slot)
        elif slot.phase is Phase.DEPARTED and not slot.pending_rids:
            self._exit_worker(slot)

    def _on_ready(self, slot: WorkerSlot, rest: list[bytes]) -> None:
        try:
            header = protocol.unpack_map(rest[0], "ready header") if rest else {}
        except PagletError:
            header = {}
        if header.get("nonce") != slot.nonce or slot.phase not in (Phase.STARTING, Phase.PREPARED):
            return
        if slot.connected:
            return
        pid = header.get("pid")
        if isinstance(pid, int) and slot.pid is None:
            slot.pid = pid
            self._by_pid[pid] = slot
        if header.get("error"):  # it could not even load its class; it exits by itself
            origin, slot.start_origin = slot.start_origin, None
            if origin is not None:
                origin.fail(self._sender, header["error"])
            self.stop(slot.agent_id)
            return
        slot.connected = True
        checkpoint = header.get("checkpoint")
        if isinstance(checkpoint, float) and checkpoint >= 0:
            slot.checkpoint_interval = checkpoint
        batch = header.get("batch")
        if isinstance(batch, int) and not isinstance(batch, bool) and 1 <= batch <= BATCH_MAX:
            slot.batch_max = batch
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
        rid = self._next_rid()
        self._pending[rid] = Pending(slot, origin, is_start=True)
        slot.pending_rids.add(rid)
        self._sender.send_back([slot.ident, START, rid, header, *payload])

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
            self._forwards.pop(slot.agent_id, None)  # it lives here (again)
        else:
            source = slot.source_address
            self.stop(slot.agent_id, forward_to=source)

    # -- moving ---------------------------------------------------------------------------
    def freeze(self, agent_id: str, except_ident: bytes | None, origin: Origin) -> None:
        """Stop handing out messages; ``origin`` hears once the in-flight ones (but the mover's) are done."""
        slot = self.require(agent_id)
        if slot.phase is not Phase.READY:
            raise HostError(f"paglet {agent_id!r} cannot move while {slot.phase.value}")
        slot.phase = Phase.MOVING
        slot.freeze_origin = origin
        slot.freeze_except = except_ident
        self._check_frozen(slot)

    def _check_frozen(self, slot: WorkerSlot) -> None:
        if slot.freeze_origin is None:
            return
        busy = [
            p
            for rid in slot.pending_rids
            if (p := self._pending.get(rid)) and p.is_message
            if p.handler is None or p.handler != slot.freeze_except
        ]
        if not busy:
            origin, slot.freeze_origin = slot.freeze_origin, None
            origin.ok(self._sender, [])

    def unfreeze(self, agent_id: str) -> None:
        """The move failed: the paglet stays and its mailbox flows again."""
        slot = self.slots.get(agent_id)
        if slot is None or slot.phase is not Phase.MOVING:
            return
        slot.phase = Phase.READY
        slot.freeze_origin = None
        slot.freeze_except = None
        self._pump(slot)

    def depart(self, agent_id: str, address: str) -> None:
        """The paglet now lives at ``address``: forward its backlog there and let the worker go."""
        slot = self.require(agent_id)
        if slot.phase is not Phase.MOVING:
            raise HostError(f"paglet {agent_id!r} is not moving")
        del self.slots[agent_id]
        slot.phase = Phase.DEPARTED
        slot.moved_to = address
        slot.idle_handlers.clear()
        self.set_forward(agent_id, address)
        for delivery in slot.queue.drain():
            self._peers.forward(address, agent_id, delivery)
        if not slot.pending_rids:
            self._exit_worker(slot)

    # -- parking ---------------------------------------------------------------------------
    def park(self, agent_id: str, activate_on_message: bool, queue_when_inactive: bool) -> None:
        """The frozen paglet's record is on disk: route to the parked table from now on.

        What waited in its mailbox goes to its durable mail queue, in order;
        the worker finishes what it holds (a handler that parked it) and exits.
        """
        slot = self.require(agent_id)
        if slot.phase is not Phase.MOVING:
            raise HostError(f"paglet {agent_id!r} is not frozen")
        del self.slots[agent_id]
        slot.phase = Phase.DEPARTED
        slot.idle_handlers.clear()
        self.parked.park(agent_id, activate_on_message, queue_when_inactive)
        self.parked.queue_all(agent_id, slot.queue.drain())
        if not slot.pending_rids:
            self._exit_worker(slot)

    def open_activation(
        self, agent_id: str, nonce: str, class_name: str, header: bytes, payload: list[bytes], origin: Origin,
        deadline: float,
    ) -> None:  # fmt: skip
        """A parked paglet wakes: a held slot takes its messages from now on; its disk mail goes first later."""
        self.open_slot(agent_id, nonce, class_name, header, payload, origin, deadline)
        slot = self.slots[agent_id]
        slot.held = True
        for delivery in self.parked.unpark(agent_id):
            self._enqueue(slot, delivery)

    def release(self, agent_id: str, mail: list[Delivery]) -> None:
        """The paglet is up: its parked mail goes ahead of what arrived meanwhile, and delivery starts."""
        slot = self.slots.get(agent_id)
        if slot is None:
            for delivery in mail:
                self._fail(delivery.origin, self.unknown(agent_id))
            return
        slot.queue.push_front([(d.priority, d) for d in mail])
        slot.held = False
        self._pump(slot)

    def repark(self, agent_id: str, activate_on_message: bool, queue_when_inactive: bool, error: PagletError) -> None:
        """Waking failed: drop the slot (failing what reached it) and keep the paglet parked."""
        slot = self.slots.get(agent_id)
        if slot is not None:
            self._fail_slot(slot, error)
            self.stop(agent_id)
        self.parked.fail_waking(agent_id, error)
        self.parked.park(agent_id, activate_on_message, queue_when_inactive)

    def seen_ids(self, agent_id: str) -> list[str]:
        """Ids of messages this paglet already took in — not those still queued, which travel separately."""
        slot = self.require(agent_id)
        queued = {d.mid for d in slot.queue.items()}
        return [mid for mid in slot.seen.ids() if mid not in queued]

    def set_forward(self, agent_id: str, address: str) -> None:
        self._forwards[agent_id] = (address, time.monotonic() + self._forward_ttl)

    def forward_of(self, agent_id: str) -> str | None:
        forward = self._forwards.get(agent_id)
        return forward[0] if forward else None

    def moved(self, agent_id: str, address: str) -> None:
        """A peer says the paglet is now at ``address``: collapse the chain."""
        if agent_id in self._forwards:
            self.set_forward(agent_id, address)

    # -- ending ---------------------------------------------------------------------------
    def _exit_worker(self, slot: WorkerSlot) -> None:
        if slot.connected:
            self._sender.send_back([slot.ident, CALL, b"", EXIT])
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
            self._sender.send_back([slot.ident, CALL, b"", EXIT])
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
        if slot.phase is Phase.DEPARTED:
            self._fail_slot(slot, PagletCrashedError(f"paglet {slot.agent_id!r} left before answering"))
            if self._by_ident.get(slot.ident) is slot:
                del self._by_ident[slot.ident]
            return
        if slot.phase not in (Phase.STOPPING, Phase.CRASHED):
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            self._crash(slot, f"worker process {pid} {how}")

    def _crash(self, slot: WorkerSlot, reason: str) -> None:
        if slot.phase is Phase.CRASHED:
            return
        slot.phase = Phase.CRASHED
        slot.crash_reason = reason
        slot.connected = False
        self._fail_slot(slot, PagletCrashedError(f"paglet {slot.agent_id!r} crashed: {reason}"))
        self._on_crash(slot.agent_id, slot.pid, reason)

    def _fail_slot(self, slot: WorkerSlot, error: PagletError) -> None:
        for rid in list(slot.pending_rids):
            pending = self._pending.pop(rid, None)
            if pending is not None:
                if pending.is_message:
                    slot.failed += pending.count
                self._fail(pending.origin, error)
        slot.pending_rids.clear()
        slot.idle_handlers.clear()
        slot.in_flight = 0
        for delivery in slot.queue.drain():
            slot.failed += 1
            self._fail(delivery.origin, error)
        self._fail(slot.start_origin, error)
        self._fail(slot.freeze_origin, error)
        slot.start_origin = slot.freeze_origin = None

    def _fail(self, origin: Origin | None, exc: BaseException) -> None:
        if origin is not None:
            origin.fail(self._sender, error_to_wire(exc))

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
            self._sender.send_back([slot.ident, HB, b"", EMPTY_MAP])
        for agent_id, (_address, expires) in list(self._forwards.items()):
            if now > expires:
                del self._forwards[agent_id]

    def close(self, error: PagletError) -> None:
        for slot in list(self.slots.values()):
            self._fail_slot(slot, error)


def _error_payload(payload: list[bytes]) -> dict[str, Any]:
    if not payload:
        return {"type": "ProtocolError", "message": "error reply without a body"}
    try:
        return protocol.unpack_map(payload[0], "error body")
    except PagletError as exc:
        return error_to_wire(exc)


__all__ = ["WorkerTable"]

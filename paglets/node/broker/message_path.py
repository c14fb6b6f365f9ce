"""The message path of a node's worker table: mailbox in, handler credits out, replies back.

A message for a local paglet enters :meth:`MessagePath.enqueue` (duplicates
dropped, the mailbox bounded, oneway senders acknowledged), waits in the
slot's mailbox, and :meth:`MessagePath.pump` hands it to an idle handler
socket of the worker (a ``msg``, or a ``msgs`` batch of oneway messages).
The handler's ``rep`` frees the handler again and answers the sender.

Every request the node sends a worker and waits for - messages, ``start``
and ``call`` - is recorded here as a :class:`~paglets.node.broker.slots.Pending`
under its ``cid`` until the worker's ``rep`` arrives or the slot fails.

Freezing is part of the path too: a moving paglet's mailbox is held
(:meth:`MessagePath.freeze`) until the messages in flight are answered.

Owned by the broker thread and touched by nothing else; built and used by
:class:`~paglets.node.broker.table.WorkerTable`, which owns the slots and
is told (``on_started``, ``on_drained``, ``reroute``) what its requests
led to.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from paglets.core.errors import HostError, InvalidAgentError, OverloadedError, PagletCrashedError, PagletError
from paglets.core.messages import UNQUEUED_PRIORITY
from paglets.node.broker.slots import Delivery, Origin, Pending, Phase, Sender, WorkerSlot
from paglets.node.broker.stats import LoopStats, error_text
from paglets.wire import back, protocol
from paglets.wire.back import msg_frames, parse_rep
from paglets.wire.errors import error_to_wire

ACK_LIMIT = 1000
BATCH_SLOWER_THAN = 0.002  # s per message: handlers this slow get one message at a time
GONE_PHASES = (Phase.STOPPING, Phase.DEPARTED)


class MessagePath:
    """Mailboxes to handlers, and the requests in flight to workers."""

    def __init__(
        self,
        sender: Sender,
        *,
        mailbox_limit: int,
        on_started: Callable[[WorkerSlot, bool], None],
        on_drained: Callable[[WorkerSlot], None],
        reroute: Callable[[str, Delivery], bool],
    ):
        self._sender = sender
        self._mailbox_limit = mailbox_limit
        self._ack_limit = min(ACK_LIMIT, mailbox_limit)
        self._on_started = on_started
        self._on_drained = on_drained
        self._reroute = reroute
        self._pending: dict[bytes, Pending] = {}
        self._cids = itertools.count(1)
        self.stats = LoopStats()  # counts and timings for the node's metrics (read through a broker command)

    # -- in -------------------------------------------------------------------------
    def enqueue(self, slot: WorkerSlot, delivery: Delivery) -> None:
        origin = delivery.origin
        if slot.phase is Phase.CRASHED:
            error = PagletCrashedError(f"paglet {slot.agent_id!r} crashed: {slot.crash_reason}")
            self.stats.failed_messages(slot.agent_id, slot.class_name, 1, f"PagletCrashedError: {error}", delivery.mid)
            self.fail(origin, error)
            return
        if slot.phase is Phase.STOPPING:
            self.fail(origin, InvalidAgentError(f"paglet {slot.agent_id!r} is being removed"))
            return
        if delivery.mid is not None and self._is_duplicate(slot, delivery):
            return
        if not delivery.oneway:
            delivery.received_at = time.monotonic()  # for the sync round-trip histogram
        if delivery.priority == UNQUEUED_PRIORITY and self._may_bypass(slot):
            delivery.unqueued = True
            self._dispatch(slot, delivery, slot.ident)
            return
        if len(slot.queue) >= self._mailbox_limit:
            self.fail(
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
        self.pump(slot)

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
                    origin.fail(self._sender, back.parse_error(payload))
            else:
                self.fail(origin, HostError(f"message {delivery.mid} was already delivered to {slot.agent_id!r}"))
        return True

    # -- out ------------------------------------------------------------------------
    def pump(self, slot: WorkerSlot) -> None:
        """Hand queued messages to idle handlers while the slot takes mail."""
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
        cid = self._next_cid()
        origin = delivery.origin
        if delivery.oneway:
            if delivery.ack_deferred and origin is not None:
                origin.accepted(self._sender)
            origin = None
        self._pending[cid] = Pending(
            slot, origin, is_message=True, handler=None if delivery.unqueued else handler, mid=delivery.mid,
            sent_at=time.monotonic(), received_at=delivery.received_at,
        )  # fmt: skip
        slot.pending_cids.add(cid)
        slot.in_flight += 1
        slot.last_active = self._pending[cid].sent_at
        self._sender.send_back(msg_frames(handler, cid, delivery.oneway, delivery.unqueued, delivery.body))

    def _dispatch_batch(self, slot: WorkerSlot, batch: list[Delivery], handler: bytes) -> None:
        """Send several oneway messages to one handler; it runs them in order and answers once."""
        for delivery in batch:
            if delivery.ack_deferred and delivery.origin is not None:
                delivery.origin.accepted(self._sender)
        cid = self._next_cid()
        self._pending[cid] = Pending(
            slot, None, is_message=True, handler=handler, batch=batch, sent_at=time.monotonic()
        )
        slot.pending_cids.add(cid)
        slot.in_flight += len(batch)
        slot.last_active = self._pending[cid].sent_at
        self._sender.send_back(back.msgs_frames(handler, cid, [delivery.body for delivery in batch]))

    def _next_cid(self) -> bytes:
        return next(self._cids).to_bytes(8, "big")

    def call(self, slot: WorkerSlot, header: bytes, payload: list[bytes], origin: Origin) -> None:
        """Send a ``call`` (state, hook, dispose...) to the worker's main socket."""
        cid = self._next_cid()
        self._pending[cid] = Pending(slot, origin)
        slot.pending_cids.add(cid)
        self._sender.send_back(back.call_frames(slot.ident, cid, header, payload))

    def start(self, slot: WorkerSlot, header: bytes, payload: list[bytes], origin: Origin | None) -> None:
        """Send ``start``: its reply makes the slot READY (or ends it)."""
        cid = self._next_cid()
        self._pending[cid] = Pending(slot, origin, is_start=True)
        slot.pending_cids.add(cid)
        self._sender.send_back(back.start_frames(slot.ident, cid, header, payload))

    # -- back -----------------------------------------------------------------------
    def idle(self, slot: WorkerSlot, ident: bytes) -> None:
        """A handler socket announced itself: one more credit."""
        if ident not in slot.idle_handlers and slot.phase not in GONE_PHASES:
            slot.idle_handlers.append(ident)
            self.pump(slot)

    def on_reply(self, slot: WorkerSlot, ident: bytes, cid: bytes, rest: list[bytes]) -> None:
        """A worker's ``rep``: answer whoever waits, free the handler, and let the slot move on.

        Only the worker the request went to may answer it - for a message
        given to a handler socket, only that socket.
        """
        pending = self._pending.get(cid)
        if pending is None or pending.slot is not slot or (pending.handler is not None and pending.handler != ident):
            return
        reply = parse_rep(rest)
        if reply is None:
            return
        del self._pending[cid]
        ok, payload = reply
        slot.pending_cids.discard(cid)
        if pending.is_message:
            self._message_done(slot, pending, ok, payload)
        origin = pending.origin
        if origin is not None:
            if not ok:
                origin.fail(self._sender, back.parse_error(payload))
            elif slot.moved_to is not None:  # the caller learns where the paglet went
                origin.ok(self._sender, payload, protocol.pack({"moved_to": slot.moved_to}))
            else:
                origin.ok(self._sender, payload)
        if pending.is_start:
            self._on_started(slot, ok)
        self._after_progress(slot)

    def _message_done(self, slot: WorkerSlot, pending: Pending, ok: bool, payload: list[bytes]) -> None:
        """Count a handled message (or batch), note how long it took, and free its handler."""
        count = pending.count
        slot.in_flight -= count
        if not ok:
            failed = count
        elif pending.batch is not None:
            failed = min(count, back.batch_failures(payload))
        else:
            failed = 0
        slot.delivered += count - failed
        slot.failed += failed
        stats = self.stats
        stats.delivered += count - failed
        if failed:
            self._note_failed(slot, pending, ok, payload, failed)
        # Batches stop once a batch's messages took long each (the backlog is better
        # shared among handlers one by one) and resume once a message goes fast again.
        now = slot.last_active = time.monotonic()
        took = (now - pending.sent_at) / count
        stats.handling.observe(took, count)
        if pending.received_at:
            stats.sync_rtt.observe(now - pending.received_at)
        if pending.batch is not None or took < slot.handling_time:
            slot.handling_time = took
        if pending.handler is not None and slot.phase not in GONE_PHASES:
            slot.idle_handlers.append(pending.handler)
        if pending.mid is not None:
            slot.seen.record_reply(pending.mid, ok, payload)

    def _note_failed(self, slot: WorkerSlot, pending: Pending, ok: bool, payload: list[bytes], failed: int) -> None:
        """Handlers raised: count the messages and note an event (with the error, when one message failed)."""
        if ok:  # a batch of oneway messages, some of which raised
            error = f"{failed} of {pending.count} oneway messages of a batch raised"
        else:
            error = error_text(back.parse_error(payload))
        self.stats.failed_messages(slot.agent_id, slot.class_name, failed, error, pending.mid)

    def on_give_back(self, slot: WorkerSlot, ident: bytes, cid: bytes, rest: list[bytes]) -> None:
        """A handler leaving with its paglet returns the end of its batch: queue it again, first."""
        pending = self._pending.get(cid)
        if pending is None or pending.batch is None or pending.slot is not slot or pending.handler != ident:
            return
        try:
            returned_count = back.parse_give_back(rest)
        except PagletError:
            return
        count = min(returned_count, len(pending.batch) - 1)
        if count <= 0:
            return
        returned = pending.batch[-count:]
        del pending.batch[-count:]
        slot = pending.slot
        slot.in_flight -= count
        if slot.phase in GONE_PHASES:  # cannot happen (``back`` precedes the request to leave); lose nothing
            for delivery in returned:
                self._reroute(slot.agent_id, delivery)
            return
        slot.queue.push_front([(delivery.priority, delivery) for delivery in returned])
        self._after_progress(slot)

    def _after_progress(self, slot: WorkerSlot) -> None:
        if slot.phase is Phase.READY:
            self.pump(slot)
        elif slot.phase is Phase.MOVING:
            self._check_frozen(slot)
        elif slot.phase is Phase.DEPARTED and not slot.pending_cids:
            self._on_drained(slot)

    def oldest_message(self, slot: WorkerSlot) -> float | None:
        """When (monotonic) the longest-running message the slot's worker holds was handed to it; None if idle."""
        started = [
            pending.sent_at
            for pending in map(self._pending.get, slot.pending_cids)
            if pending is not None and pending.is_message
        ]
        return min(started, default=None)

    # -- moving -------------------------------------------------------------------------
    def freeze(self, slot: WorkerSlot, except_handler: bytes | None, origin: Origin) -> None:
        """Hold the mailbox; ``origin`` hears once the messages in flight (but ``except_handler``'s) are done."""
        slot.phase = Phase.MOVING
        slot.freeze_origin = origin
        slot.freeze_except = except_handler
        self._check_frozen(slot)

    def _check_frozen(self, slot: WorkerSlot) -> None:
        if slot.freeze_origin is None or self._busy(slot, slot.freeze_except):
            return
        origin, slot.freeze_origin = slot.freeze_origin, None
        origin.ok(self._sender, [])

    def _busy(self, slot: WorkerSlot, except_handler: bytes | None) -> bool:
        """Whether the slot has messages in flight, not counting those of ``except_handler``."""
        for cid in slot.pending_cids:
            pending = self._pending.get(cid)
            if (
                pending is not None
                and pending.is_message
                and (pending.handler is None or pending.handler != except_handler)
            ):
                return True
        return False

    def cut_short(self, slot: WorkerSlot, error: PagletError) -> int:
        """A stopping node waits no longer for the frozen slot's handlers: fail the messages they hold
        (but the mover's) with ``error`` and complete the freeze. Returns how many messages were cut.

        The handlers are not given back: their paglet is about to be parked and its worker told to exit.
        """
        if slot.freeze_origin is None:
            return 0
        cut = 0
        for cid in list(slot.pending_cids):
            pending = self._pending.get(cid)
            if pending is None or not pending.is_message:
                continue
            if pending.handler is not None and pending.handler == slot.freeze_except:
                continue
            del self._pending[cid]
            slot.pending_cids.discard(cid)
            slot.in_flight -= pending.count
            slot.failed += pending.count
            cut += pending.count
            self.fail(pending.origin, error)  # None for oneway messages: their senders were answered on entry
        self.stats.failed_messages(slot.agent_id, slot.class_name, cut, error_text(error_to_wire(error)))
        self._check_frozen(slot)
        return cut

    def busy_handlers(self, slot: WorkerSlot) -> list[tuple[str, float]]:
        """(handler, seconds it has held its message) for each message in flight to the slot, longest first."""
        now = time.monotonic()
        busy = []
        for cid in slot.pending_cids:
            pending = self._pending.get(cid)
            if pending is not None and pending.is_message:
                # A handler socket's identity is <agent id>/<n>; only the n is worth a log line.
                name = pending.handler.rsplit(b"/", 1)[-1][:16].decode("ascii", "replace") if pending.handler else "-"
                busy.append((name, now - pending.sent_at))
        return sorted(busy, key=lambda item: -item[1])

    def unfreeze(self, slot: WorkerSlot) -> None:
        """The move failed: the mailbox flows again."""
        slot.phase = Phase.READY
        slot.freeze_origin = None
        slot.freeze_except = None
        self.pump(slot)

    # -- ending -------------------------------------------------------------------------

    def fail_pending(self, slot: WorkerSlot, error: PagletError) -> None:
        """Fail every request in flight to the slot's worker."""
        messages, mid = 0, None
        for cid in list(slot.pending_cids):
            pending = self._pending.pop(cid, None)
            if pending is not None:
                if pending.is_message:
                    messages += pending.count
                    mid = pending.mid
                self.fail(pending.origin, error)
        slot.failed += messages
        slot.pending_cids.clear()
        text = error_text(error_to_wire(error))
        self.stats.failed_messages(slot.agent_id, slot.class_name, messages, text, mid if messages == 1 else None)

    def fail(self, origin: Origin | None, exc: BaseException) -> None:
        if origin is not None:
            origin.fail(self._sender, error_to_wire(exc))


__all__ = ["GONE_PHASES", "MessagePath"]

"""Parking paglets on disk and waking them: deactivate, activate, durable mail, schedules.

Owns the wake-up schedule and the thread pool that wakes paglets; the records
and their index belong to :class:`~paglets.node.storage.parked_records.ParkedRecords`,
the routing of messages to parked paglets to the broker's
:class:`~paglets.node.broker.parked_routes.ParkedPaglets`. Any thread.

Deactivate: pick the policy (the request's, else the paglet's own
``deactivation_policy``), run ``on_deactivating``, freeze the mailbox (as for a
move), run the resource cleanups (a failing one unfreezes the paglet and
cancels the deactivation with ``LifecycleError``), snapshot the state, write
the record durably, then switch routing to
"parked" and let the worker go. What waited in the mailbox is routed in order
as if it arrived now, except that accepted oneway mail always goes to the
mail log: a sync message may wake the paglet (and get its real reply once the
old worker has exited), or waits on disk, its sender told
``MessageQueuedError``.

Activate: open a held slot (messages that arrive now wait behind the parked
mail), start a worker with ``on_activation``, read the mail log (after a
barrier on the writer, so nothing acknowledged is missed), put that mail in
front, release, and only then delete the record.
"""

from __future__ import annotations

import heapq
import logging
import shutil
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any

from paglets.client.host_client import HostClient
from paglets.client.proxy import PagletProxy
from paglets.core.errors import HostError, InvalidAgentError, LifecycleError, MessageQueuedError, PagletError
from paglets.core.events import ContextEventLog, PersistencyEvent
from paglets.core.files import PagletFileRef
from paglets.core.runtime_values import EnvelopeKind
from paglets.node.broker.commands import BrokerCommands
from paglets.node.broker.slots import Delivery
from paglets.node.flows.checkpoints import Checkpointer
from paglets.node.flows.inspection import Inspection
from paglets.node.flows.lifecycle import Lifecycle
from paglets.node.identity import NodeIdentity
from paglets.node.storage.files import FileRegistry
from paglets.node.storage.parked_records import ParkedRecords
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest, InactiveRecord, QueuedMessage
from paglets.threads import ThreadPool
from paglets.waiting import wait_for
from paglets.wire import codec
from paglets.wire.envelope import PagletEnvelope

log = logging.getLogger("paglets.parking")
BORN_PARKED = "born_parked"  # request metadata of a paglet created parked: {"plain": bool}
IDLE_REASON = "idle"  # the reason of an idle parking (its wake is event ``woken``)

MAIL_WRITER_DEADLINE = 30.0  # seconds the mail writer may take to make what it holds durable
START_SLACK = 1.0  # seconds beyond start_timeout a waking worker's start may take (the broker's own deadline is first)
WAKE_SLACK = 10.0  # seconds beyond start_timeout a second waker waits for the wake-up already under way
SCHEDULER_STOP_DEADLINE = 5.0  # seconds the wake-up schedule's thread may take to end


class Parking:
    """Deactivation, activation, durable mail and wake-up schedules of one node."""

    def __init__(
        self,
        broker: BrokerCommands,
        lifecycle: Lifecycle,
        inspection: Inspection,
        parked: ParkedRecords,
        events: ContextEventLog,
        here: NodeIdentity,
        *,
        files: FileRegistry,
        checkpoints: Checkpointer,
        client: HostClient,
        start_timeout: float,
    ):
        self._broker = broker
        self._lifecycle = lifecycle
        self._inspection = inspection
        self.parked = parked
        self._events = events
        self._here = here
        self._files = files
        self._checkpoints = checkpoints
        self._client = client
        self._call_timeout = client.timeout
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._waking: dict[str, Future[PagletProxy]] = {}
        self._schedule: list[tuple[float, str]] = []
        self._schedule_cond = threading.Condition(self._lock)
        self._stopping = False
        self._scheduler: threading.Thread | None = None
        self._wakers = ThreadPool(f"paglets-wake-{here.name}", 8)

    # -- node start and stop ---------------------------------------------------------------
    def start(self) -> None:
        """Load every record (quarantining bad ones), route to them, wake the ones due to wake."""
        self._stopping = False
        records, quarantined = self.parked.load()
        for path, reason in quarantined:
            self._events.emit("record-quarantined", path=str(path), reason=reason)
        for record in records:
            self._route_and_schedule(record)
        self._scheduler = threading.Thread(
            target=self._run_schedule, name=f"paglets-wake-schedule-{self._here.name}", daemon=True
        )
        self._scheduler.start()
        for record in records:
            if record.policy.activate_on_startup:
                self._submit(self._activate_logged, record.agent_id, "startup")

    def stop(self) -> None:
        with self._schedule_cond:
            self._stopping = True
            self._schedule_cond.notify_all()
        if self._scheduler is not None:
            self._scheduler.join(SCHEDULER_STOP_DEADLINE)
        self._wakers.shutdown()
        self.parked.close()

    def _submit(self, fn: Any, *args: Any) -> None:
        try:
            self._wakers.submit(fn, *args)
        except RuntimeError:
            log.debug("node %s is stopping; no more wake-ups", self._here.name)

    def _route_and_schedule(self, record: InactiveRecord) -> None:
        """A record on disk: its mail is routed as its policy says; a timed wake-up is scheduled."""
        policy = record.policy
        self._schedule_wake(record)
        self._broker.route_parked(record.agent_id, policy.activate_on_message, policy.queue_messages_when_inactive)

    def _schedule_wake(self, record: InactiveRecord) -> None:
        if record.policy.activate_at is not None:
            with self._schedule_cond:
                heapq.heappush(self._schedule, (record.policy.activate_at, record.agent_id))
                self._schedule_cond.notify_all()

    def _proxy(self, agent_id: str) -> PagletProxy:
        return PagletProxy(self._here.address, agent_id, self._client)

    # -- deactivate -------------------------------------------------------------------------------
    def deactivate(
        self,
        agent_id: str,
        request: DeactivationRequest | None = None,
        *,
        initiator: bytes | None = None,
        force_policy: dict[str, Any] | None = None,
        keep_services: bool = False,
    ) -> PagletProxy:
        """Park an active paglet on disk; returns its proxy (it stays addressable here).

        ``keep_services``: its service records stay (idle parking: it wakes on the next call).
        """
        here = self._here
        request = request or DeactivationRequest(source="node")
        if agent_id in self.parked:
            return self._proxy(agent_id)  # parked already: nothing to do
        info = self._inspection.agent_info(agent_id, resources=False)
        timeout = self._call_timeout
        policy = request.policy or self._chosen_policy(agent_id, request, timeout) or DeactivationPolicy()
        if force_policy:
            policy = policy.with_changes(**force_policy)
        event = PersistencyEvent(
            agent_id, here.name, here.address, reason=request.reason, request=request.to_wire(), policy=policy.to_wire()
        )
        self._lifecycle.run_hook(agent_id, "on_deactivating", event.to_wire(), timeout)
        wait_for(self._broker.freeze(agent_id, initiator), timeout, f"paglet {agent_id} to finish its messages")
        try:
            self._lifecycle.release_resources(agent_id, "deactivate", timeout)
        except BaseException:
            self._broker.unfreeze(agent_id)  # it stays active, and its mailbox flows again
            raise
        self.park_frozen(agent_id, info["class_name"], policy, request, timeout, keep_services=keep_services)
        return self._proxy(agent_id)

    def park_frozen(
        self, agent_id: str, class_name: str, policy: DeactivationPolicy, request: DeactivationRequest,
        timeout: float, state: bytes | None = None, *, keep_services: bool = False,
    ) -> None:  # fmt: skip
        """Snapshot the frozen paglet (waiting at most ``timeout``; ``state``: taken already), write its
        record, route its mail to disk. On failure the paglet is unfrozen and stays active.
        """
        here = self._here
        try:
            envelope = PagletEnvelope(
                kind=EnvelopeKind.ACTIVATION,
                agent_id=agent_id,
                agent_class_name=class_name,
                state_class_name="",
                state=self._inspection.state_bytes(agent_id, timeout) if state is None else state,
                source_host_name=here.name,
                source_host_address=here.address,
                target_host_name=here.name,
                target_host_address=here.address,
                metadata={"seen": self._broker.seen_ids(agent_id)},
            )
            files = self._keep_files(agent_id)
            record = InactiveRecord(envelope, policy, request, time.time(), files=files)
            self.parked.add(record)
        except BaseException:
            self._broker.unfreeze(agent_id)
            raise
        self._schedule_wake(record)
        self._broker.park(agent_id, policy.activate_on_message, policy.queue_messages_when_inactive)
        self._files.drop(agent_id)
        self._checkpoints.forget(agent_id)
        extra = {"keep_services": True} if keep_services else {}
        self._events.emit(
            "deactivate", agent_id=agent_id, class_name=class_name, reason=request.reason, **extra
        )  # fmt: skip

    def create_parked(
        self, agent_id: str, class_name: str, state: bytes, *, plain: bool = False, reason: str = "created parked"
    ) -> None:
        """A new paglet born parked: its record is written (durably) and routed to, with wake on message;
        nothing runs until its first message (or ``activate``), which runs ``on_creation`` with this state.

        ``plain``: ``state`` is a plain map of field values. The caller has checked the class may run here.
        """
        if agent_id in self.parked:
            raise HostError(f"paglet {agent_id!r} already exists on node {self._here.name}")
        here = self._here
        envelope = PagletEnvelope(
            kind=EnvelopeKind.ACTIVATION, agent_id=agent_id, agent_class_name=class_name, state_class_name="",
            state=state, source_host_name=here.name, source_host_address=here.address,
            target_host_name=here.name, target_host_address=here.address, metadata={},
        )  # fmt: skip
        request = DeactivationRequest(reason=reason, source="node", metadata={BORN_PARKED: {"plain": plain}})
        record = InactiveRecord(envelope, DeactivationPolicy(), request, time.time())
        self.parked.add(record)
        self._route_and_schedule(record)
        self._events.emit("create-parked", agent_id=agent_id, class_name=class_name)

    def park_arrival(self, envelope: PagletEnvelope) -> None:
        """A paglet that arrived with ArrivalMode.INACTIVE: record it parked, with the default policy."""
        policy = DeactivationPolicy()
        request = DeactivationRequest(reason="arrived inactive", source=envelope.source_host_address)
        parked = PagletEnvelope.from_wire({**envelope.to_wire(), "kind": EnvelopeKind.ACTIVATION.value})
        record = InactiveRecord(parked, policy, request, time.time(), files=self._keep_files(envelope.agent_id))
        self.parked.add(record)
        self._route_and_schedule(record)
        self._files.drop(envelope.agent_id)
        self._events.emit(
            "deactivate", agent_id=envelope.agent_id, class_name=envelope.agent_class_name, reason=request.reason
        )

    def _chosen_policy(self, agent_id: str, request: DeactivationRequest, timeout: float) -> DeactivationPolicy | None:
        header = {"op": "policy", "request": request.to_wire()}
        _header, payload = wait_for(self._broker.call_worker(agent_id, header), timeout, f"{agent_id}'s policy")
        wire = codec.decode(payload[0]) if payload and payload[0] else None
        return DeactivationPolicy.from_wire(wire) if wire else None

    def _keep_files(self, agent_id: str) -> list[dict[str, Any]]:
        """Registered files must outlive the work dir (wiped at node start): keep them beside the record."""
        kept = []
        directory = self.parked.files_dir(agent_id)
        for ref in self._files.files(agent_id):
            directory.mkdir(parents=True, exist_ok=True)
            destination = directory / ref.name
            shutil.copyfile(ref.path, destination)
            kept.append(PagletFileRef(ref.name, str(destination), ref.size, ref.mode).to_wire())
        return kept

    # -- messages for parked paglets ----------------------------------------------------------
    def queue(self, agent_id: str, delivery: Delivery) -> Future[None]:
        """Append a message to a parked paglet's mail log; the Future is its sender's answer once it is durable.

        A oneway sender is done (the Future gives None). A sync sender gets
        :class:`MessageQueuedError`: no handler ran, so there is no reply to
        give; the message runs as oneway mail when the paglet wakes.
        """
        mid = delivery.mid or uuid.uuid4().hex
        message = QueuedMessage(delivery.body, delivery.oneway, delivery.priority, mid, time.time())
        written = self.parked.append_mail(agent_id, message)
        answer: Future[None] = Future()
        queued = None if delivery.oneway else self._queued_error(agent_id, delivery, mid)

        def done(future: Future[None]) -> None:
            exc = future.exception() or queued
            if exc is not None:
                answer.set_exception(exc)
            else:
                answer.set_result(None)

        written.add_done_callback(done)
        return answer

    def _queued_error(self, agent_id: str, delivery: Delivery, mid: str) -> MessageQueuedError:
        record = self.parked.record(agent_id)
        wakes = record is not None and record.policy.activate_on_message
        why = "the sender asked not to wake it" if wakes and not delivery.activate else "it does not wake on messages"
        return MessageQueuedError(
            f"message {mid} was queued for paglet {agent_id!r} on node {self._here.name}: the paglet is parked "
            f"and {why}; it handles the message when it wakes, and that reply goes to no one",
            message_id=mid,
        )

    # -- activate -------------------------------------------------------------------------------
    def activate(self, agent_id: str, reason: str = "activate") -> PagletProxy:
        """Wake a parked paglet; returns its proxy. Waking an active paglet is a no-op."""
        with self._lock:
            if agent_id not in self.parked:
                waking = None
            else:
                waking = self._waking.get(agent_id)
                if waking is None:
                    waking = self._waking[agent_id] = Future()
                    owner = True
                else:
                    owner = False
        if waking is None:
            self._inspection.agent_info(agent_id, resources=False)  # InvalidAgentError if it is nowhere here
            return self._proxy(agent_id)
        if not owner:
            return wait_for(waking, self._start_timeout + WAKE_SLACK, f"paglet {agent_id} to wake")
        try:
            proxy = self._wake(agent_id, reason)
        except BaseException as exc:
            waking.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._waking.pop(agent_id, None)
        waking.set_result(proxy)
        return proxy

    def wake_for_message(self, agent_id: str) -> None:
        """A message woke the paglet (it waits in the broker); failures fail that message."""
        try:
            self.activate(agent_id, "message")
        except PagletError as exc:
            log.warning("node %s: message could not wake %s: %s", self._here.name, agent_id, exc)

    def _activate_logged(self, agent_id: str, reason: str) -> None:
        try:
            self.activate(agent_id, reason)
        except PagletError as exc:
            log.warning("node %s: could not activate %s (%s): %s", self._here.name, agent_id, reason, exc)
            self._events.emit("activation-failed", agent_id=agent_id, error=str(exc), reason=reason)

    def _wake(self, agent_id: str, reason: str) -> PagletProxy:
        here = self._here
        record = self.parked.record(agent_id)
        policy = record.policy
        event = PersistencyEvent(
            agent_id, here.name, here.address, reason=reason, request=record.request.to_wire(), policy=policy.to_wire()
        )
        header = {"hook": "on_activation", "event": event.to_wire(), "plain": False}
        born = record.request.metadata.get(BORN_PARKED)
        if isinstance(born, dict):  # created parked: this is its first start
            header = {"hook": "on_creation", "plain": born.get("plain") is True}
        token = uuid.uuid4().hex
        class_name = record.envelope.agent_class_name
        try:
            started = self._broker.open_activation(
                agent_id, token, class_name, header, [record.envelope.state, b""], self._start_timeout
            )
            self._restore_files(agent_id, record)
            self._lifecycle.fork_worker(agent_id, token, class_name)
            wait_for(self.parked.flush_mail(), MAIL_WRITER_DEADLINE, "the mail writer to flush")
            mail = [self._delivery(m) for m in self.parked.read_mail(agent_id)]
            wait_for(started, self._start_timeout + START_SLACK, f"paglet {agent_id} to wake")
        except BaseException as exc:
            error = exc if isinstance(exc, PagletError) else LifecycleError(f"activating {agent_id} failed: {exc}")
            self._broker.repark(agent_id, policy.activate_on_message, policy.queue_messages_when_inactive, error)
            self._files.drop(agent_id)
            raise error from None
        self._broker.release(agent_id, mail)
        self.parked.remove(agent_id)
        self._events.emit("activate", agent_id=agent_id, class_name=class_name, reason=reason, mail=len(mail))
        if record.request.reason == IDLE_REASON:
            self._events.emit("woken", agent_id=agent_id, class_name=class_name, reason=reason, mail=len(mail))
        return self._proxy(agent_id)

    def _restore_files(self, agent_id: str, record: InactiveRecord) -> None:
        refs = []
        for item in record.files:
            ref = PagletFileRef.from_wire(item)
            destination = self._lifecycle.work_path(agent_id)
            destination.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ref.path, destination / ref.name)
            refs.append(PagletFileRef(ref.name, str(destination / ref.name), ref.size, ref.mode))
        if refs:
            self._files.adopt(agent_id, refs)

    @staticmethod
    def _delivery(message: QueuedMessage) -> Delivery:
        return Delivery(message.body, True, None, message.priority, message.message_id)

    # -- disposal of a parked paglet --------------------------------------------------------------
    def dispose(self, agent_id: str) -> None:
        """Forget a parked paglet: routing first (so no mail lands on disk for it), then its files and work dir."""
        if self.parked.unindex(agent_id) is None:
            raise InvalidAgentError(f"no paglet {agent_id!r} on node {self._here.name}")
        self._broker.forget_parked(agent_id, InvalidAgentError(f"paglet {agent_id!r} was disposed"))
        self.parked.remove(agent_id)
        self._lifecycle.remove_work_dir(agent_id)
        self._events.emit("dispose", agent_id=agent_id)

    # -- the wake-up schedule ----------------------------------------------------------------------
    def _run_schedule(self) -> None:
        while True:
            with self._schedule_cond:
                while not self._stopping:
                    now = time.time()
                    if self._schedule and self._schedule[0][0] <= now:
                        _at, agent_id = heapq.heappop(self._schedule)
                        break
                    wait = self._schedule[0][0] - now if self._schedule else None
                    self._schedule_cond.wait(None if wait is None else min(wait, 3600.0))
                else:
                    return
            record = self.parked.record(agent_id)
            if record is not None and record.policy.activate_at is not None:
                self._submit(self._activate_logged, agent_id, "scheduled")


__all__ = ["BORN_PARKED", "IDLE_REASON", "Parking"]

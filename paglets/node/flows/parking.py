"""Parking paglets on disk and waking them: deactivate, activate, durable mail, schedules.

Owns the node's parked-paglet index (what is on disk, kept in memory for
listings) and the wake-up schedule; the records themselves belong to
:class:`~paglets.node.storage.records.RecordStore`, the routing of messages to
parked paglets to the broker's :class:`~paglets.node.broker.parked_routes.ParkedPaglets`.

Deactivate: pick the policy (the request's, else the paglet's own
``deactivation_policy``), run ``on_deactivating``, freeze the mailbox (as for a
move), snapshot the state, write the record durably, then switch routing to
"parked" — what waited in the mailbox goes to the mail log, in order — and let
the worker go.

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
from typing import TYPE_CHECKING, Any

from paglets.client.proxy import PagletProxy
from paglets.core.errors import InvalidAgentError, LifecycleError, OverloadedError, PagletError
from paglets.core.events import PersistencyEvent
from paglets.core.runtime_values import EnvelopeKind
from paglets.node.broker.slots import Delivery
from paglets.node.storage.files import PagletFileRef
from paglets.node.storage.records import RecordStore
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest, InactiveRecord, QueuedMessage
from paglets.waiting import wait_for
from paglets.wire import codec
from paglets.wire.envelope import PagletEnvelope

if TYPE_CHECKING:
    from paglets.node.host import Host

log = logging.getLogger("paglets.parking")


class Parking:
    """Deactivation, activation, durable mail and wake-up schedules of one node."""

    def __init__(self, host: Host):
        self._host = host
        self.records = RecordStore(host.persistence_dir, host.name)
        self._parked: dict[str, InactiveRecord] = {}
        self._lock = threading.Lock()
        self._waking: dict[str, Future[PagletProxy]] = {}
        self._schedule: list[tuple[float, str]] = []
        self._schedule_cond = threading.Condition(self._lock)
        self._stopping = False
        self._scheduler: threading.Thread | None = None
        self._mail_counts: dict[str, int] = {}  # messages waiting on disk, per parked paglet
        self.mail_limit = host.mailbox_limit * 10

    # -- node start and stop ---------------------------------------------------------------
    def start(self) -> None:
        """Load every record (quarantining bad ones), route to them, wake the ones due to wake."""
        host = self._host
        self._stopping = False
        self.records.open()
        records, quarantined = self.records.load_all()
        for path, reason in quarantined:
            host.events.emit("record-quarantined", path=str(path), reason=reason)
        for record in records:
            self._index(record)
            self._mail_counts[record.agent_id] = self.records.count_mail(record.agent_id)
        self._scheduler = threading.Thread(target=self._run_schedule, name=f"paglets-wake-{host.name}", daemon=True)
        self._scheduler.start()
        for record in records:
            if record.policy.activate_on_startup:
                host.submit(self._activate_logged, record.agent_id, "startup")

    def stop(self) -> None:
        with self._schedule_cond:
            self._stopping = True
            self._schedule_cond.notify_all()
        if self._scheduler is not None:
            self._scheduler.join(5)
        self.records.close()

    def _index(self, record: InactiveRecord) -> None:
        with self._lock:
            self._parked[record.agent_id] = record
            if record.policy.activate_at is not None:
                heapq.heappush(self._schedule, (record.policy.activate_at, record.agent_id))
                self._schedule_cond.notify_all()
        policy = record.policy
        self._host.broker.in_loop(
            lambda: self._host.broker.table.parked.park(
                record.agent_id, policy.activate_on_message, policy.queue_messages_when_inactive
            )
        ).result(10)

    # -- listings ---------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        with self._lock:
            return list(self._parked)

    def record(self, agent_id: str) -> InactiveRecord | None:
        with self._lock:
            return self._parked.get(agent_id)

    def describe(self, agent_id: str, include_state: bool = False) -> dict[str, Any]:
        record = self.record(agent_id)
        if record is None:
            raise InvalidAgentError(f"no paglet {agent_id!r} on node {self._host.name}")
        info = self.records.summary(record)
        info["queued_messages"] = self.records.count_mail(agent_id)
        if include_state:
            info["state"] = codec.decode_plain(record.envelope.state)
        return info

    # -- deactivate -------------------------------------------------------------------------------
    def deactivate(
        self,
        agent_id: str,
        request: DeactivationRequest | None = None,
        *,
        initiator: bytes | None = None,
        force_policy: dict[str, Any] | None = None,
    ) -> PagletProxy:
        """Park an active paglet on disk; returns its proxy (it stays addressable here)."""
        host = self._host
        request = request or DeactivationRequest(source="node")
        if self.record(agent_id) is not None:
            return host.get_proxy_for(agent_id)  # parked already: nothing to do
        info = host.agent_info(agent_id)
        timeout = host.client.timeout
        policy = request.policy or self._chosen_policy(agent_id, request, timeout) or DeactivationPolicy()
        if force_policy:
            policy = policy.with_changes(**force_policy)
        event = PersistencyEvent(
            agent_id, host.name, host.address, reason=request.reason, request=request.to_wire(), policy=policy.to_wire()
        )
        host.run_hook(agent_id, "on_deactivating", event.to_wire(), timeout)
        wait_for(host.broker.freeze(agent_id, initiator), timeout, f"paglet {agent_id} to finish its messages")
        try:
            seen = host.broker.in_loop(lambda: host.broker.table.seen_ids(agent_id)).result(10)
            envelope = PagletEnvelope(
                kind=EnvelopeKind.ACTIVATION,
                agent_id=agent_id,
                agent_class_name=info["class_name"],
                state_class_name="",
                state=host.state_bytes(agent_id),
                source_host_name=host.name,
                source_host_address=host.address,
                target_host_name=host.name,
                target_host_address=host.address,
                metadata={"seen": seen},
            )
            files = self._keep_files(agent_id)
            record = InactiveRecord(envelope, policy, request, time.time(), files=files)
            self.records.save(record)
        except BaseException:
            host.broker.in_loop(lambda: host.broker.table.unfreeze(agent_id))
            raise
        with self._lock:
            self._parked[agent_id] = record
            if policy.activate_at is not None:
                heapq.heappush(self._schedule, (policy.activate_at, agent_id))
                self._schedule_cond.notify_all()
        host.broker.in_loop(
            lambda: host.broker.table.park(agent_id, policy.activate_on_message, policy.queue_messages_when_inactive)
        ).result(10)
        host.files.drop(agent_id)
        host.checkpoints.forget(agent_id)
        host.events.emit("paglet-deactivated", agent_id=agent_id, reason=request.reason)
        return host.get_proxy_for(agent_id)

    def park_arrival(self, envelope: PagletEnvelope) -> None:
        """A paglet that arrived with ArrivalMode.INACTIVE: record it parked, with the default policy."""
        host = self._host
        policy = DeactivationPolicy()
        request = DeactivationRequest(reason="arrived inactive", source=envelope.source_host_address)
        parked = PagletEnvelope.from_wire({**envelope.to_wire(), "kind": EnvelopeKind.ACTIVATION.value})
        record = InactiveRecord(parked, policy, request, time.time(), files=self._keep_files(envelope.agent_id))
        self.records.save(record)
        self._index(record)
        host.files.drop(envelope.agent_id)
        host.events.emit("paglet-deactivated", agent_id=envelope.agent_id, reason=request.reason)

    def _chosen_policy(self, agent_id: str, request: DeactivationRequest, timeout: float) -> DeactivationPolicy | None:
        header = {"op": "policy", "request": request.to_wire()}
        _header, payload = wait_for(self._host.broker.call_worker(agent_id, header), timeout, f"{agent_id}'s policy")
        wire = codec.decode(payload[0]) if payload and payload[0] else None
        return DeactivationPolicy.from_wire(wire) if wire else None

    def _keep_files(self, agent_id: str) -> list[dict[str, Any]]:
        """Registered files must outlive the work dir (wiped at node start): keep them beside the record."""
        kept = []
        directory = self.records.root / f"{agent_id}.files"
        for ref in self._host.files.files(agent_id):
            directory.mkdir(parents=True, exist_ok=True)
            destination = directory / ref.name
            shutil.copyfile(ref.path, destination)
            kept.append(PagletFileRef(ref.name, str(destination), ref.size, ref.mode).to_wire())
        return kept

    # -- messages for parked paglets ----------------------------------------------------------
    def queue(self, agent_id: str, delivery: Delivery) -> Future[bytes | None]:
        """Append a message to a parked paglet's mail log; the Future gives the sender's reply once durable."""
        if self._mail_counts.get(agent_id, 0) >= self.mail_limit:
            raise OverloadedError(f"paglet {agent_id!r} already has {self.mail_limit} messages waiting on disk")
        self._mail_counts[agent_id] = self._mail_counts.get(agent_id, 0) + 1
        mid = delivery.mid or uuid.uuid4().hex
        message = QueuedMessage(delivery.body, delivery.oneway, delivery.priority, mid, time.time())
        written = self.records.append_mail(agent_id, message)
        reply: Future[bytes | None] = Future()

        def done(future: Future[None]) -> None:
            exc = future.exception()
            if exc is not None:
                reply.set_exception(exc)
            else:
                reply.set_result(None if delivery.oneway else codec.encode({"queued": True, "message_id": mid}))

        written.add_done_callback(done)
        return reply

    # -- activate -------------------------------------------------------------------------------
    def activate(self, agent_id: str, reason: str = "activate") -> PagletProxy:
        """Wake a parked paglet; returns its proxy. Waking an active paglet is a no-op."""
        with self._lock:
            if agent_id not in self._parked:
                waking = None
            else:
                waking = self._waking.get(agent_id)
                if waking is None:
                    waking = self._waking[agent_id] = Future()
                    owner = True
                else:
                    owner = False
        if waking is None:
            self._host.agent_info(agent_id)  # InvalidAgentError if it is nowhere here
            return self._host.get_proxy_for(agent_id)
        if not owner:
            return waking.result(self._host.start_timeout + 10)
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
            log.warning("node %s: message could not wake %s: %s", self._host.name, agent_id, exc)

    def _activate_logged(self, agent_id: str, reason: str) -> None:
        try:
            self.activate(agent_id, reason)
        except PagletError as exc:
            log.warning("node %s: could not activate %s (%s): %s", self._host.name, agent_id, reason, exc)
            self._host.events.emit("paglet-activation-failed", agent_id=agent_id, reason=str(exc))

    def _wake(self, agent_id: str, reason: str) -> PagletProxy:
        host = self._host
        record = self.record(agent_id)
        policy = record.policy
        event = PersistencyEvent(
            agent_id, host.name, host.address, reason=reason, request=record.request.to_wire(), policy=policy.to_wire()
        )
        header = {"hook": "on_activation", "event": event.to_wire(), "plain": False}
        nonce = uuid.uuid4().hex
        class_name = record.envelope.agent_class_name
        broker = host.broker
        try:
            started = broker.open_activation(
                agent_id, nonce, class_name, header, [record.envelope.state, b""], host.start_timeout
            )
            self._restore_files(agent_id, record)
            host.lifecycle.fork_worker(agent_id, nonce, class_name)
            wait_for(self.records.flush_mail(), 30, "the mail writer")
            mail = [self._delivery(m) for m in self.records.read_mail(agent_id)]
            wait_for(started, host.start_timeout + 1, f"paglet {agent_id} to wake")
        except BaseException as exc:
            error = exc if isinstance(exc, PagletError) else LifecycleError(f"activating {agent_id} failed: {exc}")
            broker.in_loop(
                lambda: broker.table.repark(
                    agent_id, policy.activate_on_message, policy.queue_messages_when_inactive, error
                )
            ).result(10)
            host.files.drop(agent_id)
            raise error from None
        broker.in_loop(lambda: broker.table.release(agent_id, mail)).result(10)
        with self._lock:
            self._parked.pop(agent_id, None)
        self._mail_counts.pop(agent_id, None)
        self.records.delete(agent_id)
        shutil.rmtree(self.records.root / f"{agent_id}.files", ignore_errors=True)
        host.events.emit("paglet-activated", agent_id=agent_id, reason=reason, mail=len(mail))
        return host.get_proxy_for(agent_id)

    def _restore_files(self, agent_id: str, record: InactiveRecord) -> None:
        refs = []
        for item in record.files:
            ref = PagletFileRef.from_wire(item)
            destination = self._host.work_dir_for(agent_id, check=False) / ref.name
            shutil.copyfile(ref.path, destination)
            refs.append(PagletFileRef(ref.name, str(destination), ref.size, ref.mode))
        if refs:
            self._host.files.adopt(agent_id, refs)

    @staticmethod
    def _delivery(message: QueuedMessage) -> Delivery:
        return Delivery(message.body, True, None, message.priority, message.message_id)

    # -- disposal of a parked paglet --------------------------------------------------------------
    def dispose(self, agent_id: str) -> None:
        host = self._host
        with self._lock:
            record = self._parked.pop(agent_id, None)
        if record is None:
            raise InvalidAgentError(f"no paglet {agent_id!r} on node {host.name}")
        host.broker.in_loop(
            lambda: host.broker.table.parked.forget(agent_id, InvalidAgentError(f"paglet {agent_id!r} was disposed"))
        ).result(10)
        self._mail_counts.pop(agent_id, None)
        self.records.delete(agent_id)
        shutil.rmtree(self.records.root / f"{agent_id}.files", ignore_errors=True)

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
                record = self._parked.get(agent_id)
            if record is not None and record.policy.activate_at is not None:
                self._host.submit(self._activate_logged, agent_id, "scheduled")


__all__ = ["Parking"]

"""Moving paglets between nodes: dispatch, clone, retract, and the receiving side.

A move is two-phase and lossless:

1. **prepare** — the source asks the target to get ready. The target checks
   capabilities and code version and forks a worker that loads the paglet's
   class; it answers only once that worked.
2. The source runs ``on_dispatching`` (``on_reverting`` for a retract),
   *freezes* the mailbox (new messages wait; in-flight ones finish, except
   the message whose handler asked to move), runs the paglet's resource
   cleanups (a failing one cancels the move with ``LifecycleError``), deletes
   its checkpoint, snapshots the state and uploads registered files.
3. **arrive** — the envelope goes over; the target runs ``on_arrival`` and
   acks (the target's side is :mod:`paglets.node.flows.arrivals`). Only then
   does the source drop its copy: its queued messages are forwarded in
   order, a forwarding entry answers for the paglet, and its files and work
   dir are removed.

If the target refuses, times out or dies on the way, the source unfreezes:
the paglet is active where it was, with its state, and the caller gets a
:class:`~paglets.core.errors.TransferError` that says why. When an arrive
times out, the source asks the target whether the paglet did arrive before
deciding. Owns no state: the broker's table holds slots and forwards. What
the source asks of the target goes through
:class:`~paglets.node.flows.move_requests.MoveRequests`.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from paglets.client.host_client import HostClient
from paglets.client.proxy import PagletProxy
from paglets.client.transfer import TransferTicket
from paglets.client.transport import check_address
from paglets.core.errors import LifecycleError, PagletError, TransferError
from paglets.core.events import CloneEvent, ContextEventLog, MobilityEvent
from paglets.core.files import PagletFileRef
from paglets.core.runtime_values import ArrivalMode, EnvelopeKind
from paglets.node.broker.commands import BrokerCommands
from paglets.node.flows.checkpoints import Checkpointer
from paglets.node.flows.inspection import Inspection
from paglets.node.flows.lifecycle import Lifecycle
from paglets.node.flows.move_requests import MoveRequests, time_left, transfer_error
from paglets.node.identity import NodeIdentity
from paglets.node.mesh.registry import MeshRegistry
from paglets.node.storage.files import FileRegistry, sha256_of
from paglets.waiting import wait_for
from paglets.wire.envelope import PagletEnvelope

_HOOKS = {
    EnvelopeKind.DISPATCH: "on_dispatching",
    EnvelopeKind.RETRACT: "on_reverting",
}


class Movement:
    """The source and target sides of every move, performed for the host facade."""

    def __init__(
        self,
        broker: BrokerCommands,
        lifecycle: Lifecycle,
        inspection: Inspection,
        events: ContextEventLog,
        here: NodeIdentity,
        *,
        files: FileRegistry,
        checkpoints: Checkpointer,
        client: HostClient,
        mesh: MeshRegistry,
    ):
        self._broker = broker
        self._lifecycle = lifecycle
        self._inspection = inspection
        self._events = events
        self._here = here
        self._files = files
        self._checkpoints = checkpoints
        self._client = client
        self._mesh = mesh
        self._target = MoveRequests(client, here)

    def address_of(self, name: str) -> str | None:
        """The address of a node the mesh knows by this name, or None."""
        if name == self._here.name:
            return self._here.address
        ref = self._mesh.lookup(name)
        return ref.url if ref is not None else None

    # -- where to ------------------------------------------------------------------------
    def resolve(self, destination: str, ticket: TransferTicket | None = None) -> str:
        """A node address for a destination given as an address or a mesh node name.

        A node the mesh knows to run another code version than this one is
        refused here, before anything moves, unless ``ticket`` expects exactly
        that version (``expected_code_version``); the target checks again.
        """
        if "://" in destination:
            address = check_address(destination)
        else:
            address = self.address_of(destination)
            if address is None:
                raise TransferError(f"no known node named {destination!r}")
        ref = self._mesh.lookup(address)
        if ref is not None and ref.code_version:
            check_code_version(self._here, ref.name, ref.code_version, ticket)
        return address

    # -- source side -------------------------------------------------------------------------
    def dispatch(
        self,
        agent_id: str,
        target: TransferTicket | str | dict[str, Any],
        *,
        initiator: bytes | None = None,
        kind: EnvelopeKind = EnvelopeKind.DISPATCH,
    ) -> PagletProxy:
        """Move a paglet of this node to ``target``; returns its proxy there."""
        here = self._here
        ticket = TransferTicket.of(target)
        address = self.resolve(ticket.destination, ticket)
        summary = self._inspection.agent_info(agent_id, resources=False)
        if address == here.address:
            return PagletProxy(here.address, agent_id, self._client)
        started = time.monotonic()
        deadline = started + ticket.timeout
        token = uuid.uuid4().hex
        try:
            prepared = self._target.prepare(address, agent_id, summary["class_name"], kind, token, ticket)
        except TransferError as exc:
            self._failed_move(agent_id, summary["class_name"], exc, address, kind.value)
            raise
        target_name = str(prepared.get("name") or "")
        event = MobilityEvent(
            agent_id,
            here.name,
            here.address,
            source_host_name=here.name,
            source_host_address=here.address,
            target_host_name=target_name,
            target_host_address=address,
            reason=kind.value,
        )
        releasing = False
        try:
            self._lifecycle.run_hook(agent_id, _HOOKS[kind], event.to_wire(), time_left(deadline))
            wait_for(self._broker.freeze(agent_id, initiator), time_left(deadline), f"paglet {agent_id}'s messages")
            releasing = True
            self._lifecycle.release_resources(agent_id, kind.value, time_left(deadline))
            releasing = False
            self._checkpoints.hold(agent_id)  # from here on no checkpoint of it may bring it back after a crash
            envelope = self._envelope(kind, agent_id, summary["class_name"], address, target_name, token, ticket)
            self._target.upload_files(address, envelope, deadline)
            self._target.arrive(address, envelope, deadline, prepared.get("max_message_size"))
        except BaseException as exc:
            self._broker.unfreeze(agent_id)  # no-op unless it froze
            self._checkpoints.release(agent_id)
            self._target.abort_later(address, agent_id, token)
            if releasing and isinstance(exc, LifecycleError):
                raise  # a resource would not close: the move is cancelled, and the error says which
            error = transfer_error(exc, f"moving paglet {agent_id} to {address}")
            self._failed_move(agent_id, summary["class_name"], error, address, kind.value)
            raise error from None
        self._broker.depart(agent_id, address)
        self._checkpoints.forget(agent_id)
        self._after_departure(agent_id)
        self._events.emit(
            "retract" if kind is EnvelopeKind.RETRACT else "dispatch", agent_id=agent_id,
            class_name=summary["class_name"], target=address, duration=round(time.monotonic() - started, 6),
        )  # fmt: skip
        return PagletProxy(address, agent_id, self._client)

    def _failed_move(self, agent_id: str, class_name: str, error: BaseException, target: str, how: str) -> None:
        self._events.emit(
            "transfer-failed", agent_id=agent_id, class_name=class_name, error=str(error), target=target, how=how
        )

    def _envelope(
        self,
        kind: EnvelopeKind,
        agent_id: str,
        class_name: str,
        address: str,
        target_name: str,
        token: str,
        ticket: TransferTicket | None,
        *,
        clone_of: str | None = None,
        state_of: str | None = None,
    ) -> PagletEnvelope:
        here = self._here
        source_id = state_of or agent_id
        seen: list[str] = [] if clone_of else self._broker.seen_ids(source_id)
        files = [self._describe_file(ref) for ref in self._files.files(source_id)]
        return PagletEnvelope(
            kind=kind,
            agent_id=agent_id,
            agent_class_name=class_name,
            state_class_name="",
            state=self._inspection.state_bytes(source_id),
            source_host_name=here.name,
            source_host_address=here.address,
            target_host_name=target_name,
            target_host_address=address,
            clone_of=clone_of,
            metadata={
                "token": token,
                "seen": seen,
                "files": files,
                "arrival": (ticket.arrival_mode if ticket else ArrivalMode.ACTIVATE).value,
            },
        )

    @staticmethod
    def _describe_file(ref: PagletFileRef) -> dict[str, Any]:
        path = Path(ref.path)
        if not path.is_file():
            raise TransferError(f"registered file {ref.name!r} is gone from {ref.path}")
        return {"name": ref.name, "size": path.stat().st_size, "sha256": sha256_of(path), "mode": ref.mode,
                "path": ref.path}  # fmt: skip

    def _after_departure(self, agent_id: str) -> None:
        """The paglet lives elsewhere now: its registered files ("move" ones deleted) and work dir go."""
        for ref in self._files.drop(agent_id):
            if ref.mode == "move":
                Path(ref.path).unlink(missing_ok=True)
        self._lifecycle.remove_work_dir(agent_id)

    def clone(self, agent_id: str, target: TransferTicket | str | dict[str, Any] | None = None) -> PagletProxy:
        """Copy a paglet (here, or to ``target``); returns the copy's proxy."""
        here = self._here
        ticket = None if target is None else TransferTicket.of(target)
        address = here.address if ticket is None else self.resolve(ticket.destination, ticket)
        summary = self._inspection.agent_info(agent_id, resources=False)
        class_name = summary["class_name"]
        clone_id = uuid.uuid4().hex
        token = uuid.uuid4().hex
        local = address == here.address
        target_name = here.name
        prepared: dict[str, Any] = {}
        started = time.monotonic()
        if not local:
            try:
                prepared = self._target.prepare(address, clone_id, class_name, EnvelopeKind.CLONE, token, ticket)
            except TransferError as exc:
                self._failed_move(agent_id, class_name, exc, address, "clone")
                raise
            target_name = str(prepared.get("name") or "")
        event = CloneEvent(
            agent_id,
            here.name,
            here.address,
            source_agent_id=agent_id,
            clone_agent_id=clone_id,
            source_host_name=here.name,
            source_host_address=here.address,
            target_host_name=target_name,
            target_host_address=address,
        )
        timeout = ticket.timeout if ticket else self._client.timeout
        deadline = time.monotonic() + timeout
        try:
            self._lifecycle.run_hook(agent_id, "on_cloning", event.to_wire(), time_left(deadline))
            if local:
                self._clone_here(agent_id, clone_id, class_name, event)
            else:
                envelope = self._envelope(
                    EnvelopeKind.CLONE, clone_id, class_name, address, target_name, token, ticket,
                    clone_of=agent_id, state_of=agent_id,
                )  # fmt: skip
                self._target.upload_files(address, envelope, deadline)
                self._target.arrive(address, envelope, deadline, prepared.get("max_message_size"))
        except BaseException as exc:
            if not local:
                self._target.abort_later(address, clone_id, token)
            error = transfer_error(exc, f"cloning paglet {agent_id} to {address}")
            self._failed_move(agent_id, class_name, error, address, "clone")
            raise error from None
        self._lifecycle.run_hook(agent_id, "on_cloned", event.to_wire(), timeout)
        self._events.emit(
            "clone", agent_id=agent_id, class_name=class_name, clone_id=clone_id, target=address,
            duration=round(time.monotonic() - started, 6),
        )  # fmt: skip
        return PagletProxy(address, clone_id, self._client)

    def _clone_here(self, agent_id: str, clone_id: str, class_name: str, event: CloneEvent) -> None:
        here = self._here
        clone_event = CloneEvent(clone_id, here.name, here.address, **_clone_fields(event))
        copies = []
        for ref in self._files.files(agent_id):
            destination = self._lifecycle.work_path(clone_id) / ref.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ref.path, destination)
            copies.append(PagletFileRef(ref.name, str(destination), ref.size, ref.mode))
        self._files.adopt(clone_id, copies)
        self._lifecycle.start_paglet(
            class_name,
            [self._inspection.state_bytes(agent_id), b""],
            agent_id=clone_id,
            hook="on_clone",
            event=clone_event.to_wire(),
        )

    def retract(self, remote_address: str, agent_id: str, timeout: float | None = None) -> PagletProxy:
        """Pull a paglet from ``remote_address`` back to this node."""
        here = self._here
        address = self.resolve(remote_address)
        limit = timeout or self._client.timeout
        try:
            reply = self._client.request(
                address, "retract", {"agent": agent_id, "target": here.address}, timeout=limit + 5
            )
        except LifecycleError:
            raise  # a resource there would not close, so the paglet stays there
        except PagletError as exc:
            error = (
                exc
                if isinstance(exc, TransferError)
                else TransferError(f"retracting paglet {agent_id} from {address} failed: {exc}")
            )
            self._events.emit("transfer-failed", agent_id=agent_id, error=str(error), source=address, how="retract")
            raise error from None
        return PagletProxy(reply.header.get("address", here.address), agent_id, self._client)


def _clone_fields(event: CloneEvent) -> dict[str, Any]:
    return {
        "source_agent_id": event.source_agent_id,
        "clone_agent_id": event.clone_agent_id,
        "source_host_name": event.source_host_name,
        "source_host_address": event.source_host_address,
        "target_host_name": event.target_host_name,
        "target_host_address": event.target_host_address,
    }


def check_code_version(here: NodeIdentity, target: str, version: str, ticket: TransferTicket | None) -> None:
    """TransferError unless node ``target`` (running ``version``) may receive a paglet from ``here``.

    The same version moves; another one only when the ticket expects exactly
    it (``TransferTicket(expected_code_version=...)``: the mover knows the
    paglet's class works there).
    """
    expected = ticket.expected_code_version if ticket is not None else None
    if expected is not None:
        if version != expected:
            raise TransferError(f"node {target} runs code version {version!r}, the ticket expects {expected!r}")
        return
    if version != here.code_version:
        raise TransferError(
            f"node {target} runs code version {version!r}, node {here.name} runs {here.code_version!r}: "
            f"refusing the move (a ticket with expected_code_version={version!r} allows it)"
        )


__all__ = ["Movement"]

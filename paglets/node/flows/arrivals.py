"""The receiving side of a move: prepare, arrive, abort, and envelopes pushed in one piece.

See :mod:`paglets.node.flows.movement` for the whole two-phase protocol; this
part answers a source node's ``prepare`` (check the terms, fork a worker
that loads the class), ``arrive`` (land the files, run ``on_arrival`` or
``on_clone``, or park the paglet for ``ArrivalMode.INACTIVE``), ``abort``
and ``transfer`` (has it arrived?). Owns no state: prepared slots live in
the broker's table.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from paglets.core.errors import TransferError
from paglets.core.events import CloneEvent, ContextEventLog, MobilityEvent
from paglets.core.files import PagletFileRef, check_file_name
from paglets.core.runtime_values import ArrivalMode, EnvelopeKind
from paglets.node.broker.commands import LOOP_DEADLINE, BrokerCommands
from paglets.node.flows.lifecycle import Lifecycle
from paglets.node.flows.move_requests import transfer_error
from paglets.node.flows.parking import Parking
from paglets.node.identity import NodeIdentity
from paglets.node.storage.files import ArtifactStore, FileRegistry
from paglets.waiting import wait_for
from paglets.wire.envelope import PagletEnvelope

MAX_PREPARE_TTL = 3600.0  # default bound: seconds a prepared arrival may wait for its envelope


class Arrivals:
    """Paglets arriving at this node from others."""

    def __init__(
        self,
        broker: BrokerCommands,
        lifecycle: Lifecycle,
        parking: Parking,
        events: ContextEventLog,
        here: NodeIdentity,
        *,
        files: FileRegistry,
        artifacts: ArtifactStore,
        start_timeout: float,
        max_ttl: float = MAX_PREPARE_TTL,
        max_message_size: int | None = None,
    ):
        """``max_ttl``: the longest a prepared arrival waits for its envelope, whatever the source asks;
        ``max_message_size``: this node's frame limit, told to sources so they never send more."""
        self._broker = broker
        self._lifecycle = lifecycle
        self._parking = parking
        self._events = events
        self._here = here
        self._files = files
        self._artifacts = artifacts
        self._start_timeout = start_timeout
        self._max_ttl = max_ttl
        self._max_message_size = max_message_size

    def prepare(self, header: dict[str, Any]) -> dict[str, Any]:
        """Get ready for an arriving paglet: check terms, fork a worker that loads its class."""
        here = self._here
        agent_id = header["agent"]
        missing = [c for c in header.get("caps") or () if c not in here.capabilities()]
        if missing:
            raise TransferError(f"node {here.name} lacks required capabilities: {', '.join(map(str, missing))}")
        check_arriving_version(here, header.get("version"), header.get("srcver"))
        try:
            kind = EnvelopeKind(header["kind"])
        except ValueError:
            raise TransferError(f"unknown kind of move {header['kind']!r}") from None
        ttl = float(header["ttl"])
        if not math.isfinite(ttl) or ttl <= 0:
            raise TransferError(f"prepare ttl must be a positive number of seconds, got {ttl}")
        self._replace_stale_prepare(agent_id, kind)
        self._lifecycle.start_paglet(
            header["cls"], [], agent_id=agent_id, prepare_only=True, token=header["token"], source=header["source"],
            timeout=min(ttl, self._max_ttl),
        )  # fmt: skip
        answer: dict[str, Any] = {"name": here.name, "address": here.address}
        if self._max_message_size is not None:
            answer["max_message_size"] = self._max_message_size  # the source checks its envelope against it
        return answer

    def _replace_stale_prepare(self, agent_id: str, kind: EnvelopeKind) -> None:
        slot = self._broker.prepared_slot(agent_id)
        if slot is None:
            return
        phase, _token = slot
        if phase == "prepared":
            wait_for(self._broker.stop_worker(agent_id), LOOP_DEADLINE, "the broker")
            return
        if phase != "crashed":
            raise TransferError(f"paglet {agent_id} is already on node {self._here.name}")

    def arrive(self, header: dict[str, Any], payload: list[bytes]) -> dict[str, Any]:
        """Receive the envelope of a prepared paglet and run its arrival (or clone) hook."""
        here = self._here
        envelope = PagletEnvelope.from_bytes(payload[0])
        if envelope.agent_id != header["agent"] or envelope.metadata.get("token") != header["token"]:
            raise TransferError("envelope does not match the prepared transfer")
        slot = self._broker.prepared_slot(envelope.agent_id)
        if slot is None or slot != ("prepared", header["token"]):
            raise TransferError(f"paglet {envelope.agent_id} is not prepared to arrive on {here.name}")
        if envelope.metadata.get("arrival") == ArrivalMode.INACTIVE.value:
            return self._arrive_parked(envelope)
        try:
            self._land_files(envelope)
            start_header = self._arrival_header(envelope)
            seen = [m for m in envelope.metadata.get("seen") or () if isinstance(m, str)]
            started = self._broker.start_prepared(envelope.agent_id, start_header, [envelope.state, b""], seen)
            wait_for(started, self._start_timeout, f"paglet {envelope.agent_id} to arrive")
        except BaseException as exc:
            # Nothing of the paglet may stay here when the answer is "no": the source keeps it.
            self._broker.stop_worker(envelope.agent_id)
            self._files.drop(envelope.agent_id)
            error = transfer_error(exc, f"arrival of paglet {envelope.agent_id} on {here.name}")
            self._events.emit(
                "transfer-failed", agent_id=envelope.agent_id, class_name=envelope.agent_class_name,
                error=str(error), source=envelope.source_host_address, how=envelope.kind.value,
            )  # fmt: skip
            raise error from None
        self._events.emit(
            "arrival", agent_id=envelope.agent_id, class_name=envelope.agent_class_name,
            source=envelope.source_host_address, how=envelope.kind.value,
        )  # fmt: skip
        return {"agent": envelope.agent_id, "address": here.address}

    def _arrive_parked(self, envelope: PagletEnvelope) -> dict[str, Any]:
        """ArrivalMode.INACTIVE: the paglet lands parked, without running."""
        wait_for(self._broker.stop_worker(envelope.agent_id), LOOP_DEADLINE, "the broker")
        try:
            self._land_files(envelope)
            self._parking.park_arrival(envelope)
        except BaseException as exc:
            self._files.drop(envelope.agent_id)
            raise transfer_error(exc, f"parking paglet {envelope.agent_id} on {self._here.name}") from None
        self._events.emit(
            "arrival", agent_id=envelope.agent_id, class_name=envelope.agent_class_name,
            source=envelope.source_host_address, how="parked",
        )  # fmt: skip
        return {"agent": envelope.agent_id, "address": self._here.address, "active": False}

    def _arrival_header(self, envelope: PagletEnvelope) -> dict[str, Any]:
        here = self._here
        common = {
            "source_host_name": envelope.source_host_name,
            "source_host_address": envelope.source_host_address,
            "target_host_name": here.name,
            "target_host_address": here.address,
        }
        if envelope.kind is EnvelopeKind.CLONE:
            event = CloneEvent(
                envelope.agent_id, here.name, here.address,
                source_agent_id=envelope.clone_of or "", clone_agent_id=envelope.agent_id, **common,
            )  # fmt: skip
            return {"hook": "on_clone", "event": event.to_wire(), "plain": False}
        event = MobilityEvent(envelope.agent_id, here.name, here.address, reason=envelope.kind.value, **common)
        return {"hook": "on_arrival", "event": event.to_wire(), "plain": False}

    def _land_files(self, envelope: PagletEnvelope) -> None:
        refs = []
        for item in envelope.metadata.get("files") or ():
            name = check_file_name(str(item["name"]))
            work = self._lifecycle.work_path(envelope.agent_id)
            work.mkdir(parents=True, exist_ok=True)
            self._artifacts.materialize(str(item["sha256"]), work / name)
            refs.append(PagletFileRef(name, str(work / name), int(item["size"]), str(item.get("mode") or "copy")))
        self._files.adopt(envelope.agent_id, refs)

    def abort(self, header: dict[str, Any]) -> dict[str, Any]:
        return {"aborted": self._broker.abort_prepared(header["agent"], header["token"])}

    def transfer_status(self, header: dict[str, Any]) -> dict[str, Any]:
        parked = self._parking.parked.record(header["agent"])
        if parked is not None and parked.envelope.metadata.get("token") == header["token"]:
            return {"status": "arrived"}
        return {"status": self._broker.arrival_status(header["agent"], header["token"])}

    def receive_envelope(self, payload: bytes) -> dict[str, Any]:
        """An envelope pushed in one piece (over HTTP, where only HTTP passes): prepare and arrive here."""
        envelope = PagletEnvelope.from_bytes(payload)
        token = str(envelope.metadata.get("token") or uuid.uuid4().hex)
        envelope.metadata["token"] = token
        if envelope.metadata.get("files"):
            raise TransferError("an envelope pushed in one piece cannot carry registered files")
        try:
            self._prepare_here(envelope, token)
        except BaseException as exc:
            raise transfer_error(exc, f"receiving paglet {envelope.agent_id} on {self._here.name}") from None
        return self.arrive({"agent": envelope.agent_id, "token": token}, [envelope.to_bytes()])

    def _prepare_here(self, envelope: PagletEnvelope, token: str) -> None:
        self.prepare(
            {
                "agent": envelope.agent_id,
                "cls": envelope.agent_class_name,
                "kind": envelope.kind.value,
                "token": token,
                "source": envelope.source_host_address,
                "ttl": 60.0,
            }
        )


def check_arriving_version(here: NodeIdentity, expected: str | None, source_version: str | None) -> None:
    """TransferError unless a paglet from a node running ``source_version`` may arrive here.

    The ticket's ``expected`` version, when given, must be this node's (and
    then allows a source on another version); without one the source's version
    must be this node's. A source that does not say its version (an older
    node) is let in.
    """
    if expected is not None:
        if expected != here.code_version:
            raise TransferError(f"node {here.name} runs code version {here.code_version!r}, not {expected!r}")
        return
    if source_version is not None and source_version != here.code_version:
        raise TransferError(
            f"node {here.name} runs code version {here.code_version!r}, the paglet comes from code version "
            f"{source_version!r}: refusing the move (a ticket with expected_code_version={here.code_version!r} "
            "allows it)"
        )


__all__ = ["Arrivals"]

"""The receiving side of a move: prepare, arrive, abort, and envelopes pushed in one piece.

See :mod:`paglets.node.flows.movement` for the whole two-phase protocol; this
part answers a source node's ``prepare`` (check the terms, fork a worker
that loads the class), ``arrive`` (land the files, run ``on_arrival`` or
``on_clone``, or park the paglet for ``ArrivalMode.INACTIVE``), ``abort``
and ``transfer`` (has it arrived?). Owns no state: prepared slots live in
the broker's table.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from paglets.core.errors import TransferError
from paglets.core.events import CloneEvent, MobilityEvent
from paglets.core.runtime_values import ArrivalMode, EnvelopeKind
from paglets.node.broker.slots import Phase
from paglets.node.flows.movement import transfer_error
from paglets.node.storage.files import PagletFileRef, check_file_name
from paglets.waiting import wait_for
from paglets.wire.envelope import PagletEnvelope

if TYPE_CHECKING:
    from paglets.node.host import Host


class Arrivals:
    """Paglets arriving at this node from others."""

    def __init__(self, host: Host):
        self._host = host

    def prepare(self, header: dict[str, Any]) -> dict[str, Any]:
        """Get ready for an arriving paglet: check terms, fork a worker that loads its class."""
        host = self._host
        agent_id = header["agent"]
        missing = [c for c in header.get("caps") or () if c not in host.capabilities()]
        if missing:
            raise TransferError(f"node {host.name} lacks required capabilities: {', '.join(map(str, missing))}")
        version = header.get("version")
        if version is not None and version != host.mesh_version:
            raise TransferError(f"node {host.name} runs code version {host.mesh_version!r}, not {version!r}")
        kind = EnvelopeKind(header["kind"])
        self._replace_stale_prepare(agent_id, kind)
        ttl = min(float(header["ttl"]), 3600.0)
        host.start_paglet(
            header["cls"], [], agent_id=agent_id, prepare_only=True, token=header["token"], source=header["source"],
            timeout=ttl,
        )  # fmt: skip
        return {"name": host.name, "address": host.address}

    def _replace_stale_prepare(self, agent_id: str, kind: EnvelopeKind) -> None:
        host = self._host
        slot = host.broker.in_loop(lambda: host.broker.table.slots.get(agent_id)).result(10)
        if slot is None:
            return
        if slot.phase is Phase.PREPARED:
            host.broker.stop_worker(agent_id).result(10)
            return
        if slot.phase is not Phase.CRASHED:
            raise TransferError(f"paglet {agent_id} is already on node {host.name}")

    def arrive(self, header: dict[str, Any], payload: list[bytes]) -> dict[str, Any]:
        """Receive the envelope of a prepared paglet and run its arrival (or clone) hook."""
        host = self._host
        envelope = PagletEnvelope.from_bytes(payload[0])
        if envelope.agent_id != header["agent"] or envelope.metadata.get("token") != header["token"]:
            raise TransferError("envelope does not match the prepared transfer")
        slot = host.broker.in_loop(lambda: host.broker.table.slots.get(envelope.agent_id)).result(10)
        if slot is None or slot.phase is not Phase.PREPARED or slot.nonce != header["token"]:
            raise TransferError(f"paglet {envelope.agent_id} is not prepared to arrive on {host.name}")
        if envelope.metadata.get("arrival") == ArrivalMode.INACTIVE.value:
            return self._arrive_parked(envelope)
        try:
            self._land_files(envelope)
            start_header = self._arrival_header(envelope)
            seen = [m for m in envelope.metadata.get("seen") or () if isinstance(m, str)]
            host.broker.start_prepared(envelope.agent_id, start_header, [envelope.state, b""], seen).result(
                host.start_timeout
            )
        except BaseException as exc:
            # Nothing of the paglet may stay here when the answer is "no": the source keeps it.
            host.broker.stop_worker(envelope.agent_id)
            host.files.drop(envelope.agent_id)
            raise transfer_error(exc, f"arrival of paglet {envelope.agent_id} on {host.name}") from None
        host.events.emit(
            "paglet-arrived", agent_id=envelope.agent_id, source=envelope.source_host_address, how=envelope.kind.value
        )
        return {"agent": envelope.agent_id, "address": host.address}

    def _arrive_parked(self, envelope: PagletEnvelope) -> dict[str, Any]:
        """ArrivalMode.INACTIVE: the paglet lands parked, without running."""
        host = self._host
        wait_for(host.broker.stop_worker(envelope.agent_id), 10, "the broker")
        try:
            self._land_files(envelope)
            host.parking.park_arrival(envelope)
        except BaseException as exc:
            host.files.drop(envelope.agent_id)
            raise transfer_error(exc, f"parking paglet {envelope.agent_id} on {host.name}") from None
        host.events.emit(
            "paglet-arrived", agent_id=envelope.agent_id, source=envelope.source_host_address, how="parked"
        )
        return {"agent": envelope.agent_id, "address": host.address, "active": False}

    def _arrival_header(self, envelope: PagletEnvelope) -> dict[str, Any]:
        host = self._host
        common = {
            "source_host_name": envelope.source_host_name,
            "source_host_address": envelope.source_host_address,
            "target_host_name": host.name,
            "target_host_address": host.address,
        }
        if envelope.kind is EnvelopeKind.CLONE:
            event = CloneEvent(
                envelope.agent_id, host.name, host.address,
                source_agent_id=envelope.clone_of or "", clone_agent_id=envelope.agent_id, **common,
            )  # fmt: skip
            return {"hook": "on_clone", "event": event.to_wire(), "plain": False}
        event = MobilityEvent(envelope.agent_id, host.name, host.address, reason=envelope.kind.value, **common)
        return {"hook": "on_arrival", "event": event.to_wire(), "plain": False}

    def _land_files(self, envelope: PagletEnvelope) -> None:
        host = self._host
        refs = []
        for item in envelope.metadata.get("files") or ():
            name = check_file_name(str(item["name"]))
            destination = host.work_dir_for(envelope.agent_id, check=False) / name
            host.artifacts.materialize(str(item["sha256"]), destination)
            refs.append(PagletFileRef(name, str(destination), int(item["size"]), str(item.get("mode") or "copy")))
        host.files.adopt(envelope.agent_id, refs)

    def abort(self, header: dict[str, Any]) -> dict[str, Any]:
        host = self._host
        agent_id, token = header["agent"], header["token"]

        def drop() -> bool:
            slot = host.broker.table.slots.get(agent_id)
            if slot is None or slot.nonce != token or slot.phase is not Phase.PREPARED:
                return False
            host.broker.table.stop(agent_id, forward_to=slot.source_address)
            return True

        return {"aborted": host.broker.in_loop(drop).result(10)}

    def transfer_status(self, header: dict[str, Any]) -> dict[str, Any]:
        host = self._host

        parked = host.parking.record(header["agent"])
        if parked is not None and parked.envelope.metadata.get("token") == header["token"]:
            return {"status": "arrived"}

        def status() -> str:
            slot = host.broker.table.slots.get(header["agent"])
            if slot is None or slot.nonce != header["token"]:
                return "unknown"
            return {Phase.READY: "arrived", Phase.STARTING: "starting", Phase.PREPARED: "prepared"}.get(
                slot.phase, "unknown"
            )

        return {"status": host.broker.in_loop(status).result(10)}

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
            raise transfer_error(exc, f"receiving paglet {envelope.agent_id} on {self._host.name}") from None
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


__all__ = ["Arrivals"]

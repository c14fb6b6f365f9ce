"""Answers to paglets' host calls: what a running paglet asks of its node.

A paglet's worker asks over its back socket (``hcall``); the broker hands the
call to :meth:`HostCalls.handle` on its lane for host calls, which performs
it through the node's facade (:class:`~paglets.node.host.Host`) — the only
writer of node-wide registries — or the flow that owns it, and returns the
codec-encoded result. Owns no state.
"""

from __future__ import annotations

from typing import Any

from paglets.client.transfer import TransferTicket
from paglets.core.agent import ACTIVE
from paglets.core.errors import HostError, InvalidAgentError, ProtocolError
from paglets.node.flows.movement import Movement
from paglets.node.flows.parking import Parking
from paglets.node.mesh.registry import MeshRegistry
from paglets.node.services.directory import ServiceDirectory
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.wire import codec, protocol


class HostCalls:
    """One method per host call (``_call_<op>``)."""

    def __init__(self, node: Any, movement: Movement, parking: Parking, mesh: MeshRegistry, services: ServiceDirectory):
        """``node`` is the Host facade."""
        self._node = node
        self._movement = movement
        self._parking = parking
        self._mesh = mesh
        self._services = services

    def handle(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> list[bytes]:
        op = header.get("op")
        handler = getattr(self, f"_call_{op}", None) if isinstance(op, str) else None
        if handler is None:
            raise HostError(f"host call {op!r} is not supported by node {self._node.name}")
        try:
            result = handler(agent_id, ident, header, payload)
        except ValueError as exc:  # a field the worker should have checked: what came in is malformed
            raise ProtocolError(f"host call {op}: {exc}") from None
        return [codec.encode(result, root=f"{op} result")]

    def _call_send(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        raise InvalidAgentError(f"no paglet {header.get('agent')!r} on node {self._node.name}")

    def _call_list(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        state = header.get("state", ACTIVE)
        return self._node.agent_ids(state if isinstance(state, int) else ACTIVE)

    def _call_create(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        new_id = header.get("agent")
        return self._node.start_paglet(
            str(header.get("cls")),
            payload,
            agent_id=protocol.validate_agent_id(new_id) if new_id else None,
            plain=bool(header.get("plain")),
        )

    def _call_dispose(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        self._node.dispose(str(header.get("agent")))

    def _call_dispatch(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        target_id = str(header.get("agent") or agent_id)
        initiator = ident if target_id == agent_id else None  # a paglet moving itself
        return self._movement.dispatch(target_id, _target(header), initiator=initiator).to_wire()

    def _call_clone(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        target = header.get("target")
        return self._node.clone(str(header.get("agent") or agent_id), _target(header) if target else None).to_wire()

    def _call_register_file(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        ref = self._node.register_file_for(
            agent_id, str(header.get("path")), name=header.get("name"), mode=str(header.get("mode") or "copy")
        )
        return ref.to_wire()

    def _call_registered_files(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return [ref.to_wire() for ref in self._node.registered_files_for(agent_id)]

    def _call_unregister_file(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        self._node.unregister_file_for(agent_id, str(header.get("name")))

    def _call_file_path(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return str(self._node.registered_file_path_for(agent_id, str(header.get("name"))))

    def _call_deactivate(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        target_id = str(header.get("agent") or agent_id)
        policy = header.get("policy")
        request = DeactivationRequest(
            reason=str(header.get("reason") or ""),
            source="paglet",
            policy=DeactivationPolicy.from_wire(policy) if policy else None,
            metadata=dict(header.get("metadata") or {}),
        )
        initiator = ident if target_id == agent_id else None  # a paglet parking itself
        self._parking.deactivate(target_id, request, initiator=initiator)
        return {"host_url": self._node.address, "agent_id": target_id}

    def _call_activate(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return self._node.activate(str(header.get("agent"))).to_wire()

    def _call_get_property(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return self._node.get_property(str(header.get("key")))

    def _call_set_property(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        value = codec.decode(payload[0]) if payload else None
        self._node.set_property(str(header.get("key")), value)

    def _call_hosts(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return [ref.to_wire() for ref in self._node.list_hosts(online_only=bool(header.get("online")))]

    def _call_host_status(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        ref = self._mesh.lookup(str(header.get("name")))
        return None if ref is None else ref.to_wire()

    def _call_wait_for_host(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        wait = header.get("wait")
        limit = min(float(wait), 3600.0) if isinstance(wait, (int, float)) else 3600.0
        ref = self._mesh.wait_for_host(str(header.get("name")), limit)
        return None if ref is None else ref.to_wire()

    # -- services: the calling paglet's own records -------------------------------------------
    def _call_advertise(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        record = self._services.advertise(
            agent_id, header["name"], capabilities=header.get("caps"), metadata=header.get("meta"),
            scope=header.get("scope") or "local", ttl=header.get("ttl"),
        )  # fmt: skip
        return record.to_wire()

    def _call_unadvertise(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return self._services.withdraw(agent_id, header["name"])

    def _call_lease(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return self._node.acquire_resident_service_lease(
            protocol.validate_agent_id(header["agent"]), header["service"], ttl=header["ttl"]
        )

    def _call_unlease(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return self._node.release_resident_service_lease(header["lease"])

    def _call_lookup(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        records = self._services.lookup(header.get("name"), header.get("cap"), header.get("scope") or "local")
        return [record.to_wire() for record in records]


def _target(header: dict[str, Any]) -> Any:
    target = header.get("target")
    if isinstance(target, dict):
        return TransferTicket.from_wire(target)
    if not isinstance(target, str):
        raise HostError(f"not a movement target: {target!r:.100}")
    return target


__all__ = ["HostCalls"]

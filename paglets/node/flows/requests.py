"""Answers to front requests and paglets' host calls that leave the broker loop.

The broker routes messages itself; everything slower (create, dispose,
listings, state, properties) arrives here on the op pool and is performed by
calling the :class:`~paglets.node.host.Host` facade. Owns no state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from paglets.client.transfer import TransferTicket
from paglets.core.agent import ACTIVE
from paglets.core.errors import HostError, InvalidAgentError
from paglets.core.runtime_values import EnvelopeKind
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.waiting import wait_for
from paglets.wire import codec, protocol

if TYPE_CHECKING:
    from paglets.node.host import Host

log = logging.getLogger("paglets.node")

Answer = tuple[dict[str, Any], list[bytes]]


class NodeOps:
    """The broker's services: slow ops, host calls and worker notifications."""

    def __init__(self, host: Host):
        self._host = host

    # -- front ---------------------------------------------------------------------
    def handle_front(self, request: protocol.Request) -> Answer:
        handler = getattr(self, f"_front_{request.op}", None)
        if handler is None:
            raise HostError(f"op {request.op!r} is not supported by node {self._host.name}")
        return handler(request.header, request.payload)

    def _front_health(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._host.health(), []

    def _front_list(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        agents = self._host.list_agents(
            active=header.get("active", True),
            inactive=header.get("inactive", False),
            include_state=header.get("state", False),
        )
        return {"agents": agents}, []

    def _front_info(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._host.agent_info(header["agent"]), []

    def _front_state(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        agent_id = header["agent"]
        info = self._host.agent_info(agent_id)
        return {"class_name": info["class_name"]}, [self._host.state_bytes(agent_id)]

    def _front_create(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        agent_id = self._host.start_paglet(
            header["cls"], payload, agent_id=header.get("agent"), plain=bool(header.get("plain"))
        )
        return {"agent": agent_id, "address": self._host.address}, []

    def _front_dispose(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        self._host.dispose(header["agent"])
        return {}, []

    # movement, asked by clients
    def _front_dispatch(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        proxy = self._host.dispatch(header["agent"], TransferTicket.from_wire(header["ticket"]))
        return {"agent": proxy.agent_id, "address": proxy.host_url}, []

    def _front_clone(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        ticket = header.get("ticket")
        proxy = self._host.clone(header["agent"], TransferTicket.from_wire(ticket) if ticket else None)
        return {"agent": proxy.agent_id, "address": proxy.host_url}, []

    def _front_retract(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        """Another node pulls one of our paglets back to itself."""
        proxy = self._host.movement.dispatch(header["agent"], header["target"], kind=EnvelopeKind.RETRACT)
        return {"agent": proxy.agent_id, "address": proxy.host_url}, []

    # movement, between nodes
    def _front_prepare(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._host.arrivals.prepare(header), []

    def _front_arrive(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._host.arrivals.arrive(header, payload), []

    def _front_abort(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._host.arrivals.abort(header), []

    def _front_transfer(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._host.arrivals.transfer_status(header), []

    def _front_envelope(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._host.arrivals.receive_envelope(payload[0]), []

    def _front_blob_has(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {"have": self._host.artifacts.has(header["sha"], header["size"])}, []

    def _front_blob_put(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        held = self._host.artifacts.put_chunk(
            header["sha"], header["offset"], header["size"], payload[0], bool(header.get("final"))
        )
        return {"held": held}, []

    # parking
    def _front_deactivate(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        request = DeactivationRequest.from_wire(header.get("request") or {"source": "client"})
        self._host.deactivate(header["agent"], request)
        return {"agent": header["agent"], "address": self._host.address, "active": False}, []

    def _front_activate(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        self._host.activate(header["agent"])
        return {"agent": header["agent"], "address": self._host.address, "active": True}, []

    def wake_parked(self, agent_id: str) -> None:
        """A message arrived for a parked paglet whose policy says: wake up."""
        self._host.parking.wake_for_message(agent_id)

    def queue_for_parked(self, agent_id: str, delivery: Any) -> Any:
        return self._host.parking.queue(agent_id, delivery)

    # mesh
    def _front_gossip(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {"table": self._host.mesh.merge(header["table"])}, []

    def _front_hosts(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        hosts = self._host.list_hosts(online_only=bool(header.get("online")))
        return {"hosts": [ref.to_wire() for ref in hosts]}, []

    def route_unknown(self, request: protocol.Request) -> Answer:
        """A message for a paglet the broker does not know — maybe only not yet, during start-up."""
        host = self._host
        agent_id = request.header["agent"]
        if host.ready.is_set() or not host.ready.wait(host.start_timeout):
            raise InvalidAgentError(f"no paglet {agent_id!r} on node {host.name}")
        header = request.header
        future = host.broker.deliver(
            agent_id,
            request.payload[0],
            oneway=bool(header.get("oneway")),
            priority=header.get("prio", 5),
            mid=header.get("mid"),
            activate=header.get("act") is not False,
            no_delay=header.get("nodelay") is True,
        )
        packed, payload = wait_for(future, host.client.timeout, f"paglet {agent_id} to answer")
        return protocol.unpack_map(packed, "reply header"), payload

    # -- host calls from paglets ---------------------------------------------------------
    def handle_host_call(
        self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]
    ) -> list[bytes]:
        op = header.get("op")
        handler = getattr(self, f"_call_{op}", None) if isinstance(op, str) else None
        if handler is None:
            raise HostError(f"host call {op!r} is not supported by node {self._host.name}")
        result = handler(agent_id, ident, header, payload)
        return [codec.encode(result, root=f"{op} result")]

    def _call_send(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        raise InvalidAgentError(f"no paglet {header.get('agent')!r} on node {self._host.name}")

    def _call_list(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        state = header.get("state", ACTIVE)
        return self._host.agent_ids(state if isinstance(state, int) else ACTIVE)

    def _call_create(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        new_id = header.get("agent")
        return self._host.start_paglet(
            str(header.get("cls")),
            payload,
            agent_id=protocol.validate_agent_id(new_id) if new_id else None,
            plain=bool(header.get("plain")),
        )

    def _call_dispose(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        self._host.dispose(str(header.get("agent")))

    def _call_dispatch(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        target_id = str(header.get("agent") or agent_id)
        initiator = ident if target_id == agent_id else None  # a paglet moving itself
        return self._host.movement.dispatch(target_id, _target(header), initiator=initiator).to_wire()

    def _call_clone(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        target = header.get("target")
        return self._host.clone(str(header.get("agent") or agent_id), _target(header) if target else None).to_wire()

    def _call_register_file(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        ref = self._host.register_file_for(
            agent_id, str(header.get("path")), name=header.get("name"), mode=str(header.get("mode") or "copy")
        )
        return ref.to_wire()

    def _call_registered_files(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return [ref.to_wire() for ref in self._host.registered_files_for(agent_id)]

    def _call_unregister_file(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        self._host.unregister_file_for(agent_id, str(header.get("name")))

    def _call_file_path(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return str(self._host.registered_file_path_for(agent_id, str(header.get("name"))))

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
        self._host.parking.deactivate(target_id, request, initiator=initiator)
        return {"host_url": self._host.address, "agent_id": target_id}

    def _call_activate(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return self._host.activate(str(header.get("agent"))).to_wire()

    def _call_get_property(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return self._host.get_property(str(header.get("key")))

    def _call_set_property(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        value = codec.decode(payload[0]) if payload else None
        self._host.set_property(str(header.get("key")), value)

    def _call_hosts(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        return [ref.to_wire() for ref in self._host.list_hosts(online_only=bool(header.get("online")))]

    def _call_host_status(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        ref = self._host.mesh.lookup(str(header.get("name")))
        return None if ref is None else ref.to_wire()

    def _call_wait_for_host(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        wait = header.get("wait")
        limit = min(float(wait), 3600.0) if isinstance(wait, (int, float)) else 3600.0
        ref = self._host.mesh.wait_for_host(str(header.get("name")), limit)
        return None if ref is None else ref.to_wire()

    # -- notifications -------------------------------------------------------------------
    def worker_crashed(self, agent_id: str, pid: int | None, reason: str) -> None:
        log.warning("node %s: paglet %s crashed: %s", self._host.name, agent_id, reason)
        self._host.events.emit("paglet-crashed", agent_id=agent_id, pid=pid, reason=reason)
        if pid is not None:
            self._host.processes.kill(pid)  # a hung worker: make sure it is really gone

    def worker_event(self, agent_id: str, header: dict[str, Any]) -> None:
        kind = header.get("kind")
        if kind == "run-finished":
            self._host.events.emit("paglet-run-finished", agent_id=agent_id, ok=bool(header.get("ok")))


def _target(header: dict[str, Any]) -> Any:
    target = header.get("target")
    if isinstance(target, dict):
        return TransferTicket.from_wire(target)
    if not isinstance(target, str):
        raise HostError(f"not a movement target: {target!r:.100}")
    return target


__all__ = ["NodeOps"]

"""Answers to front requests that leave the broker loop (create, listings, moves, mesh...).

The broker routes messages itself; every slower op a client or peer node asks
for arrives here on one of the broker's lanes (``handle``) and is performed by the
node's facade (:class:`~paglets.node.host.Host`) or, for node-to-node ops,
by the part that owns them (arrivals, artifacts, the mesh). Owns no state.
"""

from __future__ import annotations

import threading
from typing import Any

from paglets.client.transfer import TransferTicket
from paglets.core.errors import HostError, InvalidAgentError, ProtocolError, TransferError
from paglets.core.runtime_values import EnvelopeKind
from paglets.node.broker.commands import BrokerCommands
from paglets.node.flows.arrivals import Arrivals
from paglets.node.flows.movement import Movement
from paglets.node.mesh.registry import MeshRegistry
from paglets.node.observe.feed import DEFAULT_LIMIT, check_query
from paglets.node.services.directory import ServiceDirectory
from paglets.node.services.mesh_query import pack_records
from paglets.node.storage.files import ArtifactStore
from paglets.persistence.persistency import DeactivationRequest
from paglets.services.records import check_service_name
from paglets.waiting import wait_for
from paglets.wire import protocol
from paglets.wire.limits import check_text, check_value

Answer = tuple[dict[str, Any], list[bytes]]
MAX_TRANSFER_RETRIES = 10  # prepare attempts a remote caller may ask for, beyond the first


class FrontRequests:
    """The node's answers to front ops, one method per op (``_op_<name>``)."""

    def __init__(
        self,
        node: Any,
        broker: BrokerCommands,
        movement: Movement,
        arrivals: Arrivals,
        artifacts: ArtifactStore,
        mesh: MeshRegistry,
        *,
        ready: threading.Event,
        start_timeout: float,
        call_timeout: float,
        max_transfer_timeout: float = 300.0,
        services: ServiceDirectory | None = None,
    ):
        """``node`` is the Host facade; ``ready`` is set once parked paglets are loaded.

        ``max_transfer_timeout``: the longest move (ticket timeout) a remote caller may ask for.
        """
        self._node = node
        self._broker = broker
        self._movement = movement
        self._arrivals = arrivals
        self._artifacts = artifacts
        self._mesh = mesh
        self._ready = ready
        self._start_timeout = start_timeout
        self._call_timeout = call_timeout
        self._max_transfer_timeout = max_transfer_timeout
        self._services = services

    def handle(self, request: protocol.Request) -> Answer:
        handler = getattr(self, f"_op_{request.op}", None)
        if handler is None:
            raise HostError(f"op {request.op!r} is not supported by node {self._node.name}")
        return handler(request.header, request.payload)

    def _op_health(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._node.health(), []

    def _op_list(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        agents = self._node.list_agents(
            active=header.get("active", True),
            inactive=header.get("inactive", False),
            include_state=header.get("state", False),
        )
        return {"agents": agents}, []

    def _op_info(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._node.agent_info(header["agent"]), []

    def _op_state(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        agent_id = header["agent"]
        info = self._node.agent_info(agent_id, resources=False)
        return {"class_name": info["class_name"]}, [self._node.state_bytes(agent_id)]

    def _op_create(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        agent_id = self._node.start_paglet(
            header["cls"], payload, agent_id=header.get("agent"), plain=bool(header.get("plain"))
        )
        return {"agent": agent_id, "address": self._node.address}, []

    def _op_dispose(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        self._node.dispose(header["agent"])
        return {}, []

    # movement, asked by clients
    def _op_dispatch(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        proxy = self._node.dispatch(header["agent"], self._ticket(header["ticket"]))
        return {"agent": proxy.agent_id, "address": proxy.host_url}, []

    def _op_clone(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        ticket = header.get("ticket")
        proxy = self._node.clone(header["agent"], self._ticket(ticket) if ticket else None)
        return {"agent": proxy.agent_id, "address": proxy.host_url}, []

    def _ticket(self, wire: dict[str, Any]) -> TransferTicket:
        """A ticket from a remote caller, within this node's limits: a move it asks for cannot hold the node long."""
        ticket = TransferTicket.from_wire(wire)
        check_text("ticket", "destination", ticket.destination)
        check_value("ticket", "caps", list(ticket.required_capabilities))
        if ticket.expected_code_version is not None:
            check_text("ticket", "version", str(ticket.expected_code_version))
        cap = self._max_transfer_timeout
        if not 0 < ticket.timeout <= cap:  # NaN fails too
            raise TransferError(
                f"ticket timeout {ticket.timeout} s is above the {cap:g} s node {self._node.name} allows a remote "
                "caller (max_transfer_timeout)"
            )
        if ticket.retries > MAX_TRANSFER_RETRIES or not 0 <= ticket.retry_interval <= cap:
            raise TransferError(
                f"ticket asks for {ticket.retries} retries {ticket.retry_interval} s apart; node "
                f"{self._node.name} allows at most {MAX_TRANSFER_RETRIES}, at most {cap:g} s apart"
            )
        return ticket

    def _op_retract(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        """Another node pulls one of our paglets back to itself."""
        proxy = self._movement.dispatch(header["agent"], header["target"], kind=EnvelopeKind.RETRACT)
        return {"agent": proxy.agent_id, "address": proxy.host_url}, []

    # movement, between nodes
    def _op_prepare(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._arrivals.prepare(header), []

    def _op_arrive(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._arrivals.arrive(header, payload), []

    def _op_abort(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._arrivals.abort(header), []

    def _op_transfer(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._arrivals.transfer_status(header), []

    def _op_envelope(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._arrivals.receive_envelope(payload[0]), []

    def _op_blob_has(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {"have": self._artifacts.has(header["sha"], header["size"])}, []

    def _op_blob_put(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        held = self._artifacts.put_chunk(
            header["sha"], header["offset"], header["size"], payload[0], bool(header.get("final"))
        )
        return {"held": held}, []

    # parking
    # ``was_active`` lets the caller say "already parked" or "already active" instead of what did not happen
    # (read before the call: a message that wakes the paglet meanwhile makes it look like our doing, harmlessly).
    def _op_deactivate(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        request = DeactivationRequest.from_wire(header.get("request") or {"source": "client"})
        agent_id = header["agent"]
        was_active = agent_id not in self._node.parked
        self._node.deactivate(agent_id, request)
        return {"agent": agent_id, "address": self._node.address, "active": False, "was_active": was_active}, []

    def _op_activate(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        agent_id = header["agent"]
        was_active = agent_id not in self._node.parked
        self._node.activate(agent_id)
        return {"agent": agent_id, "address": self._node.address, "active": True, "was_active": was_active}, []

    # mesh
    def _op_gossip(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._mesh.answer_gossip(header), []

    def _op_hosts(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        hosts = self._node.list_hosts(online_only=bool(header.get("online")))
        return {"hosts": [ref.to_wire() for ref in hosts]}, []

    # services
    def _op_services(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        if self._services is None:
            raise HostError(f"node {self._node.name} keeps no service records")
        try:
            records = self._services.answer(header)
        except ValueError as exc:
            raise ProtocolError(f"services: {exc}") from None
        return {"count": len(records)}, [pack_records(records)]

    # observing
    def _op_events(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        """A read of the event log; a waiting one ends early when the node stops (see paglets.node.observe.feed)."""
        query = check_query(
            header.get("since", 0), header.get("limit", DEFAULT_LIMIT), header.get("agent"), header.get("kind"),
            header.get("wait", 0.0),
        )  # fmt: skip
        return self._node.feed.read(query, stop=lambda: not self._node.running), []

    # code rollout (the node checks who may ask: see paglets.node.rollout.updater)
    def _op_update(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return self._node.update_code(header.get("target")), []

    def _op_lease(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        try:
            grant = self._node.acquire_resident_service_lease(
                protocol.validate_agent_id(header["agent"]), check_service_name(header["service"]), ttl=header["ttl"]
            )
        except ValueError as exc:
            raise ProtocolError(f"lease: {exc}") from None
        return grant, []

    def _op_unlease(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        try:
            return self._node.release_resident_service_lease(header["lease"]), []
        except ValueError as exc:
            raise ProtocolError(f"unlease: {exc}") from None

    def route_unknown(self, request: protocol.Request) -> Answer:
        """A message for a paglet the broker does not know — maybe only not yet, during start-up."""
        agent_id = request.header["agent"]
        if self._ready.is_set() or not self._ready.wait(self._start_timeout):
            raise InvalidAgentError(f"no paglet {agent_id!r} on node {self._node.name}")
        header = request.header
        future = self._broker.deliver(
            agent_id,
            request.payload[0],
            oneway=bool(header.get("oneway")),
            priority=header.get("prio", 5),
            mid=header.get("mid"),
            activate=header.get("act") is not False,
            no_delay=header.get("nodelay") is True,
        )
        packed, payload = wait_for(future, self._call_timeout, f"paglet {agent_id} to answer")
        return protocol.unpack_map(packed, "reply header"), payload


__all__ = ["Answer", "FrontRequests"]

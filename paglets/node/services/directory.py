"""What a node does with services: advertise for its paglets, withdraw, look up here and in the mesh.

The registry (:mod:`paglets.node.services.registry`) keeps the records; this
part checks what comes in (every field bounded, the advertiser a paglet that
runs here) and answers lookups: LOCAL from the registry alone, MESH from the
registry plus every other node's MESH records (:mod:`paglets.node.services.mesh_query`).
The Host facade, the host calls of paglets and the ``services`` front op all
come through here. Owns no state.
"""

from __future__ import annotations

import time
from typing import Any

from paglets.core.errors import InvalidAgentError
from paglets.core.runtime_values import ServiceScope
from paglets.node.broker.commands import LOOP_DEADLINE, BrokerCommands
from paglets.node.identity import NodeIdentity
from paglets.node.services.mesh_query import MeshQuery
from paglets.node.services.registry import ServiceRegistry
from paglets.services.records import (
    ServiceRecord,
    check_capabilities,
    check_metadata,
    check_scope,
    check_service_name,
    check_ttl,
)
from paglets.waiting import wait_for

LIVE_PHASES = frozenset({"starting", "prepared", "ready", "moving"})  # a paglet that runs here (or is about to)


class ServiceDirectory:
    """Advertise, withdraw and look up services on one node."""

    def __init__(self, registry: ServiceRegistry, broker: BrokerCommands, here: NodeIdentity, query: MeshQuery):
        self.registry = registry
        self._broker = broker
        self._here = here
        self._query = query

    def advertise(
        self,
        agent_id: str,
        name: str,
        *,
        capabilities: Any = None,
        metadata: Any = None,
        scope: Any = ServiceScope.LOCAL,
        ttl: Any = None,
    ) -> ServiceRecord:
        """Record that paglet ``agent_id`` (running here) offers ``name``; replaces its record of that name.

        ValueError names a bad field; InvalidAgentError if the paglet does not
        run here; OverloadedError past the registry's bounds. Nothing is kept
        when any of them is raised.
        """
        lifetime = check_ttl(ttl)
        record = ServiceRecord(
            name=check_service_name(name),
            agent_id=agent_id,
            host_name=self._here.name,
            host_url=self._here.address,
            capabilities=check_capabilities(capabilities),
            metadata=check_metadata(metadata),
            scope=check_scope(scope),
            expires_at=None if lifetime is None else time.time() + lifetime,
        )
        self._require_here(agent_id)
        self.registry.put(record)
        if not self._runs_here(agent_id):  # it left while we were adding: its leaving removed nothing of this
            self.registry.remove(agent_id, record.name, reason="gone")
            raise InvalidAgentError(f"paglet {agent_id} left node {self._here.name} while it advertised {name!r}")
        return record

    def withdraw(self, agent_id: str, name: str) -> bool:
        """Withdraw paglet ``agent_id``'s record of ``name``; False if it had none."""
        return self.registry.remove(agent_id, name) is not None

    def lookup(
        self, name: str | None = None, capability: str | None = None, scope: Any = ServiceScope.LOCAL
    ) -> list[ServiceRecord]:
        """This node's records (LOCAL), or those plus every other node's MESH records (MESH); this node's first."""
        if name is not None:
            check_service_name(name)
        here = self.registry.records(name, capability)
        if check_scope(scope) is ServiceScope.LOCAL:
            return here
        return here + self._query.records(name, capability)

    def answer(self, header: dict[str, Any]) -> list[ServiceRecord]:
        """The ``services`` front op: a peer (``peer``) gets this node's MESH records only, never a fan-out."""
        name, capability = header.get("name"), header.get("cap")
        if header.get("peer"):
            if name is not None:
                check_service_name(name)
            return self.registry.records(name, capability, mesh_only=True)
        return self.lookup(name, capability, header.get("scope") or ServiceScope.LOCAL.value)

    def _require_here(self, agent_id: str) -> None:
        if not self._runs_here(agent_id):
            raise InvalidAgentError(f"no running paglet {agent_id!r} on node {self._here.name} to advertise for")

    def _runs_here(self, agent_id: str) -> bool:
        try:
            summary = wait_for(self._broker.summary(agent_id), LOOP_DEADLINE, "the broker")
        except InvalidAgentError:
            return False
        return summary.get("phase") in LIVE_PHASES


__all__ = ["ServiceDirectory"]

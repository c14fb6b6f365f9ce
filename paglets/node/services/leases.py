"""Leases on this node's resident services: who keeps which service awake, until when.

A lease is an id, the resident service it holds (agent id and service name)
and an expiry. While a service has a live lease the node does not park it as
idle (:mod:`paglets.node.flows.idling` asks :meth:`LeaseTable.holds`).
Leases end by :meth:`release` or at their expiry; :meth:`sweep` (run by the
idle parker's tick, and by every :meth:`holds`) removes the expired ones.

Events: ``lease-acquired``, ``lease-released``,
``lease-expired`` (each with ``lease_id`` and ``service_name``).
Bounded: at most ``max_leases`` live leases per node (OverloadedError past it).
Any thread; one lock guards the table, events are emitted outside it.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from paglets.core.errors import OverloadedError
from paglets.core.events import ContextEventLog
from paglets.services.resident import check_lease_id, check_lease_ttl

MAX_LEASES = 4096


@dataclass(frozen=True, slots=True)
class Lease:
    lease_id: str
    agent_id: str
    service_name: str
    expires_at: float  # UNIX time

    def to_wire(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "agent_id": self.agent_id,
            "service_name": self.service_name,
            "expires_at": self.expires_at,
        }


class LeaseTable:
    """The live leases of one node."""

    def __init__(self, events: ContextEventLog, node_name: str, *, max_leases: int = MAX_LEASES):
        self._events = events
        self._node_name = node_name
        self.max_leases = max_leases
        self._lock = threading.Lock()
        self._leases: dict[str, Lease] = {}

    def grant(self, agent_id: str, service_name: str, ttl: Any) -> Lease:
        """A new lease of ``ttl`` seconds (ValueError for a bad ttl; OverloadedError past the bound)."""
        lifetime = check_lease_ttl(ttl)
        self.sweep()
        lease = Lease(secrets.token_hex(16), agent_id, service_name, time.time() + lifetime)
        with self._lock:
            if len(self._leases) >= self.max_leases:
                raise OverloadedError(
                    f"node {self._node_name} holds {len(self._leases)} service leases; the limit is {self.max_leases}"
                )
            self._leases[lease.lease_id] = lease
        self._tell("acquired", lease, ttl=lifetime)
        return lease

    def release(self, lease_id: Any) -> Lease | None:
        """End a lease; None if there was none (released already, expired, or never granted here)."""
        lease_id = check_lease_id(lease_id)
        with self._lock:
            lease = self._leases.pop(lease_id, None)
        if lease is not None:
            self._tell("released", lease)
        return lease

    def holds(self, agent_id: str) -> bool:
        """Whether a live lease holds paglet ``agent_id`` (expired leases are swept first)."""
        self.sweep()
        with self._lock:
            return any(lease.agent_id == agent_id for lease in self._leases.values())

    def held(self) -> set[str]:
        """The agent ids held by a live lease."""
        self.sweep()
        with self._lock:
            return {lease.agent_id for lease in self._leases.values()}

    def drop_agent(self, agent_id: str, reason: str) -> None:
        """The service is gone (disposed, moved): its leases end with it."""
        with self._lock:
            gone = [lease for lease in self._leases.values() if lease.agent_id == agent_id]
            for lease in gone:
                del self._leases[lease.lease_id]
        for lease in gone:
            self._tell("released", lease, reason=reason)

    def clear(self) -> None:
        """The node stops: no lease outlives its run (they are not events: nothing was released)."""
        with self._lock:
            self._leases.clear()

    def sweep(self) -> list[Lease]:
        now = time.time()
        with self._lock:
            gone = [lease for lease in self._leases.values() if lease.expires_at <= now]
            for lease in gone:
                del self._leases[lease.lease_id]
        for lease in gone:
            self._tell("expired", lease)
        return gone

    def count(self) -> int:
        with self._lock:
            return len(self._leases)

    def _tell(self, kind: str, lease: Lease, **extra: Any) -> None:
        self._events.emit(
            f"lease-{kind}", agent_id=lease.agent_id, lease_id=lease.lease_id,
            service_name=lease.service_name, expires_at=lease.expires_at, **extra,
        )  # fmt: skip


__all__ = ["MAX_LEASES", "Lease", "LeaseTable"]

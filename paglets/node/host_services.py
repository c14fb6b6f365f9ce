"""The service side of a node's facade: records, lookups, contracts, leases and resident services.

:class:`NodeServices` has the public signatures of these ``Host`` methods
(``host.advertise_service(...)`` is ``host.service_api.advertise_service(...)``,
see :func:`delegate`): it owns nothing itself and works through the running
parts of the node (its service directory, its residents) and its client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paglets.client.host_client import HostClient
from paglets.client.proxy import PagletProxy
from paglets.core.agent import Paglet, PagletState
from paglets.core.runtime_values import ServiceScope
from paglets.node.assembly import RunningParts
from paglets.node.identity import NodeIdentity
from paglets.services.access import ServiceAccess
from paglets.services.contracts import ServiceContract, ServiceHandle
from paglets.services.records import ServiceRecord
from paglets.services.resident import DEFAULT_LEASE_TTL, ResidentServiceSpec, ServiceLease, lease_for


class NodeServices:
    """The service API of one node (any thread)."""

    def __init__(
        self,
        parts: Callable[[], RunningParts],
        here: NodeIdentity,
        client: HostClient,
        resident_specs: list[ResidentServiceSpec],
    ):
        self._parts = parts
        self._here = here
        self._client = client
        self._resident_specs = resident_specs
        self._access = ServiceAccess(
            self.advertise_service,
            lambda name, capability, scope: self._parts().services.lookup(name, capability, scope),
            lambda record: PagletProxy(record.host_url, record.agent_id, self._client),
            lambda handle, ttl: self.lease_service_handle(handle, ttl=ttl),
        )

    def advertise_service(
        self,
        name: str,
        *,
        agent_id: str,
        capabilities: Any = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> ServiceRecord:
        """Record that paglet ``agent_id`` (running here) offers ``name``; it lasts until withdrawn,
        ``ttl`` seconds pass, or the paglet is disposed, moves away or crashes."""
        return self._parts().services.advertise(
            agent_id, name, capabilities=capabilities, metadata=metadata, scope=scope, ttl=ttl
        )

    def unadvertise_service(self, name: str, *, agent_id: str) -> bool:
        """Withdraw paglet ``agent_id``'s record of ``name``; False if it had none."""
        return self._parts().services.withdraw(agent_id, name)

    def lookup_services(
        self, name: str | None = None, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[ServiceRecord]:
        """Records of ``name`` (None: all): this node's (LOCAL), plus every other node's MESH ones (MESH)."""
        return self._access.lookup_services(name, capability, scope)

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> Any:
        """A PagletProxyRef to a provider of ``name`` (this node's first), or None."""
        return self._access.lookup_service(name, capability, scope)

    def advertise_contract(
        self,
        contract: ServiceContract,
        *,
        agent_id: str,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ServiceRecord:
        return self._access.advertise_contract(contract, scope=scope, ttl=ttl, metadata=metadata, agent_id=agent_id)

    def lookup_contracts(
        self, contract: ServiceContract, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[ServiceHandle]:
        return self._access.lookup_contracts(contract, operation, scope)

    def lookup_contract(
        self, contract: ServiceContract, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> ServiceHandle | None:
        return self._access.lookup_contract(contract, operation, scope)

    def require_contract(
        self, contract: ServiceContract, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> ServiceHandle:
        """A handle on a provider of ``contract``; ServiceNotFoundError if there is none."""
        return self._access.require_contract(contract, operation, scope)

    def lease_contract(
        self,
        contract: ServiceContract,
        *,
        operation: Any = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float = DEFAULT_LEASE_TTL,
    ) -> ServiceLease:
        """A lease on a resident service offering ``contract`` (this node's first); ServiceNotFoundError if none."""
        return self._access.lease_contract(contract, operation, scope, ttl)

    def lease_service_handle(self, handle: ServiceHandle, *, ttl: float = DEFAULT_LEASE_TTL) -> ServiceLease:
        """Lease the resident service behind ``handle`` (here or on another node) for ``ttl`` seconds."""
        record = handle.record
        if record.host_url.rstrip("/") == self._here.address:
            return lease_for(
                handle, ttl, lambda rec, lifetime: self.acquire_resident_service_lease(
                    rec.agent_id, rec.name, ttl=lifetime),
                self.release_resident_service_lease,
            )  # fmt: skip
        return lease_for(
            handle, ttl, lambda rec, lifetime: self._client.lease(rec.host_url, rec.agent_id, rec.name, lifetime),
            lambda lease_id: self._client.unlease(record.host_url, lease_id),
        )  # fmt: skip

    def acquire_resident_service_lease(
        self, agent_id: str, service_name: str, *, ttl: float = DEFAULT_LEASE_TTL
    ) -> dict[str, Any]:
        """Lease this node's resident service ``agent_id`` (offering ``service_name``), starting it if it is
        parked; the grant ``{lease_id, agent_id, service_name, expires_at}``. ServiceNotFoundError if it is
        no resident service of this node; ValueError for a bad ttl."""
        return self._parts().residents.acquire(agent_id, service_name, ttl)

    def release_resident_service_lease(self, lease_id: str) -> dict[str, Any]:
        """End a lease early: ``{lease_id, released}`` (False: it had ended already)."""
        return self._parts().residents.release(lease_id)

    def resident_services(self) -> list[ResidentServiceSpec]:
        """The resident services this node runs, as checked specs."""
        return list(self._resident_specs)

    def create_parked(
        self, cls: type[Paglet[Any]] | str, state: PagletState | dict[str, Any] | None = None, *,
        agent_id: str | None = None,
    ) -> PagletProxy:  # fmt: skip
        """A new paglet created parked: only its record is written; nothing runs until its first message
        (or :meth:`activate`) starts it with ``on_creation``. Cheap: a node holds far more of these than
        it could run at once."""
        run = self._parts()
        agent_id, class_name, data, plain = run.lifecycle.check_new_parked(cls, state, agent_id)
        run.parking.create_parked(agent_id, class_name, data, plain=plain)
        return PagletProxy(self._here.address, agent_id, self._client)


class delegate:
    """A facade method that is a part's: ``x = delegate("service_api", NodeServices)`` in ``Host`` makes
    ``host.x(...)`` call ``host.service_api.x(...)``, with the part's signature and docstring."""

    def __init__(self, part: str, part_class: type):
        self.part = part
        self.part_class = part_class
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.target = getattr(self.part_class, name)  # AttributeError at import: the part lacks it
        self.name = name
        self.__doc__ = self.target.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.target  # Host.x: the part's function (its signature and docstring, for help())
        return getattr(getattr(instance, self.part), self.name)


__all__ = ["NodeServices", "delegate"]

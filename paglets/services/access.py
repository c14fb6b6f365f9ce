"""What a paglet's context and the Host facade share: contract lookups built on four primitives.

Whoever offers services (:class:`~paglets.worker.context.WorkerContext` in a
worker, :class:`~paglets.node.host.Host` in the node process) supplies how
to advertise a service, how to look records up, how to reach a record's
provider and how to lease a provider's resident service; :class:`ServiceAccess`
builds the rest of the service API on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paglets.client.references import PagletProxyRef
from paglets.core.errors import ServiceContractError, ServiceNotFoundError
from paglets.core.runtime_values import ServiceScope
from paglets.services.contracts import ServiceContract, ServiceHandle, handles_for, not_found
from paglets.services.records import ServiceRecord
from paglets.services.resident import DEFAULT_LEASE_TTL, ServiceLease, check_lease_ttl

Advertise = Callable[..., ServiceRecord]  # (name, *, capabilities, metadata, scope, ttl, **owner)
Lookup = Callable[[str | None, str | None, ServiceScope], list[ServiceRecord]]  # (name, capability, scope)
Resolve = Callable[[ServiceRecord], Any]  # a record -> a proxy on its provider
Lease = Callable[[ServiceHandle, float], ServiceLease]  # (handle, ttl) -> a lease; ServiceNotFoundError if not resident


class ServiceAccess:
    """Service lookups and contracts over ``advertise``, ``lookup``, ``resolve`` and ``lease``."""

    def __init__(self, advertise: Advertise, lookup: Lookup, resolve: Resolve, lease: Lease | None = None):
        self._advertise = advertise
        self._lookup = lookup
        self._resolve = resolve
        self._lease = lease

    def lookup_services(
        self, name: str | None = None, capability: str | None = None, scope: Any = ServiceScope.LOCAL
    ) -> list[ServiceRecord]:
        return self._lookup(name, capability, ServiceScope(scope))

    def lookup_service(
        self, name: str, capability: str | None = None, scope: Any = ServiceScope.LOCAL
    ) -> PagletProxyRef | None:
        records = self._lookup(name, capability, ServiceScope(scope))
        return records[0].ref if records else None

    def advertise_contract(
        self,
        contract: ServiceContract,
        *,
        scope: Any = ServiceScope.LOCAL,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
        **owner: Any,
    ) -> ServiceRecord:
        _check_contract(contract)
        return self._advertise(
            contract.name,
            capabilities=list(contract.capabilities()),
            metadata=contract.advertise_metadata(metadata),
            scope=scope,
            ttl=ttl,
            **owner,
        )

    def lookup_contracts(
        self, contract: ServiceContract, operation: Any = None, scope: Any = ServiceScope.LOCAL
    ) -> list[ServiceHandle]:
        _check_contract(contract)
        records = self._lookup(contract.name, None, ServiceScope(scope))
        return handles_for(contract, records, self._resolve, operation)

    def lookup_contract(
        self, contract: ServiceContract, operation: Any = None, scope: Any = ServiceScope.LOCAL
    ) -> ServiceHandle | None:
        handles = self.lookup_contracts(contract, operation, scope)
        return handles[0] if handles else None

    def require_contract(
        self, contract: ServiceContract, operation: Any = None, scope: Any = ServiceScope.LOCAL
    ) -> ServiceHandle:
        handle = self.lookup_contract(contract, operation, scope)
        if handle is None:
            raise not_found(contract, operation, ServiceScope(scope))
        return handle

    def lease_contract(
        self,
        contract: ServiceContract,
        operation: Any = None,
        scope: Any = ServiceScope.LOCAL,
        ttl: float = DEFAULT_LEASE_TTL,
    ) -> ServiceLease:
        """A lease on the first provider of ``contract`` that is a resident service (this node's first).

        Providers that are not resident services are passed over; none left is
        a ServiceNotFoundError saying why each was refused.
        """
        ttl = check_lease_ttl(ttl)
        if self._lease is None:
            raise ServiceNotFoundError("leases are not available here")
        refusals: list[str] = []
        for handle in self.lookup_contracts(contract, operation, scope):
            try:
                return self._lease(handle, ttl)
            except ServiceNotFoundError as exc:
                refusals.append(str(exc))
        if not refusals:
            raise not_found(contract, operation, ServiceScope(scope))
        why = "; ".join(refusals[:3]) + (f"; and {len(refusals) - 3} more" if len(refusals) > 3 else "")
        raise ServiceNotFoundError(
            f"no resident service offers contract {contract.name!r} v{contract.version} to lease: "
            f"the {len(refusals)} provider(s) found are not resident services ({why})"
        )


def _check_contract(contract: Any) -> None:
    if not isinstance(contract, ServiceContract):
        raise ServiceContractError(f"expected a ServiceContract, got {type(contract).__name__}")


__all__ = ["ServiceAccess"]

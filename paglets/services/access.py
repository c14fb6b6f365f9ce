"""What a paglet's context and the Host facade share: contract lookups built on three primitives.

Whoever offers services (:class:`~paglets.worker.context.WorkerContext` in a
worker, :class:`~paglets.node.host.Host` in the node process) supplies how
to advertise a service, how to look records up and how to reach a record's
provider; :class:`ServiceAccess` builds the rest of the service API on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paglets.client.references import PagletProxyRef
from paglets.core.errors import ServiceContractError
from paglets.core.runtime_values import ServiceScope
from paglets.services.contracts import ServiceContract, ServiceHandle, handles_for, not_found
from paglets.services.records import ServiceRecord

Advertise = Callable[..., ServiceRecord]  # (name, *, capabilities, metadata, scope, ttl, **owner)
Lookup = Callable[[str | None, str | None, ServiceScope], list[ServiceRecord]]  # (name, capability, scope)
Resolve = Callable[[ServiceRecord], Any]  # a record -> a proxy on its provider


class ServiceAccess:
    """Service lookups and contracts over ``advertise``, ``lookup`` and ``resolve``."""

    def __init__(self, advertise: Advertise, lookup: Lookup, resolve: Resolve):
        self._advertise = advertise
        self._lookup = lookup
        self._resolve = resolve

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


def _check_contract(contract: Any) -> None:
    if not isinstance(contract, ServiceContract):
        raise ServiceContractError(f"expected a ServiceContract, got {type(contract).__name__}")


__all__ = ["ServiceAccess"]

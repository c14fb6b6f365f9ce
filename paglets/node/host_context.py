"""PagletContext(host): the context API for host-side code, in the node's process.

Code written for the HTTP paglets API builds ``PagletContext(host)`` (or
``PagletContext(host, agent_id)``) to act on a node the way a paglet acts
through its own context. :class:`HostSideContext` does that through the Host
facade; importing this module (``paglets.node.host`` does) makes
``PagletContext(host)`` build one. Calls about "this paglet" (resources, work
dir, files, services without an ``agent_id``) need the ``agent_id`` it was
built with, and say so when it has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paglets.client.hosts import HostRef
from paglets.core.agent import ACTIVE, PagletContext
from paglets.core.errors import HostError
from paglets.core.messages import Message, ReplySet
from paglets.core.resources import ResourceRegistry
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationRequest


class HostSideContext(PagletContext):
    """A PagletContext that acts through a Host (any thread of the node's process)."""

    def __init__(self, host: Any, agent_id: str | None = None):
        self._host = host
        self.agent_id = agent_id  # type: ignore[assignment]

    @property
    def host(self) -> Any:
        return self._host

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._host.name

    @property
    def address(self) -> str:  # type: ignore[override]
        return self._host.address

    def _own(self, agent_id: str | None, what: str) -> str:
        agent_id = agent_id or self.agent_id
        if not agent_id:
            raise HostError(f"{what} is about one paglet: build the context as PagletContext(host, agent_id)")
        return agent_id

    def _is_local(self, host_url: str | None) -> bool:
        return host_url is None or host_url.rstrip("/") == self._host.address

    # -- paglets ---------------------------------------------------------------------
    def get_proxy(self, agent_id: str, host_url: str | None = None) -> Any:
        if self._is_local(host_url):
            return self._host.get_proxy_for(agent_id)
        return self._host.client.proxy(host_url, agent_id)

    def get_proxies(self, state: int = ACTIVE) -> list[Any]:
        return self._host.get_proxies(state)

    def create_paglet(self, cls: Any, state: Any = None, *, init: Any = None, host_url: str | None = None) -> Any:
        if self._is_local(host_url):
            return self._host.create(cls, state, init)
        return self._host.create_remote(host_url, cls, state, init)

    def dispatch(self, agent_id: str, target: Any) -> Any:
        return self._host.dispatch(agent_id, target)

    def clone(self, agent_id: str, target: Any = None) -> Any:
        return self._host.clone(agent_id, target)

    def deactivate(
        self, agent_id: str, *, reason: str = "", policy: Any = None, metadata: dict[str, Any] | None = None
    ) -> Any:
        return self._host.deactivate(agent_id, DeactivationRequest(reason, "host", policy, dict(metadata or {})))

    def dispose(self, agent_id: str) -> None:
        self._host.dispose(agent_id)

    # -- messages --------------------------------------------------------------------
    def send(self, agent_id: str, message: Message | str, host_url: str | None = None, **kwargs: Any) -> Any:
        message = Message(message) if isinstance(message, str) else message
        oneway, timeout = bool(kwargs.get("oneway")), kwargs.get("timeout")
        if self._is_local(host_url):
            return self._host.deliver_message(agent_id, message, oneway=oneway, timeout=timeout)
        if oneway:
            return self._host.client.send_oneway(host_url, agent_id, message)
        return self._host.client.send(host_url, agent_id, message, timeout=timeout)

    def multicast(self, kind: str, args: dict[str, Any] | None = None, *, include_self: bool = True) -> ReplySet:
        exclude = {self.agent_id} if self.agent_id and not include_self else None
        return self._host.multicast_message(kind, args, exclude=exclude)

    def wait_message(self, timeout: float | None = None) -> bool:
        return self._host.wait_message(self._own(None, "wait_message"), timeout=timeout)

    def notify_message(self) -> None:
        self._host.notify_message(self._own(None, "notify_message"))

    def notify_all_messages(self) -> None:
        self._host.notify_all_messages(self._own(None, "notify_all_messages"))

    # -- node and mesh ----------------------------------------------------------------
    def get_property(self, key: str, default: Any = None) -> Any:
        return self._host.get_property(key, default)

    def set_property(self, key: str, value: Any) -> None:
        self._host.set_property(key, value)

    def available_hosts(self, online_only: bool = True, include_self: bool = True) -> list[HostRef]:
        return self._host.list_hosts(online_only=online_only, include_self=include_self)

    def host_status(self, name_or_url: str) -> HostRef | None:
        return self._host.mesh.lookup(name_or_url)

    def is_host_online(self, name_or_url: str) -> bool:
        ref = self.host_status(name_or_url)
        return bool(ref and ref.online)

    def wait_for_host(self, name_or_url: str, timeout: float | None = 10.0, interval: float | None = None) -> HostRef:
        limit = 3600.0 if timeout is None else min(float(timeout), 3600.0)
        ref = self._host.mesh.wait_for_host(name_or_url, limit)  # woken by gossip: ``interval`` is not needed
        if ref is None:
            raise HostError(f"node {name_or_url!r} was not seen online by {self._host.name}'s mesh within {limit:g} s")
        return ref

    # -- one paglet's things ----------------------------------------------------------
    def resources(self) -> ResourceRegistry:
        return self._host.resources_for(self._own(None, "resources"))

    def work_dir(self, create: bool = True) -> Path:
        return self._host.work_dir_for(self._own(None, "work_dir"), create=create)

    def persistent_storage(self, quota_bytes: int | None = None) -> Any:
        return self._host.persistent_storage_for(self._own(None, "persistent_storage"), quota_bytes=quota_bytes)

    def register_file(self, path: str | Path, *, name: str | None = None, mode: str = "copy") -> Any:
        return self._host.register_file_for(self._own(None, "register_file"), path, name=name, mode=mode)

    def registered_files(self) -> list[Any]:
        return self._host.registered_files_for(self._own(None, "registered_files"))

    def unregister_file(self, name: Any) -> None:
        self._host.unregister_file_for(self._own(None, "unregister_file"), name)

    def file_path(self, name: Any) -> Path:
        return self._host.registered_file_path_for(self._own(None, "file_path"), getattr(name, "name", name))

    # -- services ---------------------------------------------------------------------
    def advertise_service(
        self,
        name: str,
        *,
        agent_id: str | None = None,
        capabilities: Any = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> Any:
        return self._host.advertise_service(
            name, agent_id=self._own(agent_id, "advertise_service"), capabilities=capabilities,
            metadata=metadata, scope=scope, ttl=ttl,
        )  # fmt: skip

    def unadvertise_service(self, name: str, *, agent_id: str | None = None) -> Any:
        return self._host.unadvertise_service(name, agent_id=self._own(agent_id, "unadvertise_service"))

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> Any:
        return self._host.lookup_service(name, capability=capability, scope=scope)

    def lookup_services(
        self, name: str | None = None, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[Any]:
        return self._host.lookup_services(name, capability=capability, scope=scope)

    def advertise_contract(
        self,
        contract: Any,
        *,
        agent_id: str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        own = self._own(agent_id, "advertise_contract")
        return self._host.advertise_contract(contract, agent_id=own, scope=scope, ttl=ttl, metadata=metadata)

    def lookup_contract(self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL) -> Any:
        return self._host.lookup_contract(contract, operation=operation, scope=scope)

    def lookup_contracts(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[Any]:
        return self._host.lookup_contracts(contract, operation=operation, scope=scope)

    def require_contract(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> Any:
        return self._host.require_contract(contract, operation=operation, scope=scope)


PagletContext.host_side_class = HostSideContext

__all__ = ["HostSideContext"]

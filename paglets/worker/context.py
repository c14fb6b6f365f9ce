"""The PagletContext a running paglet sees, inside its worker process.

Anything that touches node-wide state is a host call: the worker asks over
its thread's back socket and the node (the only writer of its registries)
validates and performs. Calls to other nodes go straight out through a
:class:`~paglets.client.host_client.HostClient`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from paglets.client.artifacts import check_target, copy_file, step_timeout
from paglets.client.host_client import HostClient, create_request
from paglets.client.hosts import HostRef
from paglets.client.proxy import PagletProxy
from paglets.core.agent import ACTIVE, PagletContext
from paglets.core.artifacts import ArtifactRef
from paglets.core.context import MailSignal
from paglets.core.errors import ArtifactError, ForbiddenError, HostError
from paglets.core.files import PagletFileRef
from paglets.core.messages import FUTURE, Message, ReplySet
from paglets.core.resources import ResourceRegistry
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationPolicy
from paglets.persistence.storage import ManagedStorage, class_storage_dir
from paglets.services.access import ServiceAccess
from paglets.services.contracts import ServiceHandle
from paglets.services.records import (
    ServiceRecord,
    check_capabilities,
    check_metadata,
    check_scope,
    check_service_name,
    check_ttl,
)
from paglets.services.resident import DEFAULT_LEASE_TTL, ServiceLease, lease_for
from paglets.wire import codec
from paglets.wire.message_codec import encode_message
from paglets.worker.link import NodeLink
from paglets.worker.spec import WorkerSpec

CALL_FLOOR = 60.0  # seconds any artifact host call may take, plus its share per byte


class WorkerContext(PagletContext):
    """Node services for the one paglet in this worker process."""

    def __init__(
        self,
        spec: WorkerSpec,
        link: NodeLink,
        mail_arrived: MailSignal,
        give_back_batch: Callable[[], None],
    ):
        self._spec = spec
        self._link = link
        self._mail_arrived = mail_arrived
        self._give_back_batch = give_back_batch
        self.name = spec.node_name
        self.address = spec.node_address
        self.agent_id = spec.agent_id
        self._resources = ResourceRegistry()
        self._client: HostClient | None = None
        self._services = ServiceAccess(self.advertise_service, self._lookup, self._provider, self._lease)

    @property
    def client(self) -> HostClient:
        if self._client is None:
            self._client = HostClient(api_key=self._spec.api_key or "", curve=self._spec.curve)  # the node's key only
        return self._client

    def host_call(self, op: str, payload: tuple[bytes, ...] = (), timeout: float | None = None, **fields: Any) -> Any:
        """Ask the node (see :data:`paglets.wire.back.HCALL_OPS`); the decoded result."""
        data = self._link.call(op, fields, payload, timeout)
        return codec.decode(data) if data else None

    def _is_local(self, host_url: str | None) -> bool:
        return host_url is None or host_url.rstrip("/") == self.address

    # -- messages -------------------------------------------------------------
    def send(
        self,
        agent_id: str,
        message: Message | str,
        host_url: str | None = None,
        *,
        oneway: bool = False,
        timeout: float | None = None,
    ) -> Any:
        message = Message(message) if isinstance(message, str) else message
        if message.sender is None:
            message.sender = self.agent_id
        if not self._is_local(host_url):
            if oneway:
                return self.client.send_oneway(host_url, agent_id, message)
            return self.client.send(host_url, agent_id, message, timeout=timeout)
        return self.host_call(
            "send",
            (encode_message(message),),
            timeout,
            local=True,
            agent=agent_id,
            oneway=oneway,
            prio=message.priority,
            mid=message.message_id,
        )

    def multicast(self, kind: str, args: dict[str, Any] | None = None, *, include_self: bool = True) -> ReplySet:
        replies = ReplySet()
        for agent_id in self.host_call("list"):
            if agent_id == self.agent_id and not include_self:
                continue
            message = Message(kind, args or {}, sender=self.agent_id, message_type=FUTURE)
            replies.add_future_reply(self.client.send_future(self.address, agent_id, message))
        return replies

    def wait_message(self, timeout: float | None = None) -> bool:
        return self._mail_arrived.wait(timeout)

    def notify_message(self) -> None:
        self._mail_arrived.notify()

    def notify_all_messages(self) -> None:
        self._mail_arrived.notify_all()

    # -- paglets ----------------------------------------------------------------
    def get_proxy(self, agent_id: str, host_url: str | None = None) -> PagletProxy:
        return self.client.proxy(host_url or self.address, agent_id)

    def get_proxies(self, state: int = ACTIVE) -> list[PagletProxy]:
        return [self.client.proxy(self.address, agent_id) for agent_id in self.host_call("list", state=state)]

    def create_paglet(
        self, cls: Any, state: Any = None, *, init: Any = None, host_url: str | None = None
    ) -> PagletProxy:
        if not self._is_local(host_url):
            return self.client.create(host_url, cls, state, init)
        header, payload = create_request(cls, state, init, None)
        agent_id = self.host_call("create", payload, **header)
        return self.client.proxy(self.address, agent_id)

    def dispose(self, agent_id: str) -> None:
        self._leaving(agent_id)
        self.host_call("dispose", agent=agent_id)

    def _leaving(self, agent_id: str) -> None:
        """This paglet may leave this process: what its handler holds and has not run goes back first."""
        if agent_id == self.agent_id:
            self._give_back_batch()

    def dispatch(self, agent_id: str, target: Any) -> PagletProxy:
        """Move a paglet (this one, typically) to ``target``; returns its proxy there.

        Called from inside the moving paglet, this returns once it has arrived
        elsewhere; the handler's return value still reaches its caller, and
        this worker process exits after that.
        """
        self._leaving(agent_id)
        wire = self.host_call("dispatch", timeout=_move_timeout(target), agent=agent_id, target=_target_wire(target))
        return PagletProxy.from_wire(wire, self.client)

    def clone(self, agent_id: str, target: Any = None) -> PagletProxy:
        wire = self.host_call("clone", timeout=_move_timeout(target), agent=agent_id, target=_target_wire(target))
        return PagletProxy.from_wire(wire, self.client)

    def deactivate(
        self,
        agent_id: str,
        *,
        reason: str = "",
        policy: DeactivationPolicy | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> PagletProxy:
        """Park a paglet (this one, typically) on disk; returns its proxy.

        Called from inside the paglet, its handler's return value still
        reaches the caller; the worker process exits after that.
        """
        self._leaving(agent_id)
        wire = self.host_call(
            "deactivate",
            agent=agent_id,
            reason=reason,
            policy=policy.to_wire() if policy is not None else None,
            metadata=metadata or {},
        )
        return PagletProxy.from_wire(wire, self.client)

    def persistent_storage(self, quota_bytes: int | None = None) -> ManagedStorage:
        """The quota-limited directory this paglet's class shares on this node."""
        spec = self._spec
        quota = spec.storage_quota if quota_bytes is None else quota_bytes
        return ManagedStorage(class_storage_dir(Path(spec.storage_root), spec.class_name), quota)

    # -- node ---------------------------------------------------------------------
    def get_property(self, key: str, default: Any = None) -> Any:
        value = self.host_call("get_property", key=key)
        return default if value is None else value

    def set_property(self, key: str, value: Any) -> None:
        self.host_call("set_property", (codec.encode(value, root="property"),), key=key)

    def available_hosts(self, online_only: bool = True, include_self: bool = True) -> list[HostRef]:
        """The nodes of the mesh (by default those online), this one included unless ``include_self`` is False."""
        refs = [HostRef.from_wire(item) for item in self.host_call("hosts", online=online_only)]
        return refs if include_self else [ref for ref in refs if ref.url.rstrip("/") != self.address]

    def host_status(self, name_or_url: str) -> HostRef | None:
        wire = self.host_call("host_status", name=name_or_url)
        return None if wire is None else HostRef.from_wire(wire)

    def is_host_online(self, name_or_url: str) -> bool:
        status = self.host_status(name_or_url)
        return bool(status and status.online)

    def wait_for_host(self, name_or_url: str, timeout: float | None = 10.0, interval: float | None = None) -> HostRef:
        """Wait until the mesh sees that node online; HostError after ``timeout`` seconds (None: an hour).

        The node's mesh wakes the wait when gossip arrives, so ``interval`` (kept for code written
        against polling runtimes) changes nothing.
        """
        limit = 3600.0 if timeout is None else min(float(timeout), 3600.0)
        wire = self.host_call("wait_for_host", timeout=limit + 30, name=name_or_url, wait=limit)
        if wire is None:
            raise HostError(f"node {name_or_url!r} was not seen online by {self.name}'s mesh within {limit:g} s")
        return HostRef.from_wire(wire)

    # -- registered files -------------------------------------------------------
    def register_file(self, path: str | Path, *, name: str | None = None, mode: str = "copy") -> PagletFileRef:
        wire = self.host_call("register_file", path=str(Path(path).resolve()), name=name, mode=mode)
        return PagletFileRef.from_wire(wire)

    def registered_files(self) -> list[PagletFileRef]:
        return [PagletFileRef.from_wire(item) for item in self.host_call("registered_files")]

    def unregister_file(self, name: str | PagletFileRef) -> None:
        self.host_call("unregister_file", name=name.name if isinstance(name, PagletFileRef) else str(name))

    def file_path(self, name: str | PagletFileRef) -> Path:
        return Path(self.host_call("file_path", name=name.name if isinstance(name, PagletFileRef) else str(name)))

    # -- services: records live in the node (host calls); providers are called directly ----------
    def advertise_service(
        self,
        name: str,
        *,
        agent_id: str | None = None,
        capabilities: Any = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> ServiceRecord:
        """Checked here first (ValueError naming the field), then recorded by the node for this paglet."""
        self._own(agent_id, "advertise")
        fields = {
            "name": check_service_name(name),
            "caps": list(check_capabilities(capabilities)),
            "meta": check_metadata(metadata),
            "scope": check_scope(scope).value,
            "ttl": check_ttl(ttl),
        }
        return ServiceRecord.from_wire(self.host_call("advertise", **fields))

    def unadvertise_service(self, name: str, *, agent_id: str | None = None) -> bool:
        self._own(agent_id, "unadvertise")
        return bool(self.host_call("unadvertise", name=check_service_name(name)))

    def lookup_services(
        self, name: str | None = None, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[ServiceRecord]:
        return self._services.lookup_services(name, capability, scope)

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> Any:
        return self._services.lookup_service(name, capability, scope)

    def advertise_contract(
        self,
        contract: Any,
        *,
        agent_id: str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ServiceRecord:
        return self._services.advertise_contract(contract, scope=scope, ttl=ttl, metadata=metadata, agent_id=agent_id)

    def lookup_contracts(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[ServiceHandle]:
        return self._services.lookup_contracts(contract, operation, scope)

    def lookup_contract(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> ServiceHandle | None:
        return self._services.lookup_contract(contract, operation, scope)

    def require_contract(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> ServiceHandle:
        return self._services.require_contract(contract, operation, scope)

    def lease_contract(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float = DEFAULT_LEASE_TTL,
    ) -> ServiceLease:  # fmt: skip
        return self._services.lease_contract(contract, operation, scope, ttl)

    def _lease(self, handle: ServiceHandle, ttl: float) -> ServiceLease:
        """Leases of this node's services are host calls; another node's go to it directly."""
        host_url = handle.record.host_url
        if self._is_local(host_url):
            return lease_for(
                handle, ttl,
                lambda record, lifetime: self.host_call(
                    "lease", agent=record.agent_id, service=record.name, ttl=lifetime),
                lambda lease_id: self.host_call("unlease", lease=lease_id),
            )  # fmt: skip
        return lease_for(
            handle, ttl,
            lambda record, lifetime: self.client.lease(host_url, record.agent_id, record.name, lifetime),
            lambda lease_id: self.client.unlease(host_url, lease_id),
        )  # fmt: skip

    def _lookup(self, name: str | None, capability: str | None, scope: ServiceScope) -> list[ServiceRecord]:
        if name is not None:
            check_service_name(name)
        fields = {"name": name, "cap": capability, "scope": scope.value}
        timeout = None if scope is ServiceScope.LOCAL else 30.0  # the node's fan-out has its own, shorter deadline
        return [ServiceRecord.from_wire(wire) for wire in self.host_call("lookup", timeout=timeout, **fields)]

    def _provider(self, record: ServiceRecord) -> PagletProxy:
        return self.get_proxy(record.agent_id, record.host_url)

    def _own(self, agent_id: str | None, what: str) -> None:
        if agent_id is not None and agent_id != self.agent_id:
            raise ForbiddenError(f"paglet {self.agent_id} may {what} services for itself only, not for {agent_id}")

    # -- artifacts --------------------------------------------------------------
    def upload_artifact(self, path: str | Path, *, host_url: str | None = None, name: str | None = None) -> ArtifactRef:
        """Store a file on this node (or on ``host_url``); owned by this paglet (it goes when it is disposed there)."""
        source = Path(path).expanduser().resolve()
        if not self._is_local(host_url):
            return self.client.upload_artifact(host_url, source, name=name, owner=self.agent_id)
        size = source.stat().st_size if source.is_file() else 0
        wire = self.host_call("artifact_put", timeout=step_timeout(2 * size, CALL_FLOOR), path=str(source), name=name)
        return ArtifactRef.from_wire(wire)

    def download_artifact(self, ref: ArtifactRef, target_path: str | Path) -> Path:
        """Write artifact ``ref`` to ``target_path``, checked. One on another node is fetched by this node
        first (node to node; kept here as this paglet's until it is disposed), then copied."""
        check_target(ref, target_path)  # a bad target fails before anything is fetched
        if not self._is_local(ref.host):
            timeout = step_timeout(ref.size, CALL_FLOOR)
            ArtifactRef.from_wire(self.host_call("artifact_fetch", timeout=timeout, sha=ref.id, source=ref.host))
        found = self.host_call("artifact_path", sha=ref.id)
        here = ArtifactRef.from_wire(found["artifact"])
        if here.size != ref.size:
            raise ArtifactError(f"artifact {ref.id[:12]}: the ref says {ref.size} bytes, the node holds {here.size}")
        return copy_file(Path(found["path"]), ref, target_path)

    def delete_artifact(self, ref: ArtifactRef) -> None:
        if self._is_local(ref.host):
            self.host_call("artifact_delete", sha=ref.id)
        else:
            self.client.delete_artifact(ref)

    # -- per-paglet resources ---------------------------------------------------
    def resources(self) -> ResourceRegistry:
        return self._resources

    def work_dir(self, create: bool = True) -> Path:
        """This paglet's scratch directory on this node (wiped when it leaves); made unless ``create`` is False."""
        path = Path(self._spec.work_dir)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path


def _target_wire(target: Any) -> Any:
    return target.to_wire() if hasattr(target, "to_wire") else target


def _move_timeout(target: Any) -> float:
    """How long to wait for a move: the ticket's own limit, plus slack for the node's bookkeeping."""
    return float(getattr(target, "timeout", 10.0)) + 30.0


__all__ = ["WorkerContext"]

"""What a running paglet may ask of its node: :class:`PagletContext`, and the detached one of a paglet
built without a node.

The runtime supplies the implementation (the worker's context; the node's
host-side one for ``PagletContext(host)``); every method may be called from
handlers, ``run()``, hooks or threads the paglet starts. A paglet built
directly (``Counter()``, in a unit test) gets a :class:`DetachedContext`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from paglets.core.errors import HostError
from paglets.core.host_view import HostView
from paglets.core.resources import ResourceRegistry
from paglets.core.runtime_values import ServiceScope

if TYPE_CHECKING:
    from paglets.core.messages import Message, ReplySet

ACTIVE = 0x1
INACTIVE = 0x2


class MailSignal:
    """A paglet's mail signal: ``wait_message`` waits on it, a message taken or a ``notify_*`` wakes it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()

    def wait(self, timeout: float | None = None) -> bool:
        with self._condition:
            return self._condition.wait(timeout)

    def notify(self) -> None:
        with self._condition:
            self._condition.notify()

    def notify_all(self) -> None:
        with self._condition:
            self._condition.notify_all()


class PagletContext:
    """What a running paglet may ask of the node it runs on.

    The runtime supplies the implementation; every method may be called from
    handlers, ``run()``, hooks or threads the paglet starts.
    """

    name: str
    address: str
    agent_id: str

    #: What ``PagletContext(host)`` builds: the node's host-side context (set by ``paglets.node.host_context``).
    host_side_class: ClassVar[type[PagletContext] | None] = None

    def __new__(cls, *args: Any, **kwargs: Any) -> PagletContext:
        """``PagletContext(host)`` (host-side code, in the node's process) gives a context that acts through
        that Host; subclasses (the worker's context) are built as themselves."""
        host = args[0] if args else kwargs.get("host")
        if cls is PagletContext and host is not None:
            if PagletContext.host_side_class is None:
                raise HostError("PagletContext(host) needs the node package: import paglets.runtime.host first")
            return super().__new__(PagletContext.host_side_class)
        return super().__new__(cls)

    @property
    def host(self) -> Any:
        """The host facade a paglet may use: node name and address, proxies, properties, the mesh."""
        return HostView(self)

    def _unsupported(self, what: str) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not support {what}")

    def get_proxy(self, agent_id: str, host_url: str | None = None) -> Any:
        return self._unsupported("get_proxy")

    def get_proxies(self, state: int = ACTIVE) -> list[Any]:
        return self._unsupported("get_proxies")

    def get_property(self, key: str, default: Any = None) -> Any:
        return self._unsupported("get_property")

    def set_property(self, key: str, value: Any) -> None:
        self._unsupported("set_property")

    def create_paglet(
        self,
        cls: type | str,  # a Paglet subclass, or its 'module:Class' name
        state: Any = None,  # an instance of the class's State
        *,
        init: Any = None,
        host_url: str | None = None,
    ) -> Any:
        return self._unsupported("create_paglet")

    def send(self, agent_id: str, message: Message | str, host_url: str | None = None, **kwargs: Any) -> Any:
        return self._unsupported("send")

    def multicast(self, kind: str, args: dict[str, Any] | None = None, *, include_self: bool = True) -> ReplySet:
        return self._unsupported("multicast")

    def dispatch(self, agent_id: str, target: Any) -> Any:
        return self._unsupported("dispatch")

    def clone(self, agent_id: str, target: Any = None) -> Any:
        return self._unsupported("clone")

    def deactivate(self, agent_id: str, **kwargs: Any) -> Any:
        return self._unsupported("deactivate")

    def dispose(self, agent_id: str) -> None:
        self._unsupported("dispose")

    def available_hosts(self, online_only: bool = True, include_self: bool = True) -> list[Any]:
        return self._unsupported("available_hosts")

    def host_status(self, name_or_url: str) -> Any:
        return self._unsupported("host_status")

    def is_host_online(self, name_or_url: str) -> bool:
        return self._unsupported("is_host_online")

    def wait_for_host(self, name_or_url: str, timeout: float | None = 10.0, interval: float | None = None) -> Any:
        """The node's HostRef once the mesh sees it online; HostError after ``timeout`` seconds.

        ``interval`` is accepted for code written against polling runtimes; the wait
        here is woken by the mesh itself, so it polls nothing.
        """
        return self._unsupported("wait_for_host")

    def dispatch_to(self, agent_id: str, name_or_url: str) -> Any:
        return self.dispatch(agent_id, name_or_url)

    def clone_to(self, agent_id: str, name_or_url: str) -> Any:
        return self.clone(agent_id, name_or_url)

    def resources(self) -> ResourceRegistry:
        return self._unsupported("resources")

    def work_dir(self, create: bool = True) -> Path:
        return self._unsupported("work_dir")

    def persistent_storage(self, quota_bytes: int | None = None) -> Any:
        return self._unsupported("persistent_storage")

    def register_file(self, path: str | Path, *, name: str | None = None, mode: str = "copy") -> Any:
        return self._unsupported("register_file")

    def registered_files(self) -> list[Any]:
        return self._unsupported("registered_files")

    def unregister_file(self, name: Any) -> None:
        self._unsupported("unregister_file")

    def file_path(self, name: Any) -> Path:
        return self._unsupported("file_path")

    def upload_artifact(self, path: str | Path, *, host_url: str | None = None, name: str | None = None) -> Any:
        return self._unsupported("upload_artifact")

    def download_artifact(self, ref: Any, target_path: str | Path) -> Path:
        return self._unsupported("download_artifact")

    def delete_artifact(self, ref: Any) -> None:
        self._unsupported("delete_artifact")

    # -- services (see paglets.services; ``agent_id`` None: the paglet of this context) -------
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
        """Advertise ``name`` for the paglet; returns its ServiceRecord (re-advertising replaces it)."""
        return self._unsupported("advertise_service")

    def unadvertise_service(self, name: str, *, agent_id: str | None = None) -> Any:
        return self._unsupported("unadvertise_service")

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> Any:
        """A PagletProxyRef to a provider of ``name`` (this node's first), or None."""
        return self._unsupported("lookup_service")

    def lookup_services(
        self, name: str | None = None, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[Any]:
        """The ServiceRecords of ``name`` (None: every service), this node's first."""
        return self._unsupported("lookup_services")

    def advertise_contract(
        self,
        contract: Any,
        *,
        agent_id: str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        return self._unsupported("advertise_contract")

    def lookup_contract(self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL) -> Any:
        """A ServiceHandle on a provider of ``contract`` (and ``operation``), or None."""
        return self._unsupported("lookup_contract")

    def lookup_contracts(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[Any]:
        return self._unsupported("lookup_contracts")

    def require_contract(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> Any:
        """Like :meth:`lookup_contract`, but ServiceNotFoundError instead of None."""
        return self._unsupported("require_contract")

    def lease_contract(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL, ttl: float = 60.0
    ) -> Any:
        return self._unsupported("lease_contract")

    def wait_message(self, timeout: float | None = None) -> bool:
        return self._unsupported("wait_message")

    def notify_message(self) -> None:
        self._unsupported("notify_message")

    def notify_all_messages(self) -> None:
        self._unsupported("notify_all_messages")


class DetachedContext(PagletContext):
    """The context of a paglet built directly, with no node (unit tests of its logic).

    Its resources and mail signals are local; everything else needs a node and
    raises HostError naming the call, the paglet and what is missing.
    """

    def __init__(self, agent_id: str, paglet_class: type) -> None:
        self.agent_id = agent_id
        self._what = f"{paglet_class.__module__}:{paglet_class.__qualname__} {agent_id}"
        self._resources = ResourceRegistry()
        self._mail = MailSignal()

    def __getattr__(self, name: str) -> Any:
        if name in ("name", "address"):
            self._unsupported(name)
        raise AttributeError(name)

    @property
    def host(self) -> Any:
        return self._unsupported("host")

    def _unsupported(self, what: str) -> Any:
        raise HostError(
            f"{what} needs a node: paglet {self._what} was built directly, and no Host runs it; "
            f"create it on a Host (host.create(...)) to use {what}"
        )

    def resources(self) -> ResourceRegistry:
        return self._resources

    def wait_message(self, timeout: float | None = None) -> bool:
        return self._mail.wait(timeout)

    def notify_message(self) -> None:
        self._mail.notify()

    def notify_all_messages(self) -> None:
        self._mail.notify_all()


__all__ = ["ACTIVE", "INACTIVE", "DetachedContext", "MailSignal", "PagletContext"]

"""The programming model: a paglet is a class with dataclass state and hooks.

A paglet author subclasses :class:`Paglet`, sets ``State`` to a ``@dataclass``
derived from :class:`PagletState`, and overrides the hooks and
``handle_message``. Only the state moves between nodes; the class must be
importable by its qualified name wherever the paglet runs.

Inside a worker process the runtime builds the instance, attaches a
:class:`PagletContext` (what the running paglet can ask of its node) and calls
the hooks. Up to ``MAILBOX_WORKERS`` handlers run at once, so state shared
between handlers is guarded with :meth:`Paglet.locked` or ``@state_locked``.
A handler may be given up to ``MAILBOX_BATCH`` queued oneway messages at once
(it runs them in order); set it to 1 for strictly one message per handler, so
that a later high-priority message can overtake everything still queued.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_origin

from paglets.core.context import ACTIVE, INACTIVE, DetachedContext, PagletContext
from paglets.core.errors import SerializationError
from paglets.core.resources import ResourceRegistry
from paglets.core.runtime_values import ServiceScope

if TYPE_CHECKING:
    from paglets.core.events import (
        CloneEvent,
        CreationEvent,
        MobilityEvent,
        PersistencyEvent,
    )
    from paglets.core.messages import Message, ReplySet


class _NotHandled:
    """Sentinel type: ``handle_message`` returns it to refuse a message."""

    _instance: _NotHandled | None = None

    def __new__(cls) -> _NotHandled:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_HANDLED"

    def __reduce__(self) -> str:
        return "NOT_HANDLED"


NOT_HANDLED = _NotHandled()


@dataclass
class PagletState:
    """Marker base for a paglet's ``@dataclass`` state. Only state moves."""


StateT = TypeVar("StateT", bound=PagletState)

# Annotations that declare no instance field: they need no @dataclass to be kept.
_NOT_FIELDS = re.compile(r"^\s*(?:[\w.]+\.)?(?:ClassVar|InitVar|KW_ONLY)\b")


def check_state_class(cls: type) -> None:
    """Refuse a state class whose declared fields would not travel with the paglet.

    Only dataclass fields are encoded when a paglet moves or parks. A subclass
    of :class:`PagletState` that declares fields without ``@dataclass`` keeps
    them as class attributes: the paglet would work until its first move or
    park, then silently start over from the defaults. Raises
    :class:`~paglets.core.errors.SerializationError` naming the class (the
    one in the hierarchy that lacks the decorator) and its lost fields.
    """
    kept = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for klass in cls.__mro__:
        declared = inspect.get_annotations(klass)  # its own, not inherited ones
        lost = [name for name, hint in declared.items() if name not in kept and not _declares_no_field(hint)]
        if lost:
            where = "" if klass is cls else f" (a base of {cls.__module__}:{cls.__qualname__})"
            raise SerializationError(
                f"state class {klass.__module__}:{klass.__qualname__}{where} declares field(s) "
                f"({', '.join(lost)}) that are not dataclass fields: they would be lost on the paglet's "
                f"first move or park; add @dataclass to {klass.__qualname__}"
            )
    if not dataclasses.is_dataclass(cls):
        raise SerializationError(
            f"state class {cls.__module__}:{cls.__qualname__} is not a dataclass, so none of it would travel; "
            f"add @dataclass to {cls.__qualname__} (and derive it from PagletState)"
        )


def _declares_no_field(hint: Any) -> bool:
    if isinstance(hint, str):
        return _NOT_FIELDS.match(hint) is not None
    special = (ClassVar, dataclasses.InitVar, dataclasses.KW_ONLY)
    return hint in special or get_origin(hint) is ClassVar or isinstance(hint, dataclasses.InitVar)


class Paglet(Generic[StateT]):
    """Base class of every paglet. Subclasses set ``State``.

    Attributes set by the runtime before any hook runs: ``agent_id``,
    ``state``, ``context`` and ``resources``.
    """

    State: ClassVar[type[PagletState]] = PagletState
    MAILBOX_WORKERS: ClassVar[int] = 4
    #: Most queued oneway messages one handler is given at once (1: strictly one message per handler).
    MAILBOX_BATCH: ClassVar[int] = 32
    #: Seconds between checkpoints of this class's paglets (None: the node's setting; 0: never).
    CHECKPOINT_INTERVAL: ClassVar[float | None] = None
    #: Seconds without a message (and with ``run()`` done) after which the node parks the paglet, to wake
    #: on its next message (None: the node's ``idle_park`` option, by default never; 0: never).
    IDLE_TIMEOUT: ClassVar[float | None] = None
    #: A ``paglets.services.resident.ResidentServiceSpec``: how a node whose configuration names this
    #: class runs it as a resident service (None: the class declares none). Read by the node only.
    RESIDENT_SERVICE: ClassVar[Any] = None
    #: What a ``run()`` that raises does: "log" (the paglet lives on) or "crash" (see docs/compatibility.md).
    RUN_FAILURE: ClassVar[str] = "log"

    agent_id: str
    state: StateT
    context: PagletContext

    def __init__(self, state: StateT | None = None, agent_id: str | None = None) -> None:
        """Built by the runtime with no arguments; built directly (unit tests of a paglet's logic) it has
        ``state`` (default: the state class's default instance), an ``agent_id`` and a context without a
        node: handlers and state helpers work, anything that needs a node raises HostError saying so."""
        self._state_lock = threading.RLock()
        self._state_changed = threading.Condition(self._state_lock)
        self.agent_id = agent_id or uuid.uuid4().hex
        if state is not None:
            self.state = state
        else:
            try:
                self.state = self.State()  # type: ignore[assignment]
            except TypeError:
                pass  # fields without defaults: the runtime (or the test) supplies the state
        self.context = DetachedContext(self.agent_id, type(self))

    @classmethod
    def state_class(cls) -> type[PagletState]:
        """The dataclass this paglet's state is an instance of."""
        return cls.State

    # -- hooks (no-ops by default) ------------------------------------------
    def on_creation(self, event: CreationEvent) -> None:
        """Runs once, in the first node, before ``run()``."""

    def on_dispatching(self, event: MobilityEvent) -> None:
        """Runs on the source node before the paglet leaves."""

    def on_arrival(self, event: MobilityEvent) -> None:
        """Runs on the target node after the paglet lands."""

    def on_reverting(self, event: MobilityEvent) -> None:
        """Runs on the remote node before a retract pulls the paglet back."""

    def on_cloning(self, event: CloneEvent) -> None:
        """Runs in the original before a copy is made."""

    def on_clone(self, event: CloneEvent) -> None:
        """Runs in the new copy."""

    def on_cloned(self, event: CloneEvent) -> None:
        """Runs in the original after the copy exists."""

    def on_deactivating(self, event: PersistencyEvent) -> None:
        """Runs before the paglet is parked on disk."""

    def on_activation(self, event: PersistencyEvent) -> None:
        """Runs after the paglet wakes from disk."""

    def on_disposing(self, event: PersistencyEvent) -> None:
        """Runs before the paglet is disposed of."""

    def deactivation_policy(self, request: Any) -> Any:
        """Return the DeactivationPolicy to park with; None keeps the request's."""
        return None

    def run(self) -> None:
        """Called after creation, arrival or activation, in its own thread."""

    def handle_message(self, message: Message) -> Any:
        """Answer a message; return ``self.not_handled()`` to refuse it."""
        return NOT_HANDLED

    # -- state helpers -------------------------------------------------------
    @property
    def resources(self) -> ResourceRegistry:
        return self.context.resources()

    def locked(self) -> threading.RLock:
        """The lock guarding ``state`` (re-entrant); use as ``with self.locked():``."""
        return self._state_lock

    @contextmanager
    def locked_state(self) -> Iterator[StateT]:
        with self._state_lock:
            yield self.state

    def wait_state(self, predicate: Callable[[StateT], bool], timeout: float | None = None) -> bool:
        """Wait until ``predicate(state)`` holds; False on timeout."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: predicate(self.state), timeout)

    def notify_state_changed(self) -> None:
        with self._state_changed:
            self._state_changed.notify()

    def notify_all_state_changed(self) -> None:
        with self._state_changed:
            self._state_changed.notify_all()

    def not_handled(self) -> _NotHandled:
        return NOT_HANDLED

    # -- talking to the node -------------------------------------------------
    def send(self, agent_id: str, message: Message | str, host_url: str | None = None, **kwargs: Any) -> Any:
        return self.context.send(agent_id, message, host_url, **kwargs)

    def multicast(self, kind: str, args: dict[str, Any] | None = None, include_self: bool = True) -> ReplySet:
        return self.context.multicast(kind, args, include_self=include_self)

    def wait_message(self, timeout: float | None = None) -> bool:
        return self.context.wait_message(timeout)

    def notify_message(self) -> None:
        self.context.notify_message()

    def notify_all_messages(self) -> None:
        self.context.notify_all_messages()

    def dispatch(self, target: Any) -> Any:
        return self.context.dispatch(self.agent_id, target)

    def clone(self, target: Any = None) -> Any:
        return self.context.clone(self.agent_id, target)

    def dispatch_to(self, name_or_url: str) -> Any:
        return self.context.dispatch_to(self.agent_id, name_or_url)

    def clone_to(self, name_or_url: str) -> Any:
        return self.context.clone_to(self.agent_id, name_or_url)

    def deactivate(self, reason: str = "", policy: Any = None, metadata: dict[str, Any] | None = None) -> Any:
        return self.context.deactivate(self.agent_id, reason=reason, policy=policy, metadata=metadata)

    # -- services (see paglets.services) ------------------------------------------------
    def advertise_service(
        self,
        name: str,
        *,
        capabilities: Any = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> Any:
        """Offer ``name`` (LOCAL: to this node; MESH: to the whole mesh) until withdrawn, ``ttl`` runs out,
        or this paglet is disposed, moves away or crashes. Returns the ServiceRecord."""
        return self.context.advertise_service(
            name, agent_id=self.agent_id, capabilities=capabilities, metadata=metadata, scope=scope, ttl=ttl
        )

    def unadvertise_service(self, name: str) -> Any:
        """Withdraw this paglet's record of ``name``; whether there was one."""
        return self.context.unadvertise_service(name, agent_id=self.agent_id)

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> Any:
        """A PagletProxyRef to a provider of ``name`` (this node's first), or None."""
        return self.context.lookup_service(name, capability=capability, scope=scope)

    def lookup_services(
        self, name: str | None = None, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[Any]:
        """The ServiceRecords of ``name`` (None: every service), this node's first."""
        return self.context.lookup_services(name, capability=capability, scope=scope)

    def advertise_contract(
        self,
        contract: Any,
        *,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        """Offer a ServiceContract (answer it with ``contract.route`` in ``handle_message``)."""
        return self.context.advertise_contract(
            contract, agent_id=self.agent_id, scope=scope, ttl=ttl, metadata=metadata
        )

    def lookup_contract(self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL) -> Any:
        """A ServiceHandle on a provider of ``contract`` (and ``operation``), or None."""
        return self.context.lookup_contract(contract, operation=operation, scope=scope)

    def lookup_contracts(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> list[Any]:
        return self.context.lookup_contracts(contract, operation=operation, scope=scope)

    def require_contract(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> Any:
        """A ServiceHandle on a provider of ``contract``; ServiceNotFoundError if there is none."""
        return self.context.require_contract(contract, operation=operation, scope=scope)

    def lease_contract(
        self, contract: Any, *, operation: Any = None, scope: ServiceScope = ServiceScope.LOCAL, ttl: float = 60.0
    ) -> Any:
        """A ServiceLease on a resident service offering ``contract``: it keeps the service running for ``ttl``
        seconds (or until released) and yields its ServiceHandle as a context manager; ServiceNotFoundError
        if no resident service offers it."""
        return self.context.lease_contract(contract, operation=operation, scope=scope, ttl=ttl)

    def work_dir(self, create: bool = True) -> Path:
        return self.context.work_dir(create)

    def persistent_storage(self, quota_bytes: int | None = None) -> Any:
        return self.context.persistent_storage(quota_bytes)

    def register_file(self, path: str | Path, name: str | None = None, mode: str = "copy") -> Any:
        return self.context.register_file(path, name=name, mode=mode)

    def registered_files(self) -> list[Any]:
        return self.context.registered_files()

    def unregister_file(self, name: Any) -> None:
        self.context.unregister_file(name)

    def file_path(self, name: Any) -> Path:
        return self.context.file_path(name)

    # -- artifacts: files exchanged explicitly (paglets.core.artifacts) ------------------------
    def upload_artifact(self, path: str | Path, *, host_url: str | None = None, name: str | None = None) -> Any:
        """Store the file at ``path`` on this node (or on node ``host_url``); returns its ``ArtifactRef``.

        The artifact is owned by this paglet: it goes when the paglet is disposed on that node.
        """
        return self.context.upload_artifact(path, host_url=host_url, name=name)

    def download_artifact(self, ref: Any, target_path: str | Path) -> Path:
        """Write artifact ``ref`` (on any node) to ``target_path``, size and sha256 checked."""
        return self.context.download_artifact(ref, target_path)

    def delete_artifact(self, ref: Any) -> None:
        """Remove artifact ``ref`` from its node."""
        self.context.delete_artifact(ref)


F = TypeVar("F", bound=Callable[..., Any])


def state_locked(method: F) -> F:
    """Run a paglet method with the paglet's state lock held."""

    @functools.wraps(method)
    def wrapper(self: Paglet[Any], *args: Any, **kwargs: Any) -> Any:
        with self._state_lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


__all__ = [
    "ACTIVE",
    "INACTIVE",
    "NOT_HANDLED",
    "DetachedContext",
    "Paglet",
    "PagletContext",
    "PagletState",
    "check_state_class",
    "state_locked",
]

"""Resident services: paglets the node itself runs from its configuration, and leases that keep them up.

A *resident service* is a paglet class the node runs as a singleton under a
stable agent id: declared by the node's configuration (``[[resident_services]]``
in its TOML file, ``Host(resident_services=[...])``), with the class's own
``RESIDENT_SERVICE = ResidentServiceSpec(...)`` giving the defaults. The node
advertises its contract (a pinned record) before it runs; a ``lazy`` one
starts on its first message or lease, an ``eager`` one with the node; after
``idle_timeout`` seconds with no message and no live lease the node parks it,
its record stays, and the next call wakes it.

* :class:`ResidentServiceSpec` — how the node runs one resident service.
* :class:`ServiceLease` — a TTL lease on a resident service: while it lives
  the node does not idle-park the service. A context manager yielding the
  service's :class:`~paglets.services.contracts.ServiceHandle`.

How configuration tables become specs is :mod:`paglets.services.resident_config`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from paglets.core.errors import PagletError, SerializationError
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.contracts import ServiceContract, ServiceHandle
from paglets.services.records import check_service_name
from paglets.wire.protocol import AGENT_ID_PATTERN

log = logging.getLogger("paglets.services")

DEFAULT_LEASE_TTL = 60.0  # seconds
MAX_LEASE_TTL = 24 * 3600.0  # a lease is renewed by taking another, not by asking for a year
MAX_IDLE_TIMEOUT = 365 * 24 * 3600.0
MAX_LEASE_ID = 64  # characters of a lease id on the wire
DEFAULT_AGENT_PREFIX = "service."
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ResidentServiceSpec:
    """How a node runs one resident service.

    ``contract``: the ServiceContract it offers (or a plain service name),
    advertised on its behalf while it is parked or not started yet.
    ``agent_id``: its stable id (None: derived from the class,
    ``service.<module>.<Class>``). ``singleton``: the class may be declared
    only once per node (False: several declarations, each with its own
    agent id). ``idle_timeout``: seconds with no message and no live lease
    before the node parks it (0: never). ``state``: its initial state, as
    field values (or a state dataclass instance). ``paglet_class``:
    ``"module:Class"`` (set by the node for a class's own declaration).
    """

    contract: ServiceContract | str
    scope: ServiceScope = ServiceScope.LOCAL
    lifecycle: ResidentLifecycle = ResidentLifecycle.LAZY
    agent_id: str | None = None
    singleton: bool = True
    idle_timeout: float = 30.0
    state: Any = field(default_factory=dict)
    paglet_class: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.contract, ServiceContract):
            try:
                check_service_name(self.contract)
            except ValueError as exc:
                raise ValueError(f"ResidentServiceSpec.contract must be a ServiceContract or a name: {exc}") from None
        object.__setattr__(self, "scope", _enum(ServiceScope, self.scope, "scope"))
        object.__setattr__(self, "lifecycle", _enum(ResidentLifecycle, self.lifecycle, "lifecycle"))
        agent_id = self.agent_id
        if agent_id is not None and (not isinstance(agent_id, str) or not AGENT_ID_PATTERN.match(agent_id)):
            raise ValueError(
                f"ResidentServiceSpec.agent_id {self.agent_id!r:.80} is not an agent id: 1-128 of A-Z a-z 0-9 . _ -"
            )
        if not isinstance(self.singleton, bool):
            raise ValueError(f"ResidentServiceSpec.singleton must be true or false, got {self.singleton!r:.40}")
        idle = check_idle_timeout(self.idle_timeout, "ResidentServiceSpec.idle_timeout")
        object.__setattr__(self, "idle_timeout", idle)
        if not isinstance(self.state, dict) and not hasattr(self.state, "__dataclass_fields__"):
            raise ValueError(
                f"ResidentServiceSpec.state must be a table of field values or a state dataclass, "
                f"got {type(self.state).__name__}"
            )
        if self.paglet_class is not None:
            check_class_path(self.paglet_class, "ResidentServiceSpec.paglet_class")

    @property
    def service_name(self) -> str:
        """The name its record carries: the contract's name (or the plain service name)."""
        return self.contract.name if isinstance(self.contract, ServiceContract) else self.contract

    @property
    def resolved_agent_id(self) -> str:
        """Its agent id: the one given, else the one derived from its class."""
        if self.agent_id is not None:
            return self.agent_id
        if self.paglet_class is None:
            raise ValueError("a ResidentServiceSpec without a paglet_class needs an agent_id")
        return default_agent_id(self.paglet_class)

    @property
    def idles(self) -> bool:
        return self.idle_timeout > 0


SPEC_FIELDS = tuple(f.name for f in fields(ResidentServiceSpec))


def _enum(kind: type, value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = " or ".join(repr(member.value) for member in kind)
        raise ValueError(f"ResidentServiceSpec.{name} must be {choices}, got {value!r:.40}") from None


def check_idle_timeout(value: Any, what: str) -> float:
    """Seconds (a finite number >= 0, at most a year); 0 means never. ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number of seconds, got {value!r:.40}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{what} must not be negative (0 means never), got {value!r}")
    if value > MAX_IDLE_TIMEOUT:
        raise ValueError(f"{what} is {value:g} s; the limit is {MAX_IDLE_TIMEOUT:g} s (use 0 for never)")
    return float(value)


def check_class_path(value: Any, what: str) -> str:
    """A ``"package.module:Class"`` path (nothing imported); ValueError naming ``what``."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"{what} must be a class path like 'package.module:ClassName', got {value!r:.80}")
    module, _, qualname = value.partition(":")
    parts = [*module.split("."), *qualname.split(".")]
    if not all(part.isidentifier() and not part.startswith("__") for part in parts) or module == "__main__":
        raise ValueError(f"{what} {value!r:.80} is not an importable class path ('package.module:ClassName')")
    return value


def default_agent_id(class_path: str) -> str:
    """The stable agent id of a class's resident service: ``service.<module>.<Class>``.

    Characters an agent id may not hold become ``-``; an id that would be too
    long keeps its start and ends with a hash of the whole path.
    """
    text = DEFAULT_AGENT_PREFIX + _NOT_ID_CHARS.sub("-", class_path.replace(":", "."))
    if len(text) <= 128:
        return text
    digest = hashlib.sha256(class_path.encode()).hexdigest()[:16]
    return f"{text[:111]}-{digest}"


def check_lease_ttl(ttl: Any) -> float:
    """A lease's TTL: seconds in (0, MAX_LEASE_TTL]; ValueError otherwise."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or math.isnan(ttl) or not 0 < ttl <= MAX_LEASE_TTL:
        raise ValueError(f"a lease ttl must be a number of seconds in (0, {MAX_LEASE_TTL:g}], got {ttl!r:.40}")
    return float(ttl)


def check_lease_id(lease_id: Any) -> str:
    if not isinstance(lease_id, str) or not lease_id or len(lease_id) > MAX_LEASE_ID or not lease_id.isalnum():
        raise ValueError(f"{lease_id!r:.80} is not a lease id (at most {MAX_LEASE_ID} letters and digits)")
    return lease_id


@dataclass(frozen=True)
class LeaseGrant:
    """What a node answers to a lease request (checked: it may come from another node)."""

    lease_id: str
    agent_id: str
    service_name: str
    expires_at: float

    @classmethod
    def from_wire(cls, payload: Any) -> LeaseGrant:
        if not isinstance(payload, Mapping):
            raise SerializationError(f"a lease grant must be a map, got {type(payload).__name__}")
        try:
            agent_id = payload.get("agent_id")
            if not isinstance(agent_id, str) or not AGENT_ID_PATTERN.match(agent_id):
                raise ValueError(f"agent_id {agent_id!r:.80} is not an agent id")
            expires_at = payload.get("expires_at")
            if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)) or math.isnan(expires_at):
                raise ValueError(f"expires_at must be a UNIX time, got {expires_at!r:.40}")
            return cls(
                check_lease_id(payload.get("lease_id")), agent_id, check_service_name(payload.get("service_name")),
                float(expires_at),
            )  # fmt: skip
        except ValueError as exc:
            raise SerializationError(f"lease grant: {exc}") from None


class ServiceLease:
    """A TTL lease on a resident service: while it lives, the node keeps the service running.

    ``with lease as handle: handle.call(...)`` releases it on the way out;
    :meth:`release` is idempotent, and a lease nobody releases ends at
    ``expires_at`` by itself. ``lease_id`` names it to the node that granted it.
    """

    def __init__(self, handle: ServiceHandle, grant: LeaseGrant, release: Callable[[str], Any]):
        self.handle = handle
        self.lease_id = grant.lease_id
        self.expires_at = grant.expires_at
        self._release = release
        self._released = False
        self._lock = threading.Lock()

    @property
    def record(self) -> Any:
        return self.handle.record

    @property
    def released(self) -> bool:
        return self._released

    @property
    def expired(self) -> bool:
        """True once released or past ``expires_at``: it keeps nothing alive any more."""
        return self._released or time.time() >= self.expires_at

    def release(self) -> None:
        """Give the lease back (the second and later calls do nothing). A node that cannot be
        reached is logged, not raised: the lease then ends at ``expires_at`` by itself."""
        with self._lock:
            if self._released:
                return
            self._released = True
        if time.time() >= self.expires_at:
            return  # the node has let it go already
        try:
            self._release(self.lease_id)
        except PagletError as exc:
            log.info("lease %s on %s: release failed (%s); it ends at its expiry", self.lease_id, self.handle, exc)

    def __enter__(self) -> ServiceHandle:
        return self.handle

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else f"until {self.expires_at:.0f}"
        return f"ServiceLease({self.lease_id} on {self.handle!r}, {state})"


def lease_for(
    handle: ServiceHandle,
    ttl: float,
    acquire: Callable[[Any, float], Any],
    release: Callable[[str], Any],
) -> ServiceLease:
    """Lease ``handle``'s provider: ``acquire(record, ttl)`` asks its node (a grant map back),
    ``release(lease_id)`` gives it back. The grant is checked: it may come from another node."""
    record = handle.record
    grant = LeaseGrant.from_wire(acquire(record, check_lease_ttl(ttl)))
    if grant.agent_id != record.agent_id:
        raise SerializationError(f"lease grant names paglet {grant.agent_id!r}, not {record.agent_id!r}")
    return ServiceLease(handle, grant, release)


__all__ = [
    "DEFAULT_LEASE_TTL",
    "MAX_LEASE_TTL",
    "SPEC_FIELDS",
    "LeaseGrant",
    "ResidentServiceSpec",
    "ServiceLease",
    "check_class_path",
    "check_idle_timeout",
    "check_lease_id",
    "check_lease_ttl",
    "default_agent_id",
    "lease_for",
]

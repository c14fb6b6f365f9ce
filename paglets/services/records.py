"""ServiceRecord: one advertisement, and the bounds on what an advertisement may hold.

A record says that paglet ``agent_id`` on node ``host_name`` (``host_url``)
offers service ``name``: its capabilities, metadata, scope and, with a TTL,
when it expires. Nodes keep records and answer lookups with them; they
travel between nodes as :meth:`ServiceRecord.to_wire` maps and come back
through :meth:`ServiceRecord.from_wire`, which checks and bounds every field
(a peer's answer is as hostile as any other input).

The ``check_*`` functions below are what an advertisement must satisfy, on
the paglet's side before it asks and again on the node's side: each raises
``ValueError`` naming the field and the limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from paglets.client.addresses import check_address
from paglets.client.references import PagletProxyRef
from paglets.core.errors import SerializationError
from paglets.core.runtime_values import ServiceScope
from paglets.wire.protocol import AGENT_ID_PATTERN

MAX_SERVICE_NAME = 128  # characters of a service name
MAX_CAPABILITIES = 64  # capabilities of one record (a contract's operations count)
MAX_CAPABILITY = 128  # characters of one capability
MAX_METADATA_ENTRIES = 64  # top-level keys of a record's metadata
MAX_METADATA_BYTES = 16 * 1024  # the metadata, msgpack-encoded
MAX_TTL = 365 * 24 * 3600.0  # a year; None means no expiry
MAX_HOST_NAME = 128
MAX_URL = 512
MAX_RECORD_FIELDS = 16
MAX_TIMESTAMP = 1e11


@dataclass(frozen=True)
class ServiceRecord:
    """One advertised service: who offers it, where, with what, for how long."""

    name: str
    agent_id: str
    host_name: str
    host_url: str
    capabilities: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    scope: ServiceScope = ServiceScope.LOCAL
    expires_at: float | None = None  # UNIX time; None: until withdrawn or its paglet is gone

    def __post_init__(self) -> None:  # "mesh" and a list of capabilities are fine too
        if not isinstance(self.scope, ServiceScope):
            object.__setattr__(self, "scope", ServiceScope(self.scope))
        if not isinstance(self.capabilities, tuple):
            object.__setattr__(self, "capabilities", tuple(self.capabilities))

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at

    def matches(self, name: str | None, capability: str | None = None) -> bool:
        """Same name (None: any) and, if given, ``capability`` among its capabilities."""
        return (name is None or self.name == name) and (capability is None or capability in self.capabilities)

    @property
    def ref(self) -> PagletProxyRef:
        """The provider, as a reference that can be kept in state and resolved later."""
        return PagletProxyRef(self.host_url, self.agent_id)

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "agent_id": self.agent_id,
            "host_name": self.host_name,
            "host_url": self.host_url,
            "capabilities": list(self.capabilities),
            "metadata": dict(self.metadata),
            "scope": self.scope.value,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> ServiceRecord:
        """Check and build a record from plain data; SerializationError names the first bad field."""
        if not isinstance(payload, dict) or len(payload) > MAX_RECORD_FIELDS:
            raise SerializationError(f"a service record must be a map of at most {MAX_RECORD_FIELDS} fields")
        try:
            agent_id = payload.get("agent_id")
            if not isinstance(agent_id, str) or not AGENT_ID_PATTERN.match(agent_id):
                raise ValueError(f"agent_id {agent_id!r:.80} is not an agent id")
            host_name = payload.get("host_name")
            if not isinstance(host_name, str) or not AGENT_ID_PATTERN.match(host_name):
                raise ValueError(f"host_name {host_name!r:.80} is not a node name")
            url = payload.get("host_url")
            if not isinstance(url, str) or len(url) > MAX_URL:
                raise ValueError(f"host_url must be a node address of at most {MAX_URL} characters")
            return cls(
                name=check_service_name(payload.get("name")),
                agent_id=agent_id,
                host_name=host_name,
                host_url=check_address(url),
                capabilities=check_capabilities(payload.get("capabilities")),
                metadata=check_metadata(payload.get("metadata")),
                scope=check_scope(payload.get("scope", ServiceScope.LOCAL.value)),
                expires_at=_expiry(payload.get("expires_at")),
            )
        except ValueError as exc:
            raise SerializationError(f"service record: {exc}") from None


def _expiry(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_TIMESTAMP:
        raise ValueError(f"expires_at must be a UNIX time or null, got {value!r:.40}")
    return float(value)


# -- what an advertisement may hold (ValueError naming the field) ----------------------------------
def check_service_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ValueError(f"a service name must be a string, got {type(name).__name__}")
    if not name or not name.strip():
        raise ValueError("a service name must not be empty")
    if len(name) > MAX_SERVICE_NAME:
        raise ValueError(f"service name {name[:40]!r}... is {len(name)} characters; the limit is {MAX_SERVICE_NAME}")
    if name != name.strip() or not name.isprintable():
        raise ValueError(f"service name {name!r:.80} must be printable, without leading or trailing spaces")
    return name


def check_capabilities(capabilities: Any) -> tuple[str, ...]:
    if capabilities is None:
        return ()
    if isinstance(capabilities, str) or not isinstance(capabilities, (list, tuple, set, frozenset)):
        raise ValueError(f"capabilities must be a list of strings, got {type(capabilities).__name__}")
    items = sorted(capabilities) if isinstance(capabilities, (set, frozenset)) else list(capabilities)
    if len(items) > MAX_CAPABILITIES:
        raise ValueError(f"{len(items)} capabilities; the limit is {MAX_CAPABILITIES}")
    for item in items:
        if not isinstance(item, str) or not item or len(item) > MAX_CAPABILITY or not item.isprintable():
            raise ValueError(
                f"capability {item!r:.80} must be a non-empty printable string of at most {MAX_CAPABILITY} characters"
            )
    return tuple(dict.fromkeys(items))


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Plain data (str keys; str, numbers, bools, None, bytes, lists and maps) within the size limits."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise ValueError(f"metadata has {len(metadata)} keys; the limit is {MAX_METADATA_ENTRIES}")
    if not all(isinstance(key, str) for key in metadata):
        raise ValueError("metadata keys must be strings")
    try:
        size = len(msgpack.packb(metadata, use_bin_type=True, strict_types=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(
            f"metadata must be plain data (str, numbers, bools, None, bytes, lists, maps): {exc}"
        ) from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes encoded; the limit is {MAX_METADATA_BYTES}")
    return dict(metadata)


def check_scope(scope: Any) -> ServiceScope:
    try:
        return ServiceScope(scope)
    except ValueError:
        raise ValueError(f"scope must be 'local' or 'mesh', got {scope!r:.40}") from None


def check_ttl(ttl: Any) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or math.isnan(ttl) or not 0 < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be a number of seconds in (0, {MAX_TTL:g}] or None, got {ttl!r:.40}")
    return float(ttl)


__all__ = [
    "MAX_CAPABILITIES",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_ENTRIES",
    "MAX_SERVICE_NAME",
    "MAX_TTL",
    "ServiceRecord",
    "check_capabilities",
    "check_metadata",
    "check_scope",
    "check_service_name",
    "check_ttl",
]

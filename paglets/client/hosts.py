"""What a node knows about another node of the mesh: one row of the gossip table.

:class:`HostRef` travels in gossip, in ``hosts`` replies and to paglets asking
for the nodes they could move to; :class:`~paglets.node.mesh.registry.MeshRegistry`
(in the node) owns the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.client.addresses import check_address
from paglets.core.errors import SerializationError
from paglets.wire.protocol import AGENT_ID_PATTERN


@dataclass(frozen=True)
class HostRef:
    """What the mesh knows about one node."""

    name: str
    url: str
    code_version: str = ""
    online: bool = True
    last_seen: float = 0.0
    active_count: int = 0
    inactive_count: int = 0
    tags: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    http_url: str | None = None
    heartbeat: int = 0
    incarnation: float = 0.0  # when the node (re)started: a restart outranks any old heartbeat

    def freshness(self) -> tuple[float, int]:
        return (self.incarnation, self.heartbeat)

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "code_version": self.code_version,
            "online": self.online,
            "last_seen": self.last_seen,
            "active_count": self.active_count,
            "inactive_count": self.inactive_count,
            "tags": list(self.tags),
            "properties": dict(self.properties),
            "http_url": self.http_url,
            "heartbeat": self.heartbeat,
            "incarnation": self.incarnation,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> HostRef:
        """Check and build an entry from the wire: every field typed and bounded, else SerializationError."""
        if not isinstance(payload, dict):
            raise SerializationError("a mesh entry must be a map")
        if len(payload) > MAX_ENTRY_FIELDS:
            raise SerializationError(f"a mesh entry has {len(payload)} fields, at most {MAX_ENTRY_FIELDS}")
        name = _text(payload, "name", MAX_NAME_CHARS, required=True)
        if not AGENT_ID_PATTERN.match(name):
            raise SerializationError(f"mesh entry 'name': {name!r} is not a node name")
        url = _text(payload, "url", MAX_URL_CHARS, required=True)
        try:
            url = check_address(url)
        except ValueError as exc:
            raise SerializationError(f"mesh entry 'url' of {name}: {exc}") from None
        http_url = payload.get("http_url")
        if http_url is not None:
            http_url = _text(payload, "http_url", MAX_URL_CHARS)
            if not http_url.startswith(("http://", "https://")):
                raise SerializationError(f"mesh entry 'http_url' of {name} must be an http:// or https:// address")
        return cls(
            name=name,
            url=url,
            code_version=_text(payload, "code_version", MAX_VERSION_CHARS),
            online=_flag(payload, "online"),
            last_seen=_number(payload, "last_seen", MAX_TIMESTAMP),
            active_count=_count(payload, "active_count", MAX_COUNT),
            inactive_count=_count(payload, "inactive_count", MAX_COUNT),
            tags=_tags(payload.get("tags")),
            properties=_properties(payload.get("properties")),
            http_url=http_url,
            heartbeat=_count(payload, "heartbeat", MAX_HEARTBEAT),
            incarnation=_number(payload, "incarnation", MAX_TIMESTAMP),
        )


# Bounds on a mesh entry from the wire (gossip, hosts replies): generous for a real node, small
# enough that a table of MAX_GOSSIP_ENTRIES of them stays a few MiB at most.
MAX_ENTRY_FIELDS = 32
MAX_NAME_CHARS = 128
MAX_URL_CHARS = 512
MAX_VERSION_CHARS = 64
MAX_TAGS = 64
MAX_TAG_CHARS = 64
MAX_PROPERTIES = 64
MAX_PROPERTY_KEY_CHARS = 64
MAX_PROPERTY_VALUE_CHARS = 512
MAX_COUNT = 2**31  # paglets on one node
MAX_HEARTBEAT = 2**53
MAX_TIMESTAMP = 1e10  # seconds since the epoch: the year 2286; a larger incarnation is a lie


def _text(payload: dict[str, Any], key: str, most: int, *, required: bool = False) -> str:
    value = payload.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise SerializationError(f"mesh entry needs a {key!r} string")
    if len(value) > most:
        raise SerializationError(f"mesh entry {key!r}: {len(value)} characters, at most {most}")
    return value


def _flag(payload: dict[str, Any], key: str) -> bool:
    value = payload.get(key, True)
    if not isinstance(value, bool):
        raise SerializationError(f"mesh entry {key!r} must be true or false")
    return value


def _count(payload: dict[str, Any], key: str, most: int) -> int:
    value = payload.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
        raise SerializationError(f"mesh entry {key!r} must be an integer in 0..{most}, got {value!r:.40}")
    return value


def _number(payload: dict[str, Any], key: str, most: float) -> float:
    value = payload.get(key) or 0.0
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= most:
        raise SerializationError(f"mesh entry {key!r} must be a number in 0..{most:g}, got {value!r:.40}")
    return float(value)


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or len(value) > MAX_TAGS:
        raise SerializationError(f"mesh entry 'tags' must be a list of at most {MAX_TAGS} strings")
    if not all(isinstance(tag, str) and len(tag) <= MAX_TAG_CHARS for tag in value):
        raise SerializationError(f"mesh entry 'tags' must be strings of at most {MAX_TAG_CHARS} characters")
    return tuple(value)


def _properties(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_PROPERTIES:
        raise SerializationError(f"mesh entry 'properties' must be a map of at most {MAX_PROPERTIES} entries")
    for key, text in value.items():
        if not isinstance(key, str) or not isinstance(text, str):
            raise SerializationError("mesh entry 'properties' must map strings to strings")
        if len(key) > MAX_PROPERTY_KEY_CHARS or len(text) > MAX_PROPERTY_VALUE_CHARS:
            raise SerializationError(
                f"mesh entry 'properties': keys of at most {MAX_PROPERTY_KEY_CHARS} characters, "
                f"values of at most {MAX_PROPERTY_VALUE_CHARS}"
            )
    return dict(value)


__all__ = ["HostRef"]

"""What a node knows about another node of the mesh: one row of the gossip table.

:class:`HostRef` travels in gossip, in ``hosts`` replies and to paglets asking
for the nodes they could move to; :class:`~paglets.node.mesh.registry.MeshRegistry`
(in the node) owns the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.errors import SerializationError


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
        if not isinstance(payload, dict):
            raise SerializationError("a mesh entry must be a map")
        try:
            return cls(
                name=_str(payload, "name"),
                url=_str(payload, "url"),
                code_version=str(payload.get("code_version") or ""),
                online=bool(payload.get("online", True)),
                last_seen=float(payload.get("last_seen") or 0.0),
                active_count=int(payload.get("active_count") or 0),
                inactive_count=int(payload.get("inactive_count") or 0),
                tags=tuple(str(t) for t in payload.get("tags") or ()),
                properties={str(k): str(v) for k, v in dict(payload.get("properties") or {}).items()},
                http_url=payload.get("http_url") if isinstance(payload.get("http_url"), str) else None,
                heartbeat=int(payload.get("heartbeat") or 0),
                incarnation=float(payload.get("incarnation") or 0.0),
            )
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"bad mesh entry: {exc}") from None


def _str(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise SerializationError(f"mesh entry needs a {key!r}")
    return value


__all__ = ["HostRef"]

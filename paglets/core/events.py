"""Events: what the runtime tells a paglet's hooks, and the node's event log.

Lifecycle events (:class:`PagletEvent` and its subclasses) are frozen
dataclasses passed to hooks such as ``on_creation`` or ``on_arrival``. Each
has ``to_wire()``, a plain dict with an ``"event"`` key naming the class;
:func:`event_from_wire` is the edge that turns such a dict back into an event.

:class:`ContextEvent` records one thing that happened on a node (a paglet
created, dispatched, crashed...). :class:`ContextEventLog` keeps the most
recent ones in a bounded ring, numbers them, tells listeners, and lets callers
wait for matching events without polling; both live in
:mod:`paglets.core.event_log` and are re-exported here. The kinds, and the
old names they replace, are in :mod:`paglets.core.event_kinds`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from paglets.core.errors import SerializationError
from paglets.core.event_log import ContextEvent, ContextEventListener, ContextEventLog


@dataclass(frozen=True)
class PagletEvent:
    """Something that happened to one paglet on one host."""

    agent_id: str
    host_name: str
    host_address: str
    timestamp: float = field(default_factory=time.time)

    def to_wire(self) -> dict[str, Any]:
        """Plain dict of the fields plus ``"event"``: the class name."""
        payload: dict[str, Any] = {"event": type(self).__name__}
        for item in fields(self):
            payload[item.name] = getattr(self, item.name)
        return payload


@dataclass(frozen=True, kw_only=True)
class CreationEvent(PagletEvent):
    """The paglet was created; ``init`` is the creator's initialisation argument."""

    init: Any = None


@dataclass(frozen=True, kw_only=True)
class MobilityEvent(PagletEvent):
    """The paglet is moving (dispatch, arrival, retraction) between hosts."""

    source_host_name: str = ""
    source_host_address: str = ""
    target_host_name: str = ""
    target_host_address: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class CloneEvent(PagletEvent):
    """A copy of the paglet is being made, possibly on another host."""

    source_agent_id: str = ""
    clone_agent_id: str = ""
    source_host_name: str = ""
    source_host_address: str = ""
    target_host_name: str = ""
    target_host_address: str = ""


@dataclass(frozen=True, kw_only=True)
class PersistencyEvent(PagletEvent):
    """The paglet is being deactivated, activated or disposed."""

    reason: str = ""
    request: Any = None
    policy: Any = None


_EVENT_CLASSES: dict[str, type[PagletEvent]] = {
    cls.__name__: cls for cls in (PagletEvent, CreationEvent, MobilityEvent, CloneEvent, PersistencyEvent)
}


def event_from_wire(payload: dict[str, Any]) -> PagletEvent:
    """Rebuild an event from its ``to_wire()`` dict.

    Raises :class:`SerializationError` for an unknown ``"event"`` name, unknown
    or missing fields, or a str field holding something else.
    """
    if not isinstance(payload, dict):
        raise SerializationError(f"event payload must be a dict, got {type(payload).__name__}")
    name = payload.get("event")
    cls = _EVENT_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise SerializationError(f"unknown event type {name!r}")
    values = {key: value for key, value in payload.items() if key != "event"}
    _check_event_fields(cls, values)
    try:
        return cls(**values)
    except TypeError as exc:
        raise SerializationError(f"malformed {name} payload: {exc}") from exc


def _check_event_fields(cls: type[PagletEvent], values: dict[str, Any]) -> None:
    known = {item.name: item for item in fields(cls)}
    for key, value in values.items():
        item = known.get(key)
        if item is None:
            raise SerializationError(f"{cls.__name__} has no field {key!r}")
        if item.type == "str" and not isinstance(value, str):
            raise SerializationError(f"{cls.__name__} field {key!r} must be a str, got {type(value).__name__}")
        if key == "timestamp" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SerializationError(f"{cls.__name__} field 'timestamp' must be a number, got {type(value).__name__}")


__all__ = [
    "CloneEvent",
    "ContextEvent",
    "ContextEventListener",
    "ContextEventLog",
    "CreationEvent",
    "MobilityEvent",
    "PagletEvent",
    "PersistencyEvent",
    "event_from_wire",
]

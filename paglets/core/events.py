"""Events: what the runtime tells a paglet's hooks, and the node's event log.

Lifecycle events (:class:`PagletEvent` and its subclasses) are frozen
dataclasses passed to hooks such as ``on_creation`` or ``on_arrival``. Each
has ``to_wire()``, a plain dict with an ``"event"`` key naming the class;
:func:`event_from_wire` is the edge that turns such a dict back into an event.

:class:`ContextEvent` records one thing that happened on a node (a paglet
created, dispatched, disposed...). :class:`ContextEventLog` keeps the most
recent ones in a bounded ring, numbers them, tells listeners, and lets callers
wait for a matching event without polling.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from paglets.core.errors import SerializationError

logger = logging.getLogger("paglets.events")


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


@dataclass(frozen=True)
class ContextEvent:
    """One entry of a node's event log, numbered by ``seq`` (1, 2, 3...)."""

    seq: int
    kind: str
    timestamp: float
    agent_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """Plain dict of the fields; ``data`` is copied, its values left as they are."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "timestamp": self.timestamp,
            "agent_id": self.agent_id,
            "data": dict(self.data),
        }

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> ContextEvent:
        """Rebuild from ``to_wire()`` output; SerializationError names a bad field."""
        if not isinstance(payload, dict):
            raise SerializationError(f"context event payload must be a dict, got {type(payload).__name__}")
        seq = _wire_field(payload, "seq", int)
        kind = _wire_field(payload, "kind", str)
        timestamp = _wire_field(payload, "timestamp", (int, float))
        agent_id = payload.get("agent_id")
        if agent_id is not None and not isinstance(agent_id, str):
            raise SerializationError("context event field 'agent_id' must be a str or None")
        data = payload.get("data", {})
        if not isinstance(data, dict):
            raise SerializationError("context event field 'data' must be a dict")
        return cls(seq, kind, float(timestamp), agent_id, dict(data))


def _wire_field(payload: dict[str, Any], name: str, types: type | tuple[type, ...]) -> Any:
    if name not in payload:
        raise SerializationError(f"context event payload has no {name!r} field")
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, types):
        raise SerializationError(f"context event field {name!r} has the wrong type {type(value).__name__}")
    return value


ContextEventListener = Callable[[ContextEvent], Any]


class ContextEventLog:
    """A node's recent events: a bounded, thread-safe ring.

    Owns the ring of :class:`ContextEvent` (oldest dropped past ``limit``),
    the sequence counter, the listener list and the Condition that wakes
    :meth:`wait_for` callers.
    """

    def __init__(self, limit: int = 10000) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"event log limit must be a positive int, got {limit!r}")
        self._cond = threading.Condition()
        self._events: deque[ContextEvent] = deque(maxlen=limit)
        self._last_seq = 0
        self._listeners: list[ContextEventListener] = []

    @property
    def last_seq(self) -> int:
        """The seq of the newest event, 0 before any."""
        with self._cond:
            return self._last_seq

    def emit(self, kind: str, agent_id: str | None = None, **data: Any) -> ContextEvent:
        """Record an event, wake waiters, then call listeners outside the lock."""
        with self._cond:
            self._last_seq += 1
            event = ContextEvent(self._last_seq, kind, time.time(), agent_id, data)
            self._events.append(event)
            listeners = list(self._listeners)
            self._cond.notify_all()
        for listener in listeners:
            self._call_listener(listener, event)
        return event

    @staticmethod
    def _call_listener(listener: ContextEventListener, event: ContextEvent) -> None:
        try:
            listener(event)
        except Exception:
            logger.exception("event listener %r failed on %s #%d", listener, event.kind, event.seq)

    def events_since(self, since: int = 0, limit: int = 100) -> list[ContextEvent]:
        """Events with ``seq > since``, oldest first, at most ``limit`` of them."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        with self._cond:
            return list(itertools.islice(self._newer_than(since), limit))

    def _newer_than(self, since: int) -> Iterator[ContextEvent]:
        # Seqs in the ring are consecutive, so the start index is arithmetic.
        if not self._events:
            return itertools.islice(self._events, 0)
        start = max(0, since - self._events[0].seq + 1)
        return itertools.islice(self._events, start, None)

    def add_listener(self, fn: ContextEventListener) -> None:
        """Call ``fn(event)`` after each event is recorded."""
        if not callable(fn):
            raise TypeError(f"listener must be callable, got {type(fn).__name__}")
        with self._cond:
            self._listeners.append(fn)

    def remove_listener(self, fn: ContextEventListener) -> None:
        """Stop calling ``fn``; unknown listeners are ignored."""
        with self._cond:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def wait_for(
        self,
        predicate: Callable[[ContextEvent], bool],
        timeout: float | None,
        since: int | None = None,
    ) -> ContextEvent | None:
        """Return the first event matching ``predicate``, or None after ``timeout`` s.

        With ``since``, events already recorded with ``seq > since`` count;
        without it, only events emitted after this call. ``predicate`` runs
        under the log's lock: keep it cheap and do not emit from it. Events
        pushed out of the ring before the waiter wakes are not seen.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            cursor = self._last_seq if since is None else since
            while True:
                for event in self._newer_than(cursor):
                    if predicate(event):
                        return event
                cursor = self._last_seq
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def __len__(self) -> int:
        with self._cond:
            return len(self._events)


__all__ = [
    "CloneEvent",
    "ContextEvent",
    "ContextEventLog",
    "CreationEvent",
    "MobilityEvent",
    "PagletEvent",
    "PersistencyEvent",
    "event_from_wire",
]

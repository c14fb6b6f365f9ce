"""A node's event log: numbered :class:`ContextEvent` records in a bounded ring, listeners, waiting.

:class:`ContextEvent` records one thing that happened on a node (a paglet
created, dispatched, crashed; a message that failed; a peer gone offline...):
its ``event_id`` (1, 2, 3... per log), ``kind`` (see
:mod:`paglets.core.event_kinds`), when, on which node, about which paglet
(``agent_id``, ``class_name``), message or service, the ``error`` if one, and
``details`` (target, reason, source...). :class:`ContextEventLog` keeps the
most recent ones, numbers them, tells listeners, and lets callers wait for
matching events without polling.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from paglets.core.errors import SerializationError
from paglets.core.event_kinds import LISTENER_FAILED, canonical_kind, kinds_for

logger = logging.getLogger("paglets.events")

MAX_TEXT = 1000  # characters of one text field or detail value kept in an event
MAX_LIST = 32  # items of one list detail kept
REMEMBERED_CLASSES = 4096  # agent id -> class name pairs kept to name the class of later events
EVENT_FIELDS = ("host_name", "agent_id", "class_name", "message_id", "service_name", "error")


@dataclass(frozen=True)
class ContextEvent:
    """One entry of a node's event log, numbered by ``event_id`` (1, 2, 3...)."""

    event_id: int
    kind: str
    timestamp: float
    agent_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    host_name: str = ""
    class_name: str | None = None
    message_id: str | None = None
    service_name: str | None = None
    error: str | None = None

    @property
    def seq(self) -> int:
        """The ``event_id`` under its former name."""
        return self.event_id

    @property
    def data(self) -> dict[str, Any]:
        """The ``details`` under their former name."""
        return self.details

    def to_wire(self) -> dict[str, Any]:
        """Plain dict of the fields (``details`` copied); what the ``events`` op and ``GET /events`` carry."""
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "timestamp": self.timestamp,
            "host_name": self.host_name,
            "agent_id": self.agent_id,
            "class_name": self.class_name,
            "message_id": self.message_id,
            "service_name": self.service_name,
            "error": self.error,
            "details": dict(self.details),
        }

    @classmethod
    def from_wire(cls, payload: Any) -> ContextEvent:
        """Rebuild from ``to_wire()`` output (or the older ``seq``/``data`` form); SerializationError names a field."""
        if not isinstance(payload, dict):
            raise SerializationError(f"context event payload must be a dict, got {type(payload).__name__}")
        id_field = "event_id" if "event_id" in payload else "seq"
        event_id = _wire_field(payload, id_field, int)
        kind = _wire_field(payload, "kind", str)
        timestamp = _wire_field(payload, "timestamp", (int, float))
        texts = {}
        for name in EVENT_FIELDS:
            value = payload.get(name)
            if value is not None and not isinstance(value, str):
                raise SerializationError(f"context event field {name!r} must be a str or None")
            texts[name] = value
        details = payload.get("details", payload.get("data", {}))
        if not isinstance(details, dict):
            raise SerializationError("context event field 'details' (or 'data') must be a dict")
        return cls(
            event_id, kind, float(timestamp), texts["agent_id"], dict(details), texts["host_name"] or "",
            texts["class_name"], texts["message_id"], texts["service_name"], texts["error"],
        )  # fmt: skip


def _wire_field(payload: dict[str, Any], name: str, types: type | tuple[type, ...]) -> Any:
    if name not in payload:
        raise SerializationError(f"context event payload has no {name!r} field")
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, types):
        raise SerializationError(f"context event field {name!r} has the wrong type {type(value).__name__}")
    return value


def plain_detail(value: Any) -> Any:
    """A detail value as plain, bounded data: numbers and flags as they are, text cut, the rest as text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, (list, tuple)):
        return [plain_detail(item) for item in itertools.islice(value, MAX_LIST)]
    return str(value)[:MAX_TEXT]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:MAX_TEXT]


ContextEventListener = Callable[[ContextEvent], Any]
EventFilter = Callable[[ContextEvent], bool]


def event_filter(kind: str | None = None, agent_id: str | None = None) -> EventFilter | None:
    """A predicate for events of ``kind`` (or an old name of it) about ``agent_id``; None matches all."""
    if kind is None and agent_id is None:
        return None
    kinds = kinds_for(kind) if kind is not None else None
    return lambda e: (kinds is None or e.kind in kinds) and (agent_id is None or e.agent_id == agent_id)


class ContextEventLog:
    """A node's recent events: a bounded, thread-safe ring.

    Owns the ring of :class:`ContextEvent` (oldest dropped past ``limit``),
    the id counter, the listener list, the class names of the agents it has
    seen (so a later event about the same paglet names its class too) and
    the Condition that wakes waiters.
    """

    def __init__(self, limit: int = 10000, host_name: str = "") -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"event log limit must be a positive int, got {limit!r}")
        self.host_name = host_name
        self.limit = limit
        self._cond = threading.Condition()
        self._events: collections.deque[ContextEvent] = collections.deque(maxlen=limit)
        self._last_id = 0
        self._listeners: list[ContextEventListener] = []
        self._classes: collections.OrderedDict[str, str] = collections.OrderedDict()

    @property
    def last_seq(self) -> int:
        """The id of the newest event, 0 before any."""
        with self._cond:
            return self._last_id

    last_event_id = last_seq

    @property
    def first_event_id(self) -> int:
        """The id of the oldest event still in the ring (``last_seq + 1`` while empty)."""
        with self._cond:
            return self._events[0].event_id if self._events else self._last_id + 1

    def emit(
        self,
        kind: str,
        agent_id: str | None = None,
        *,
        class_name: str | None = None,
        message_id: str | None = None,
        service_name: str | None = None,
        error: Any = None,
        **details: Any,
    ) -> ContextEvent:
        """Record an event, wake waiters, then call listeners outside the lock.

        ``kind`` may be an old name (see :mod:`paglets.core.event_kinds`): the
        new kind is recorded. Keywords other than the named fields become
        ``details``, kept as plain, bounded values.
        """
        kind = canonical_kind(str(kind))
        plain = {str(key): plain_detail(value) for key, value in details.items()}
        with self._cond:
            class_name = self._class_of(agent_id, class_name)
            self._last_id += 1
            event = ContextEvent(
                self._last_id, kind, time.time(), agent_id, plain, self.host_name, class_name,
                _text(message_id), _text(service_name), _text(error),
            )  # fmt: skip
            self._events.append(event)
            listeners = list(self._listeners)
            self._cond.notify_all()
        failures = [(listener, exc) for listener in listeners if (exc := self._call(listener, event)) is not None]
        if event.kind != LISTENER_FAILED:  # a listener failing on one of those is only logged
            for listener, exc in failures:
                self.emit(
                    LISTENER_FAILED, event.agent_id, error=f"{type(exc).__name__}: {exc}",
                    listener=repr(listener)[:200], failed_event_id=event.event_id, failed_kind=event.kind,
                )  # fmt: skip
        return event

    def _class_of(self, agent_id: str | None, class_name: str | None) -> str | None:
        """Remember (lock held) the class an event names for its agent; fill it in when it names none."""
        if agent_id is None:
            return class_name
        classes = self._classes
        if class_name:
            classes[agent_id] = class_name
            classes.move_to_end(agent_id)
            if len(classes) > REMEMBERED_CLASSES:
                classes.popitem(last=False)
            return class_name
        return classes.get(agent_id)

    @staticmethod
    def _call(listener: ContextEventListener, event: ContextEvent) -> Exception | None:
        """Call one listener; what it raised (logged), or None."""
        try:
            listener(event)
        except Exception as exc:
            logger.exception("event listener %r failed on %s #%d", listener, event.kind, event.event_id)
            return exc
        return None

    # -- reading ----------------------------------------------------------------------------
    def resume_point(self, since: int) -> int:
        """``since`` as a cursor into this log: one past the newest event means the log restarted, so 0."""
        with self._cond:
            return since if since <= self._last_id else 0

    def events_since(
        self, since: int = 0, limit: int = 100, *, kind: str | None = None, agent_id: str | None = None
    ) -> list[ContextEvent]:
        """Events with ``event_id > since``, oldest first, at most ``limit`` of them.

        ``kind`` (a kind or an old name of one) and ``agent_id`` keep only
        the matching events; ``limit`` counts those.
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        wanted = event_filter(kind, agent_id)
        with self._cond:
            newer = self._newer_than(since)
            return list(itertools.islice(newer if wanted is None else filter(wanted, newer), limit))

    def _newer_than(self, since: int) -> Iterator[ContextEvent]:
        # Ids in the ring are consecutive, so the start index is arithmetic.
        if not self._events:
            return itertools.islice(self._events, 0)
        start = max(0, since - self._events[0].event_id + 1)
        return itertools.islice(self._events, start, None)

    def add_listener(self, fn: ContextEventListener) -> None:
        """Call ``fn(event)`` after each event is recorded (on the emitting thread: keep it quick).

        A listener that raises is logged and produces a ``listener-failed`` event.
        """
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
        predicate: EventFilter | None = None,
        timeout: float | None = None,
        since: int | None = None,
        *,
        kind: str | None = None,
        agent_id: str | None = None,
    ) -> ContextEvent | None:
        """Return the first event matching ``predicate`` (and ``kind``/``agent_id``), or None after ``timeout`` s.

        With ``since``, events already recorded with ``event_id > since``
        count; without it, only events emitted after this call. ``predicate``
        runs under the log's lock: keep it cheap and do not emit from it.
        Events pushed out of the ring before the waiter wakes are not seen.
        """
        wanted = event_filter(kind, agent_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            cursor = self._last_id if since is None else since
            while True:
                for event in self._newer_than(cursor):
                    if (wanted is None or wanted(event)) and (predicate is None or predicate(event)):
                        return event
                cursor = self._last_id
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def read(
        self,
        since: int,
        limit: int = 100,
        *,
        timeout: float = 0.0,
        kind: str | None = None,
        agent_id: str | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> tuple[list[ContextEvent], int]:
        """Events after ``since`` (filtered as in :meth:`events_since`) and the cursor to read on from.

        With none yet, waits up to ``timeout`` seconds for some, returning
        early (maybe empty) once ``stop()`` turns true; ``stop`` is checked
        whenever the log wakes its waiters (:meth:`wake` wakes them). The
        cursor is the id of the last event looked at, so a filtered read
        does not look at the same events twice.
        """
        wanted = event_filter(kind, agent_id)
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                found, since = self._scan(since, limit, wanted)
                if found or limit <= 0 or (stop is not None and stop()):
                    return found, since
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [], since
                self._cond.wait(remaining)

    def _scan(self, since: int, limit: int, wanted: EventFilter | None) -> tuple[list[ContextEvent], int]:
        found: list[ContextEvent] = []
        cursor = since
        if limit <= 0:
            return found, cursor
        for event in self._newer_than(since):
            cursor = event.event_id
            if wanted is None or wanted(event):
                found.append(event)
                if len(found) >= limit:
                    break
        return found, cursor

    def wake(self) -> None:
        """Wake every waiter so it checks its ``stop`` condition (a server shutting down)."""
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._events)


__all__ = ["ContextEvent", "ContextEventListener", "ContextEventLog", "event_filter", "plain_detail"]

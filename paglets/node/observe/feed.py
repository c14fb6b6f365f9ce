"""Reading a node's event log from outside: the ``events`` front op and ``GET /events``.

A read names where to start (``since``: the last event id the reader has,
0 for the oldest kept), how many events at most (``limit``), optionally one
paglet (``agent``) or one kind (``kind``, a kind or an old name of one) and
how long to wait for news when there is none yet (``wait``: a bounded long
poll, so ``paglets events --follow`` never busy-polls). Every value comes
from outside the node, so :func:`check_query` bounds each one.

A waiting read holds a thread of the broker's reads lane (or of the HTTP
shim) while it waits, so :class:`EventFeed` lets at most ``max_waiters``
wait at once; a read beyond that is answered at once with what there is,
marked ``busy`` (the reader pauses before asking again). Reads that do not
wait are never refused.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paglets.core.errors import ProtocolError
from paglets.core.event_log import ContextEventLog
from paglets.wire import protocol

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000  # events in one answer
MAX_WAIT = 30.0  # seconds one read may wait for news
MAX_WAITERS = 4  # reads waiting at once (of the reads lane's threads); more are answered at once, busy
MAX_SINCE = 2**63 - 1
_KIND = re.compile(r"^[a-z][a-z0-9-]{0,63}\Z")


@dataclass(frozen=True)
class EventQuery:
    """One checked read of the event log."""

    since: int = 0
    limit: int = DEFAULT_LIMIT
    agent_id: str | None = None
    kind: str | None = None
    wait: float = 0.0


def check_query(
    since: Any = 0, limit: Any = DEFAULT_LIMIT, agent_id: Any = None, kind: Any = None, wait: Any = 0.0
) -> EventQuery:
    """The read these values ask for, each checked; ProtocolError names the first bad one."""
    if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= MAX_SINCE:
        raise ProtocolError(f"events: since must be an event id, an integer 0..2^63-1, got {since!r:.40}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ProtocolError(f"events: limit must be an integer 1..{MAX_LIMIT}, got {limit!r:.40}")
    if agent_id is not None and not (isinstance(agent_id, str) and protocol.AGENT_ID_PATTERN.match(agent_id)):
        raise ProtocolError(f"events: agent must be an agent id, got {agent_id!r:.80}")
    if kind is not None and not (isinstance(kind, str) and _KIND.match(kind)):
        raise ProtocolError(f"events: kind must be an event kind like 'dispatch', got {kind!r:.80}")
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_WAIT:  # NaN fails
        raise ProtocolError(f"events: wait must be 0..{MAX_WAIT:g} seconds, got {wait!r:.40}")
    return EventQuery(since, limit, agent_id, kind, float(wait))


class EventFeed:
    """Answers reads of one node's event log; owns the bound on reads waiting at once."""

    def __init__(self, events: ContextEventLog, max_waiters: int = MAX_WAITERS):
        self.events = events
        self._waiters = threading.BoundedSemaphore(max_waiters)

    def read(self, query: EventQuery, stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        """``{"events": [...], "next", "last", "first", "busy"}``: the events as plain maps, the cursor to
        pass as ``since`` next time, the newest and oldest ids kept, and whether a wait was refused."""
        events = self.events
        since = events.resume_point(query.since)  # beyond the newest: the node restarted, start over
        waiting = query.wait > 0 and self._waiters.acquire(blocking=False)
        try:
            found, cursor = events.read(
                since, query.limit, timeout=query.wait if waiting else 0.0, kind=query.kind,
                agent_id=query.agent_id, stop=stop,
            )  # fmt: skip
        finally:
            if waiting:
                self._waiters.release()
        return {
            "events": [event.to_wire() for event in found],
            "next": cursor,
            "last": events.last_seq,
            "first": events.first_event_id,
            "busy": query.wait > 0 and not waiting,
        }


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_WAIT", "MAX_WAITERS", "EventFeed", "EventQuery", "check_query"]

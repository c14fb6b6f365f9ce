"""What the broker loop counts for the node's metrics, in plain ints: no locks, no I/O on the message path.

The loop thread is the only writer. A scrape (another thread) copies the
figures through a broker command (:meth:`LoopStats.snapshot`, run in the
loop), so what the message path pays per message is a few additions and one
bisect. Failed messages are also noted for the event log
(:class:`FailureNotes`), bounded per second so a paglet failing every message
cannot flood the log or the lane that records them.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

# Upper bounds (seconds) of the histogram buckets; a last bucket takes the rest (+Inf).
TIME_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
NOTES_PER_WINDOW = 100  # message-failed events the loop hands on per window; the rest are counted
NOTES_WINDOW = 1.0  # seconds


class LoopHistogram:
    """Observations counted in fixed buckets (``counts[i]``: values <= ``bounds[i]``; the last: the rest)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = TIME_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.total += value * times

    def snapshot(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.total}


@dataclass(slots=True)
class FailedNote:
    """Messages that failed together: one ``message-failed`` event."""

    agent_id: str
    class_name: str
    message_id: str | None
    error: str
    count: int


class FailureNotes:
    """Failed messages waiting to become events; at most ``per_window`` notes per ``window`` seconds."""

    __slots__ = ("_started", "pending", "per_window", "suppressed", "taken", "window")

    def __init__(self, per_window: int = NOTES_PER_WINDOW, window: float = NOTES_WINDOW) -> None:
        self.per_window = per_window
        self.window = window
        self.pending: list[FailedNote] = []
        self.suppressed = 0  # failed messages not noted one by one in this window
        self.taken = 0  # notes handed on in this window
        self._started = 0.0

    def note(self, agent_id: str, class_name: str, message_id: str | None, error: str, count: int) -> None:
        now = time.monotonic()
        if now - self._started >= self.window:
            self._started = now
            self.taken = 0
        if self.taken + len(self.pending) >= self.per_window:
            self.suppressed += count
            return
        self.pending.append(FailedNote(agent_id, class_name, message_id, error[:500], count))

    def take(self) -> tuple[list[FailedNote], int]:
        """The notes to record now and how many failed messages were not noted one by one."""
        notes, self.pending = self.pending, []
        self.taken += len(notes)
        suppressed, self.suppressed = self.suppressed, 0
        return notes, suppressed


@dataclass(slots=True)
class LoopStats:
    """The loop's running totals and histograms (since the broker started)."""

    delivered: int = 0  # messages handled (handler returned)
    failed: int = 0  # messages that failed: the handler raised, the paglet crashed or went away
    handling: LoopHistogram = field(default_factory=LoopHistogram)  # handed to a handler -> its reply
    sync_rtt: LoopHistogram = field(default_factory=LoopHistogram)  # a sync message in the node -> its reply
    notes: FailureNotes = field(default_factory=FailureNotes)

    def failed_messages(self, agent_id: str, class_name: str, count: int, error: str, mid: str | None = None) -> None:
        """``count`` messages failed with ``error``: count them and note an event."""
        if count <= 0:
            return
        self.failed += count
        self.notes.note(agent_id, class_name, mid, error, count)

    def snapshot(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "handling": self.handling.snapshot(),
            "sync_rtt": self.sync_rtt.snapshot(),
        }


def error_text(error: dict[str, Any]) -> str:
    """``Type: message`` of a wire error map."""
    return f"{error.get('type') or 'Error'}: {error.get('message') or ''}"


__all__ = ["TIME_BUCKETS", "FailedNote", "FailureNotes", "LoopHistogram", "LoopStats", "error_text"]

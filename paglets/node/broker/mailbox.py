"""The ordering core of a paglet's mailbox: no threads, no I/O.

The node's broker loop is single-threaded and owns one :class:`MailboxQueue`
per paglet. Items leave highest priority first and, within a priority, in
arrival order. Push and pop are O(log n): the heap key is
``(-priority, arrival_seq)``, and the unique sequence number means items
themselves are never compared.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from paglets.core.errors import SerializationError

T = TypeVar("T")


class MailboxQueue(Generic[T]):
    """Queued items of one mailbox, in delivery order.

    Owns a heap of ``(-priority, seq, item)`` entries and the arrival counter.
    Not thread-safe: only the broker loop touches it.
    """

    __slots__ = ("_arrivals", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, T]] = []
        self._arrivals = itertools.count()

    def push(self, priority: int, item: T) -> None:
        """Queue ``item``; higher ``priority`` leaves earlier."""
        heapq.heappush(self._heap, (-priority, next(self._arrivals), item))

    def push_front(self, items: list[tuple[int, T]]) -> None:
        """Queue ``items`` (priority, item) ahead of everything of equal priority, in their order."""
        first = min((entry[1] for entry in self._heap), default=0)
        for offset, (priority, item) in enumerate(items):
            heapq.heappush(self._heap, (-priority, first - len(items) + offset, item))

    def pop(self) -> T:
        """Remove and return the next item; IndexError when empty."""
        if not self._heap:
            raise IndexError("pop from an empty mailbox queue")
        return heapq.heappop(self._heap)[2]

    def peek(self) -> T:
        """The next item, left in place; IndexError when empty."""
        if not self._heap:
            raise IndexError("peek into an empty mailbox queue")
        return self._heap[0][2]

    def peek_priority(self) -> int | None:
        """Priority of the next item, or None when empty."""
        return -self._heap[0][0] if self._heap else None

    def items(self) -> list[T]:
        """Every queued item, in no particular order (the queue is unchanged)."""
        return [entry[2] for entry in self._heap]

    def drain(self) -> list[T]:
        """Remove and return every item, in delivery order."""
        entries = sorted(self._heap, key=_order_key)
        self._heap.clear()
        return [entry[2] for entry in entries]

    def remove_if(self, pred: Callable[[T], bool]) -> list[T]:
        """Remove and return the items matching ``pred``, in delivery order."""
        kept: list[tuple[int, int, T]] = []
        removed: list[tuple[int, int, T]] = []
        for entry in self._heap:
            (removed if pred(entry[2]) else kept).append(entry)
        if removed:
            heapq.heapify(kept)
            self._heap = kept
        return [entry[2] for entry in sorted(removed, key=_order_key)]

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)

    def __repr__(self) -> str:
        return f"MailboxQueue(len={len(self._heap)}, next_priority={self.peek_priority()})"


def _order_key(entry: tuple[int, int, Any]) -> tuple[int, int]:
    return entry[0], entry[1]


_STATUS_WIRE_KEYS = {
    "queued": "queued_count",
    "in_flight": "in_flight_count",
    "delivered": "delivered_count",
    "failed": "failed_count",
}


@dataclass(frozen=True)
class MailboxStatus:
    """Counts for one mailbox: waiting, being handled, handled, failed."""

    queued_count: int = 0
    in_flight_count: int = 0
    delivered_count: int = 0
    failed_count: int = 0

    def to_wire(self) -> dict[str, int]:
        """``{"queued", "in_flight", "delivered", "failed"}`` counts, and the same under the field names
        (``queued_count``...) that code written for the HTTP paglets API reads."""
        counts = {key: getattr(self, attr) for key, attr in _STATUS_WIRE_KEYS.items()}
        counts.update({attr: getattr(self, attr) for attr in _STATUS_WIRE_KEYS.values()})
        return counts

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> MailboxStatus:
        """Rebuild from ``to_wire()`` output; SerializationError names a bad count."""
        if not isinstance(payload, dict):
            raise SerializationError(f"mailbox status must be a dict, got {type(payload).__name__}")
        counts: dict[str, int] = {}
        for key, attr in _STATUS_WIRE_KEYS.items():
            value = payload.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SerializationError(f"mailbox status field {key!r} must be a non-negative int, got {value!r}")
            counts[attr] = value
        return cls(**counts)


__all__ = ["MailboxQueue", "MailboxStatus"]

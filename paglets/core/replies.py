"""Replies that come back to messages: FutureReply and ReplySet.

:class:`FutureReply` wraps a :class:`concurrent.futures.Future` that the
runtime resolves with the handler's result or error. :class:`ReplySet` gathers
several of them (a multicast) and hands them out in completion order. Both
are also importable from :mod:`paglets.core.messages`, their public home.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any

from paglets.core.errors import RequestTimeoutError


class FutureReply:
    """The reply to one message, available later.

    Owns a :class:`concurrent.futures.Future` that the runtime resolves with
    the handler's return value, or fails with the handler's error.
    """

    __slots__ = ("_future",)

    def __init__(self, future: Future | None = None) -> None:
        self._future: Future = Future() if future is None else future

    @classmethod
    def resolved(cls, value: Any) -> FutureReply:
        """A reply that is already available with ``value``."""
        future: Future = Future()
        future.set_result(value)
        return cls(future)

    @classmethod
    def failed(cls, exc: BaseException) -> FutureReply:
        """A reply that is already available and raises ``exc``."""
        future: Future = Future()
        future.set_exception(exc)
        return cls(future)

    @property
    def future(self) -> Future:
        """The underlying Future (the runtime resolves it)."""
        return self._future

    def is_available(self) -> bool:
        """True once the reply (a value or an error) has arrived."""
        return self._future.done()

    def wait_for_reply(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: forever); True if available."""
        done, _ = wait_futures([self._future], timeout=timeout)
        return bool(done)

    def get_reply(self, timeout: float | None = None) -> Any:
        """Return the reply, re-raising the handler's error as it was raised.

        Raises :class:`RequestTimeoutError` when nothing arrived in time.
        """
        if not self.wait_for_reply(timeout):
            raise RequestTimeoutError(f"reply was not available within {timeout} s", op="get_reply")
        return self._future.result()

    def get_boolean_reply(self, timeout: float | None = None) -> bool:
        """The reply as a bool (bools, 0/1, and 'true'/'false'-like strings)."""
        return _to_bool(self.get_reply(timeout))

    def get_int_reply(self, timeout: float | None = None) -> int:
        """The reply as an int (ints, integral floats, decimal strings)."""
        return _to_int(self.get_reply(timeout))

    def get_float_reply(self, timeout: float | None = None) -> float:
        """The reply as a float (numbers and numeric strings)."""
        return _to_float(self.get_reply(timeout))

    def get_string_reply(self, timeout: float | None = None) -> str:
        """The reply as a str (strs, UTF-8 bytes, numbers, bools)."""
        return _to_str(self.get_reply(timeout))

    def add_done_callback(self, fn: Callable[[FutureReply], Any]) -> None:
        """Call ``fn(self)`` once the reply is available (at once if it is)."""
        self._future.add_done_callback(lambda _future: fn(self))

    def __repr__(self) -> str:
        state = "available" if self.is_available() else "pending"
        return f"FutureReply({state})"


_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


def _not_convertible(value: Any, target: str) -> TypeError:
    return TypeError(f"reply {value!r} ({type(value).__name__}) is not convertible to {target}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise _not_convertible(value, "bool")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _not_convertible(value, "int")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _not_convertible(value, "int")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _not_convertible(value, "float")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _not_convertible(value, "float")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            pass
    elif isinstance(value, (int, float)):
        return str(value)
    raise _not_convertible(value, "str")


class ReplySet:
    """Several replies (a multicast), handed out in the order they complete.

    Owns the list of replies, the queue of completed replies not yet handed
    out, and a Condition that done callbacks notify.
    """

    def __init__(self, replies: Iterable[FutureReply] = ()) -> None:
        self._cond = threading.Condition()
        self._replies: list[FutureReply] = []
        self._completed: deque[FutureReply] = deque()
        self._handed_out = 0
        for reply in replies:
            self.add_future_reply(reply)

    def add_future_reply(self, reply: FutureReply) -> None:
        """Add one reply to the set."""
        if not isinstance(reply, FutureReply):
            raise TypeError(f"expected a FutureReply, got {type(reply).__name__}")
        with self._cond:
            self._replies.append(reply)
        # Outside the lock: an already-done reply runs the callback right here.
        reply.add_done_callback(self._on_reply_done)

    def _on_reply_done(self, reply: FutureReply) -> None:
        with self._cond:
            self._completed.append(reply)
            self._cond.notify_all()

    def _snapshot(self) -> list[FutureReply]:
        with self._cond:
            return list(self._replies)

    def are_all_available(self) -> bool:
        """True when every reply has arrived."""
        return all(reply.is_available() for reply in self._snapshot())

    def count_available(self) -> int:
        """How many replies have arrived."""
        return sum(1 for reply in self._snapshot() if reply.is_available())

    def count_unavailable(self) -> int:
        """How many replies are still pending."""
        return sum(1 for reply in self._snapshot() if not reply.is_available())

    def is_any_available(self) -> bool:
        """True when at least one reply has arrived."""
        return any(reply.is_available() for reply in self._snapshot())

    def has_more_future_replies(self) -> bool:
        """True while some reply has not yet been handed out."""
        with self._cond:
            return self._handed_out < len(self._replies)

    def wait_for_all_replies(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for every reply; True if all arrived."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._handed_out + len(self._completed) == len(self._replies),
                timeout,
            )

    def wait_for_next_future_reply(self, timeout: float | None = None) -> bool:
        """Wait for a completed reply not yet handed out; False on timeout or none left."""
        with self._cond:
            return self._wait_for_completed(timeout)

    def _wait_for_completed(self, timeout: float | None) -> bool:
        return self._cond.wait_for(
            lambda: bool(self._completed) or self._handed_out >= len(self._replies),
            timeout,
        ) and bool(self._completed)

    def get_next_future_reply(self, timeout: float | None = None) -> FutureReply | None:
        """Hand out the next completed reply, in completion order.

        Returns None when nothing completed within ``timeout`` or none is left.
        """
        with self._cond:
            if not self._wait_for_completed(timeout):
                return None
            self._handed_out += 1
            return self._completed.popleft()

    def iter_completed(self, timeout: float | None = None) -> Iterator[FutureReply]:
        """Yield the replies not yet handed out, as they complete.

        ``timeout`` bounds the whole iteration; when it passes with replies
        still pending, :class:`RequestTimeoutError` is raised.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.has_more_future_replies():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            reply = self.get_next_future_reply(remaining)
            if reply is None:
                if not self.has_more_future_replies():
                    return
                raise RequestTimeoutError(
                    f"{self.count_unavailable()} replies were not available within {timeout} s",
                    op="iter_completed",
                )
            yield reply

    def __iter__(self) -> Iterator[FutureReply]:
        return self.iter_completed()

    def __len__(self) -> int:
        with self._cond:
            return len(self._replies)

    def __repr__(self) -> str:
        return f"ReplySet(replies={len(self)}, available={self.count_available()})"


__all__ = ["FutureReply", "ReplySet"]

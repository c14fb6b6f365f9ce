"""Messages between paglets, and the replies that come back.

A :class:`Message` is what one paglet sends another: a ``kind`` naming the
request, its arguments, and delivery metadata (priority, type, ids). It holds
no I/O; an outer codec turns :meth:`Message.to_wire` into frames and
:meth:`Message.from_wire` is the edge where an incoming dict is checked.

Priorities
----------
==================== ===== ==================================================
name                 value use
==================== ===== ==================================================
UNQUEUED_PRIORITY    0     bypasses the mailbox queue; handled at once
MIN_PRIORITY         1     lowest an author can pick
NORMAL_PRIORITY      5     default
MAX_PRIORITY         10    highest an author can pick
REENTRANT_PRIORITY   11    runtime only: a handler's nested call to itself
REQUEST_PRIORITY     12    runtime only: runtime requests (dispatch, clone...)
SYSTEM_PRIORITY      13    runtime only: lifecycle and control messages
==================== ===== ==================================================

The three runtime priorities sit above anything an author can pick, so the
runtime's own traffic is never stuck behind application messages.
:meth:`Message.increase_priority` and :meth:`Message.decrease_priority` stay
within ``MIN_PRIORITY..MAX_PRIORITY``.

Replies
-------
:class:`FutureReply` wraps a :class:`concurrent.futures.Future` that the
runtime resolves with the handler's result or error. :class:`ReplySet` gathers
several of them (a multicast) and hands them out in completion order.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any

from paglets.core.errors import RequestTimeoutError, SerializationError

SYNCHRONOUS = 0
FUTURE = 1
ONEWAY = 2
MESSAGE_TYPES = (SYNCHRONOUS, FUTURE, ONEWAY)

UNQUEUED_PRIORITY = 0
MIN_PRIORITY = 1
NORMAL_PRIORITY = 5
MAX_PRIORITY = 10
# Runtime-internal priorities: above anything an author can pick.
REENTRANT_PRIORITY = 11
REQUEST_PRIORITY = 12
SYSTEM_PRIORITY = 13

_WIRE_FIELDS = (
    "kind",
    "args",
    "arg",
    "sender",
    "reply_to",
    "priority",
    "message_type",
    "timestamp",
    "message_id",
)


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str):
        raise TypeError(f"message kind must be a str, got {type(kind).__name__}")
    if not kind:
        raise ValueError("message kind must not be empty")
    return kind


def _check_args(args: object) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise TypeError(f"message args must be a dict, got {type(args).__name__}")
    for key in args:
        if not isinstance(key, str):
            raise TypeError(f"message args keys must be str, got {key!r}")
    return dict(args)


def _check_priority(priority: object) -> int:
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(f"message priority must be an int, got {type(priority).__name__}")
    if not UNQUEUED_PRIORITY <= priority <= SYSTEM_PRIORITY:
        raise ValueError(f"message priority must be within {UNQUEUED_PRIORITY}..{SYSTEM_PRIORITY}, got {priority}")
    return priority


def _check_message_type(message_type: object) -> int:
    if isinstance(message_type, bool) or message_type not in MESSAGE_TYPES:
        raise ValueError(f"message_type must be SYNCHRONOUS (0), FUTURE (1) or ONEWAY (2), got {message_type!r}")
    return message_type  # type: ignore[return-value]


def _check_optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"message {name} must be a str or None, got {type(value).__name__}")
    return value


def _check_timestamp(timestamp: object) -> float:
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise TypeError(f"message timestamp must be a number, got {type(timestamp).__name__}")
    return float(timestamp)


def _check_message_id(message_id: object) -> str:
    if message_id is None:
        return os.urandom(16).hex()  # as random as uuid4().hex, a quarter of the cost
    if not isinstance(message_id, str) or not message_id:
        raise TypeError(f"message_id must be a non-empty str, got {message_id!r}")
    return message_id


class Message:
    """One request from a paglet (or a client) to a paglet.

    Owns its kind, arguments and delivery metadata; knows nothing about
    sockets or mailboxes.
    """

    __slots__ = _WIRE_FIELDS

    def __init__(
        self,
        kind: str,
        args: dict[str, Any] | None = None,
        arg: Any = None,
        sender: str | None = None,
        reply_to: str | None = None,
        priority: int = NORMAL_PRIORITY,
        message_type: int = SYNCHRONOUS,
        timestamp: float | None = None,
        message_id: str | None = None,
    ) -> None:
        self.kind = _check_kind(kind)
        self.args = _check_args(args)
        self.arg = arg
        self.sender = _check_optional_str("sender", sender)
        self.reply_to = _check_optional_str("reply_to", reply_to)
        self.priority = _check_priority(priority)
        self.message_type = _check_message_type(message_type)
        self.timestamp = _check_timestamp(timestamp)
        self.message_id = _check_message_id(message_id)

    def get_arg(self, name: str | None = None, default: Any = None) -> Any:
        """Return the single ``arg`` when no name is given, else ``args[name]``."""
        if name is None:
            return self.arg
        return self.args.get(name, default)

    def set_arg(self, name: str, value: Any) -> None:
        """Set the named argument ``args[name]``."""
        if not isinstance(name, str):
            raise TypeError(f"argument name must be a str, got {type(name).__name__}")
        self.args[name] = value

    def same_kind(self, other: Message | str) -> bool:
        """True when ``other`` (a Message or a kind name) has this message's kind."""
        other_kind = other.kind if isinstance(other, Message) else other
        return self.kind == other_kind

    def increase_priority(self) -> None:
        """Raise the priority one step, staying within MIN..MAX."""
        self.priority = _clamp_author_priority(self.priority + 1)

    def decrease_priority(self) -> None:
        """Lower the priority one step, staying within MIN..MAX."""
        self.priority = _clamp_author_priority(self.priority - 1)

    def to_wire(self) -> dict[str, Any]:
        """Return a plain dict of every field; values are left for the codec."""
        payload = {name: getattr(self, name) for name in _WIRE_FIELDS}
        payload["args"] = dict(self.args)
        return payload

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> Message:
        """Build a Message from :meth:`to_wire` output, checking every field.

        Raises :class:`SerializationError` naming the first malformed field.
        """
        if not isinstance(payload, dict):
            raise SerializationError(f"message payload must be a dict, got {type(payload).__name__}")
        if "kind" not in payload:
            raise SerializationError("message payload has no 'kind' field")
        return cls(**_fields_from_wire(payload))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self.to_wire() == other.to_wire()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"Message(kind={self.kind!r}, args={self.args!r}, arg={self.arg!r}, "
            f"sender={self.sender!r}, priority={self.priority}, "
            f"message_type={self.message_type}, message_id={self.message_id!r})"
        )


def _clamp_author_priority(priority: int) -> int:
    return max(MIN_PRIORITY, min(MAX_PRIORITY, priority))


_WIRE_CHECKS: dict[str, Callable[[Any], Any]] = {
    "kind": _check_kind,
    "args": _check_args,
    "sender": lambda value: _check_optional_str("sender", value),
    "reply_to": lambda value: _check_optional_str("reply_to", value),
    "priority": _check_priority,
    "message_type": _check_message_type,
    "timestamp": _check_timestamp,
    "message_id": _check_message_id,
}


def _fields_from_wire(payload: dict[str, Any]) -> dict[str, Any]:
    """Check each present field; a missing optional field takes its default."""
    fields: dict[str, Any] = {}
    for name in _WIRE_FIELDS:
        if name not in payload:
            continue
        check = _WIRE_CHECKS.get(name)
        if check is not None:
            try:
                check(payload[name])
            except (TypeError, ValueError) as exc:
                raise SerializationError(f"message field {name!r} is malformed: {exc}") from exc
        fields[name] = payload[name]
    return fields


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


__all__ = [
    "FUTURE",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "NORMAL_PRIORITY",
    "ONEWAY",
    "REENTRANT_PRIORITY",
    "REQUEST_PRIORITY",
    "SYNCHRONOUS",
    "SYSTEM_PRIORITY",
    "UNQUEUED_PRIORITY",
    "FutureReply",
    "Message",
    "ReplySet",
]

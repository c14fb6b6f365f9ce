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
:class:`FutureReply` and :class:`ReplySet` live in :mod:`paglets.core.replies`
and are re-exported here, their public home.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from paglets.core.errors import SerializationError
from paglets.core.replies import FutureReply, ReplySet

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

#: Reserved kind: the runtime parks the receiving paglet (args: optional ``request``, a
#: DeactivationRequest's wire form) instead of calling ``handle_message``; the reply is
#: ``{"deactivated": True, "proxy": {...}}``.
DEACTIVATE = "__deactivate__"

MAX_MESSAGE_ID = 256  # characters; nodes keep recent ids (and move them with the paglet) to drop duplicates

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
        raise TypeError(f"message_id must be a non-empty str, got {message_id!r:.80}")
    if len(message_id) > MAX_MESSAGE_ID:  # nodes refuse longer ones: they keep ids to drop duplicates
        raise ValueError(f"message_id is {len(message_id)} characters long; the limit is {MAX_MESSAGE_ID}")
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

    def set_arg(self, name: str, value: Any) -> Message:
        """Set the named argument ``args[name]``; returns the message, so calls chain."""
        if not isinstance(name, str):
            raise TypeError(f"argument name must be a str, got {type(name).__name__}")
        self.args[name] = value
        return self

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


__all__ = [
    "DEACTIVATE",
    "FUTURE",
    "MAX_MESSAGE_ID",
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

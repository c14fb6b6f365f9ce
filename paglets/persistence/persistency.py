"""Value types of parked (deactivated) paglets; no I/O here.

A parked paglet is one :class:`InactiveRecord`, written by the record store as
one msgpack map (:meth:`InactiveRecord.to_bytes`):

===================  ==============  ============================================
key                  msgpack type    meaning
===================  ==============  ============================================
``format``           int             record layout version; only ``1`` exists
``envelope``         map             :meth:`PagletEnvelope.to_wire` (state inside)
``policy``           map             :meth:`DeactivationPolicy.to_wire`
``request``          map             :meth:`DeactivationRequest.to_wire`
``deactivated_at``   float           UNIX time the paglet was parked
``queued_messages``  array of maps   :meth:`QueuedMessage.to_wire`, in queue order
``files``            array of maps   file descriptions, kept as given
===================  ==============  ============================================

Reading a record is an edge: :meth:`InactiveRecord.from_bytes` checks every
field and raises :class:`SerializationError` saying which one is wrong, so the
runtime never acts on a half-valid record.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack

from paglets.core.errors import SerializationError
from paglets.core.messages import ONEWAY, SYSTEM_PRIORITY, UNQUEUED_PRIORITY, Message
from paglets.wire.envelope import PagletEnvelope
from paglets.wire.message_codec import decode_message, encode_message

RECORD_FORMAT = 1
SUPPORTED_RECORD_FORMATS = frozenset({RECORD_FORMAT})

_POLICY_FLAGS = ("activate_on_message", "queue_messages_when_inactive", "activate_on_startup")


# ---------------------------------------------------------------- field checks


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SerializationError(f"{what} must be a map, got {type(value).__name__}")
    return value


def _bool_field(payload: dict[str, Any], key: str, what: str, default: bool | None = None) -> bool:
    value = payload.get(key, default)
    if not isinstance(value, bool):
        raise SerializationError(f"{what} field {key!r} must be a bool, got {type(value).__name__}")
    return value


def _str_field(payload: dict[str, Any], key: str, what: str, default: str | None = None) -> str:
    value = payload.get(key, default)
    if not isinstance(value, str):
        raise SerializationError(f"{what} field {key!r} must be a str, got {type(value).__name__}")
    return value


def _time_field(payload: dict[str, Any], key: str, what: str) -> float:
    if key not in payload:
        raise SerializationError(f"{what} has no {key!r} field")
    value = payload[key]
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise SerializationError(f"{what} field {key!r} must be a finite UNIX time >= 0, got {value!r:.80}")
    return float(value)


def _dict_field(payload: dict[str, Any], key: str, what: str) -> dict[str, Any]:
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SerializationError(f"{what} field {key!r} must be a map, got {type(value).__name__}")
    return dict(value)


def _list_field(payload: dict[str, Any], key: str, what: str) -> list[Any]:
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SerializationError(f"{what} field {key!r} must be an array, got {type(value).__name__}")
    return value


def _timestamp(value: object) -> float | None:
    """``activate_at`` as a float UNIX time: a datetime converts (naive means local time)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        try:
            value = value.timestamp()
        except (OverflowError, OSError, ValueError) as exc:  # e.g. a naive year-1 date in local time
            raise ValueError(f"activate_at {value!r} has no UNIX time: {exc}") from None
    elif not _is_number(value):
        raise TypeError(f"activate_at must be a UNIX time, a datetime or None, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"activate_at must be a finite UNIX time >= 0, got {value!r}")
    return float(value)


# ---------------------------------------------------------------- policy and request


@dataclass(frozen=True, slots=True)
class DeactivationPolicy:
    """How a parked paglet wakes up and what happens to messages sent to it meanwhile.

    ``activate_at`` is a wall-clock UNIX time (float); the constructor also takes a
    :class:`datetime.datetime` (aware, or naive meaning local time) and stores its
    timestamp.
    """

    activate_on_message: bool = True
    queue_messages_when_inactive: bool = True
    activate_on_startup: bool = False
    activate_at: float | None = None

    def __post_init__(self) -> None:
        for name in _POLICY_FLAGS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"DeactivationPolicy.{name} must be a bool, got {type(value).__name__}")
        object.__setattr__(self, "activate_at", _timestamp(self.activate_at))

    @classmethod
    def after(cls, seconds: float, **flags: Any) -> DeactivationPolicy:
        """Wake ``seconds`` from now (any other field may be given too)."""
        if isinstance(seconds, bool) or not _is_number(seconds) or not seconds >= 0:
            raise ValueError(f"DeactivationPolicy.after needs a number of seconds >= 0, got {seconds!r}")
        return cls(activate_at=time.time() + float(seconds), **flags)

    def with_changes(self, **changes: Any) -> DeactivationPolicy:
        """A copy with the given fields replaced (checked like the constructor)."""
        return dataclasses.replace(self, **changes)

    def to_wire(self) -> dict[str, Any]:
        return {
            "activate_on_message": self.activate_on_message,
            "queue_messages_when_inactive": self.queue_messages_when_inactive,
            "activate_on_startup": self.activate_on_startup,
            "activate_at": self.activate_at,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> DeactivationPolicy:
        """Build from :meth:`to_wire` output; missing keys default, unknown keys are ignored."""
        what = "deactivation policy"
        payload = _map(payload, what)
        defaults = cls()
        flags = {name: _bool_field(payload, name, what, getattr(defaults, name)) for name in _POLICY_FLAGS}
        activate_at = payload.get("activate_at")
        if activate_at is not None:
            activate_at = _time_field(payload, "activate_at", what)
        return cls(**flags, activate_at=activate_at)


@dataclass(slots=True)
class DeactivationRequest:
    """Why a paglet is being parked, who asked (``"node"``, ``"paglet"``, ``"http"``,
    ``"shutdown"``...) and the policy the asker wants (None: the paglet or node decides).
    """

    reason: str = ""
    source: str = ""
    policy: DeactivationPolicy | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or not isinstance(self.source, str):
            raise TypeError("DeactivationRequest reason and source must be str")
        if self.policy is not None and not isinstance(self.policy, DeactivationPolicy):
            kind = type(self.policy).__name__
            raise TypeError(f"DeactivationRequest.policy must be a DeactivationPolicy or None, got {kind}")
        if not isinstance(self.metadata, dict):
            raise TypeError(f"DeactivationRequest.metadata must be a dict, got {type(self.metadata).__name__}")

    def to_wire(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "source": self.source,
            "policy": None if self.policy is None else self.policy.to_wire(),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_wire(cls, payload: Any) -> DeactivationRequest:
        """Build from :meth:`to_wire` output; ``None`` gives a default request."""
        if payload is None:
            return cls()
        what = "deactivation request"
        payload = _map(payload, what)
        policy = payload.get("policy")
        return cls(
            reason=_str_field(payload, "reason", what, ""),
            source=_str_field(payload, "source", what, ""),
            policy=None if policy is None else DeactivationPolicy.from_wire(policy),
            metadata=_dict_field(payload, "metadata", what),
        )


# ---------------------------------------------------------------- queued messages


@dataclass(slots=True)
class QueuedMessage:
    """A message that arrived while its paglet was parked, kept to deliver on activation.

    ``body`` is the message as :func:`paglets.wire.message_codec.encode_message`
    produced it; the other fields are copied out so the queue can be ordered and
    deduplicated without decoding bodies.
    """

    body: bytes
    oneway: bool
    priority: int
    message_id: str
    queued_at: float

    @classmethod
    def from_message(
        cls, message: Message, *, oneway: bool | None = None, queued_at: float | None = None
    ) -> QueuedMessage:
        """Queue ``message`` now (or at ``queued_at``); ``oneway`` defaults to whether its type is ONEWAY."""
        if oneway is None:
            oneway = message.message_type == ONEWAY
        when = time.time() if queued_at is None else float(queued_at)
        return cls(encode_message(message), oneway, message.priority, message.message_id, when)

    def message(self) -> Message:
        """Decode the body back into a :class:`Message` (SerializationError if it is corrupt)."""
        return decode_message(self.body)

    def to_wire(self) -> dict[str, Any]:
        return {
            "body": self.body,
            "oneway": self.oneway,
            "priority": self.priority,
            "message_id": self.message_id,
            "queued_at": self.queued_at,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> QueuedMessage:
        what = "queued message"
        payload = _map(payload, what)
        body = payload.get("body")
        if not isinstance(body, bytes):
            raise SerializationError(f"{what} field 'body' must be bytes, got {type(body).__name__}")
        priority = payload.get("priority")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise SerializationError(f"{what} field 'priority' must be an int, got {type(priority).__name__}")
        if not UNQUEUED_PRIORITY <= priority <= SYSTEM_PRIORITY:
            raise SerializationError(
                f"{what} field 'priority' must be within {UNQUEUED_PRIORITY}..{SYSTEM_PRIORITY}, got {priority}"
            )
        return cls(
            body=body,
            oneway=_bool_field(payload, "oneway", what),
            priority=priority,
            message_id=_str_field(payload, "message_id", what),
            queued_at=_time_field(payload, "queued_at", what),
        )


# ---------------------------------------------------------------- the record


@dataclass(slots=True)
class InactiveRecord:
    """Everything kept on disk for one parked paglet: its envelope, how it wakes,
    why it was parked, the messages queued for it and its files."""

    envelope: PagletEnvelope
    policy: DeactivationPolicy
    request: DeactivationRequest
    deactivated_at: float
    queued_messages: list[QueuedMessage] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    format: int = RECORD_FORMAT

    @property
    def agent_id(self) -> str:
        return self.envelope.agent_id

    def to_wire(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "envelope": self.envelope.to_wire(),
            "policy": self.policy.to_wire(),
            "request": self.request.to_wire(),
            "deactivated_at": float(self.deactivated_at),
            "queued_messages": [queued.to_wire() for queued in self.queued_messages],
            "files": [dict(entry) for entry in self.files],
        }

    @classmethod
    def from_wire(cls, payload: Any) -> InactiveRecord:
        """Build from :meth:`to_wire` output, checking every field."""
        what = "inactive record"
        payload = _map(payload, what)
        record_format = payload.get("format")
        if isinstance(record_format, bool) or record_format not in SUPPORTED_RECORD_FORMATS:
            raise SerializationError(
                f"{what} has format {record_format!r:.40}; this version reads {sorted(SUPPORTED_RECORD_FORMATS)}"
            )
        if "envelope" not in payload:
            raise SerializationError(f"{what} has no 'envelope' field")
        try:
            envelope = PagletEnvelope.from_wire(payload["envelope"])
        except SerializationError as exc:
            raise SerializationError(f"{what} field 'envelope': {exc}") from None
        if "policy" not in payload:
            raise SerializationError(f"{what} has no 'policy' field")
        files = _list_field(payload, "files", what)
        for index, entry in enumerate(files):
            if not isinstance(entry, dict):
                raise SerializationError(f"{what} field 'files[{index}]' must be a map, got {type(entry).__name__}")
        return cls(
            envelope=envelope,
            policy=DeactivationPolicy.from_wire(payload["policy"]),
            request=DeactivationRequest.from_wire(payload.get("request")),
            deactivated_at=_time_field(payload, "deactivated_at", what),
            queued_messages=[QueuedMessage.from_wire(item) for item in _list_field(payload, "queued_messages", what)],
            files=[dict(entry) for entry in files],
            format=record_format,
        )

    def to_bytes(self) -> bytes:
        """The record as one msgpack map; metadata and file entries must be plain msgpack values."""
        try:
            return msgpack.packb(self.to_wire(), use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"inactive record of {self.agent_id!r} cannot be encoded: {exc}") from None

    @classmethod
    def from_bytes(cls, data: bytes) -> InactiveRecord:
        """Decode and check a record written by :meth:`to_bytes`."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SerializationError(f"inactive record must be bytes, got {type(data).__name__}")
        if not data:
            raise SerializationError("inactive record is empty")
        try:
            payload = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # truncated or garbage bytes: msgpack raises several types
            raise SerializationError(f"inactive record is not valid msgpack ({len(data)} bytes): {exc}") from None
        return cls.from_wire(payload)


__all__ = [
    "RECORD_FORMAT",
    "DeactivationPolicy",
    "DeactivationRequest",
    "InactiveRecord",
    "QueuedMessage",
]

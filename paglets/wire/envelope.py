"""PagletEnvelope: a paglet in transit — class path, state and lifecycle metadata.

An envelope arrives from other nodes (and from disk): :meth:`PagletEnvelope.from_wire`
checks every field's type and size (:mod:`paglets.wire.limits`): names,
addresses and class names are bounded, and so are the message ids of
``metadata["seen"]``, which the paglet keeps (and takes along on its next move).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from paglets.core.errors import ProtocolError, SerializationError
from paglets.core.runtime_values import EnvelopeKind
from paglets.wire.limits import MAX_ADDRESS, MAX_AGENT_ID, MAX_CLASS_NAME, MAX_TEXT, check_value

_TEXT_LIMITS = {
    "agent_id": MAX_AGENT_ID,
    "agent_class_name": MAX_CLASS_NAME,
    "state_class_name": MAX_CLASS_NAME,
    "source_host_name": MAX_ADDRESS,
    "source_host_address": MAX_ADDRESS,
    "target_host_name": MAX_ADDRESS,
    "target_host_address": MAX_ADDRESS,
    "clone_of": MAX_AGENT_ID,
}


@dataclass(slots=True)
class PagletEnvelope:
    """What moves when a paglet moves. ``state`` is codec-encoded bytes."""

    kind: EnvelopeKind
    agent_id: str
    agent_class_name: str
    state_class_name: str
    state: bytes
    source_host_name: str
    source_host_address: str
    target_host_name: str
    target_host_address: str
    clone_of: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = EnvelopeKind(self.kind)

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "agent_id": self.agent_id,
            "agent_class_name": self.agent_class_name,
            "state_class_name": self.state_class_name,
            "state": self.state,
            "source_host_name": self.source_host_name,
            "source_host_address": self.source_host_address,
            "target_host_name": self.target_host_name,
            "target_host_address": self.target_host_address,
            "clone_of": self.clone_of,
            "metadata": self.metadata,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> PagletEnvelope:
        if not isinstance(payload, dict):
            raise SerializationError("envelope must be a map")
        try:
            envelope = cls(
                kind=EnvelopeKind(payload["kind"]),
                agent_id=_text(payload, "agent_id"),
                agent_class_name=_text(payload, "agent_class_name"),
                state_class_name=_text(payload, "state_class_name", ""),
                state=_state_bytes(payload.get("state")),
                source_host_name=_text(payload, "source_host_name", ""),
                source_host_address=_text(payload, "source_host_address", ""),
                target_host_name=_text(payload, "target_host_name", ""),
                target_host_address=_text(payload, "target_host_address", ""),
                clone_of=_optional_text(payload, "clone_of"),
                metadata=_metadata(payload.get("metadata")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SerializationError(f"malformed envelope: {exc}") from None
        return envelope

    def to_bytes(self) -> bytes:
        return msgpack.packb(self.to_wire(), use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> PagletEnvelope:
        try:
            payload = msgpack.unpackb(data, raw=False)
        except Exception as exc:  # any decoding failure is the sender's fault
            raise SerializationError(f"envelope is not valid msgpack: {exc}") from None
        return cls.from_wire(payload)


def _state_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, bytes):
        raise SerializationError(f"envelope state must be bytes, got {type(value).__name__}")
    return value


def _optional_text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise SerializationError(f"envelope field {key!r} must be a string or nil, got {type(value).__name__}")
    return value if value is None else _bounded(key, value)


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):  # dict() would also take a list of pairs, or a str of two characters
        raise SerializationError(f"envelope field 'metadata' must be a map, got {type(value).__name__}")
    seen = value.get("seen")
    if seen is not None:
        if not isinstance(seen, list) or not all(isinstance(mid, str) for mid in seen):
            raise SerializationError("envelope metadata 'seen' must be a list of message ids")
        try:
            check_value("envelope metadata", "seen", seen)
        except ProtocolError as exc:
            raise SerializationError(str(exc)) from None
    return dict(value)


def _text(payload: dict[str, Any], key: str, default: str | None = None) -> str:
    value = payload.get(key, default)
    if not isinstance(value, str):
        raise SerializationError(f"envelope field {key!r} must be a string")
    return _bounded(key, value)


def _bounded(key: str, value: str) -> str:
    limit = _TEXT_LIMITS.get(key, MAX_TEXT)
    if len(value) > limit:
        raise SerializationError(f"envelope field {key!r} is {len(value)} characters long; the limit is {limit}")
    return value


__all__ = ["PagletEnvelope"]

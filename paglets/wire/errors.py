"""Errors on the wire: ``{"type": name, "message": text}`` both ways.

A known name becomes the matching :mod:`paglets.core.errors` class on the
receiving side; anything else (a ``ValueError`` raised by a handler, say)
becomes :class:`RemoteHostError` carrying the remote type and message.
"""

from __future__ import annotations

from typing import Any

from paglets.core import errors as _errors

MAX_MESSAGE_ID = 256  # characters of a MessageQueuedError's message id kept from a peer

_KNOWN: dict[str, type[_errors.PagletError]] = {
    name: getattr(_errors, name) for name in _errors.__all__ if isinstance(getattr(_errors, name), type)
}


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """Describe ``exc`` for the other side."""
    if isinstance(exc, _errors.RemoteHostError):
        return {"type": "RemoteHostError", "message": exc.remote_message, "remote_type": exc.remote_type}
    wire: dict[str, Any] = {"type": _wire_name(exc), "message": str(exc)}
    if isinstance(exc, _errors.NodeUnreachableError):
        wire["address"] = exc.address
        wire["op"] = exc.op
    elif isinstance(exc, _errors.MessageQueuedError):
        wire["message_id"] = exc.message_id
    return wire


def _wire_name(exc: BaseException) -> str:
    """The nearest paglets error class the other side knows, else the type's own name."""
    if isinstance(exc, _errors.PagletError):
        for cls in type(exc).__mro__:
            if _KNOWN.get(cls.__name__) is cls:
                return cls.__name__
    return type(exc).__name__


def error_from_wire(wire: Any) -> _errors.PagletError:
    """Rebuild the exception ``error_to_wire`` described (never raises itself)."""
    if not isinstance(wire, dict):
        return _errors.ProtocolError(f"malformed error payload: {wire!r:.200}")
    name = str(wire.get("type") or "Exception")
    message = str(wire.get("message") or "")
    if name == "RemoteHostError":
        return _errors.RemoteHostError(message, remote_type=str(wire.get("remote_type") or "Exception"))
    cls = _KNOWN.get(name)
    if cls is None:
        return _errors.RemoteHostError(message, remote_type=name)
    if issubclass(cls, _errors.NodeUnreachableError):
        return cls(message, address=str(wire.get("address") or ""), op=str(wire.get("op") or ""))
    if issubclass(cls, _errors.MessageQueuedError):
        return cls(message, message_id=_text(wire.get("message_id"), MAX_MESSAGE_ID))
    return cls(message)


def _text(value: Any, limit: int) -> str:
    """A short string field from a peer: anything else is dropped, overlong is cut."""
    return value[:limit] if isinstance(value, str) else ""


__all__ = ["error_from_wire", "error_to_wire"]

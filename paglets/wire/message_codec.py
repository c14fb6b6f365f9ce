"""Messages on the wire: a compact msgpack array, values through the state codec.

``[kind, args, arg, sender, reply_to, priority, message_type, timestamp, message_id]``
"""

from __future__ import annotations

from paglets.core.errors import SerializationError
from paglets.core.messages import Message
from paglets.wire import codec

_FIELDS = ("kind", "args", "arg", "sender", "reply_to", "priority", "message_type", "timestamp", "message_id")


def encode_message(message: Message) -> bytes:
    m = message
    fields = [m.kind, m.args, m.arg, m.sender, m.reply_to, m.priority, m.message_type, m.timestamp, m.message_id]
    return codec.encode(fields, root=f"message[{m.kind!r}]")


def decode_message(data: bytes) -> Message:
    values = codec.decode(data)
    if not isinstance(values, list) or len(values) != len(_FIELDS):
        raise SerializationError("message: expected an array of 9 fields")
    try:
        return Message.from_wire(dict(zip(_FIELDS, values, strict=True)))
    except OverflowError as exc:  # a codec big int (beyond 64 bits) where a float is due: the timestamp
        raise SerializationError(f"message: a number is out of range: {exc}") from None


__all__ = ["decode_message", "encode_message"]

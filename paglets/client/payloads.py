"""What a client puts into a request's frames and takes out of a reply's: ``create`` and results.

Shared by :class:`~paglets.client.host_client.HostClient`, the node (which
creates paglets in its own process the same way) and a worker's context.
"""

from __future__ import annotations

from typing import Any

from paglets.core.errors import SerializationError
from paglets.wire import codec, protocol


def create_request(
    cls: type[Any] | str,
    state: Any,
    init: Any,
    agent_id: str | None,
) -> tuple[dict[str, Any], tuple[bytes, ...]]:
    """Header and payload of a ``create`` request (also used for in-node creation)."""
    class_name = cls if isinstance(cls, str) else codec.class_name(cls)
    header: dict[str, Any] = {"cls": class_name}
    if agent_id is not None:
        header["agent"] = protocol.validate_agent_id(agent_id)
    if isinstance(state, dict):
        header["plain"] = True
    if state is not None and not isinstance(state, dict) and not hasattr(state, "__dataclass_fields__"):
        raise SerializationError(f"state must be a dataclass instance or a dict, got {type(state).__name__}")
    state_bytes = b"" if state is None else codec.encode(state, root="state")
    init_bytes = b"" if init is None else codec.encode(init, root="init")
    return header, (state_bytes, init_bytes)


def decode_result(reply: protocol.Reply) -> Any:
    return codec.decode(reply.payload[0]) if reply.payload and reply.payload[0] else None


__all__ = ["create_request", "decode_result"]

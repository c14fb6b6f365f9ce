"""Node addresses: checking what a user typed, and where to connect for it.

A node is addressed ``tcp://HOST:PORT``, or ``relay+tcp://RELAY:PORT/NODE``
when it sits behind a relay (:mod:`paglets.wire.relay`).
"""

from __future__ import annotations

from paglets.wire import relay
from paglets.wire.protocol import AGENT_ID_PATTERN

ADDRESS_FORMS = "tcp://HOST:PORT or relay+tcp://HOST:PORT/NODE"

_checked: dict[str, str] = {}


def check_address(address: str) -> str:
    """Normalise a node address ``tcp://HOST:PORT``; ValueError when it is not one."""
    known = _checked.get(address) if isinstance(address, str) else None
    if known is not None:
        return known
    if len(_checked) > 10_000:
        _checked.clear()
    _checked[address] = text = _parse_address(address)
    return text


def _parse_address(address: str) -> str:
    if not isinstance(address, str):
        raise ValueError(f"node address must be a string, got {type(address).__name__}")
    text = address.strip().rstrip("/")
    relayed = text.startswith("relay+tcp://")
    if relayed:
        text, _, node = text[len("relay+") :].rpartition("/")
        if not AGENT_ID_PATTERN.match(node):
            raise ValueError(f"node address {address!r} must look like {ADDRESS_FORMS}")
    if not text.startswith("tcp://"):
        raise ValueError(f"node address {address!r} must look like {ADDRESS_FORMS}")
    host, sep, port = text[len("tcp://") :].rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"node address {address!r} must look like {ADDRESS_FORMS}")
    return f"relay+{text}/{node}" if relayed else text


def route(address: str) -> tuple[str, list[bytes]]:
    """Where to connect for a (checked) node address, and the frames that go before each request.

    A node behind a relay is reached by connecting to the relay and
    prefixing ``RLY1 to NAME``; the relay hands back the node's reply as is.
    """
    if not address.startswith("relay+"):
        return address, []
    endpoint, _, node = address[len("relay+") :].rpartition("/")
    return endpoint, relay.to_prefix(node)


__all__ = ["ADDRESS_FORMS", "check_address", "route"]

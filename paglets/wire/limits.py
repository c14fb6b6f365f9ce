"""Size limits on what arrives from outside a process: header strings, lists, maps, envelopes.

Every string a peer puts in a header (an agent id, a message id, a class
name, an address, a token...) is checked against a limit where the frame
enters, before anything keeps it: a 4 MiB message id would otherwise live
in a paglet's list of seen messages, travel with it and make it impossible
to move. The limits are far above any value paglets itself makes; the
table in ``docs/protocol.md`` lists them.

:func:`check_text` checks one named string, :func:`check_value` a list or
map and everything inside it; both raise
:class:`~paglets.core.errors.ProtocolError` naming the field, its size and
the limit.
"""

from __future__ import annotations

from typing import Any

from paglets.core.errors import ProtocolError
from paglets.core.messages import MAX_MESSAGE_ID

MAX_HEADER_BYTES = 1024 * 1024  # a whole front header frame (msgpack), checked before it is decoded
MAX_AGENT_ID = 128
MAX_CLASS_NAME = 512  # "package.module:Qual.Name"
MAX_ADDRESS = 512  # tcp://HOST:PORT, relay+tcp://RELAY:PORT/NAME
MAX_NAME = 128  # node names, tokens, versions, capabilities, hashes, kinds
MAX_KEY = 1024  # an API key
MAX_TEXT = 4096  # any other string, also inside lists and maps
MAX_ITEMS = 256  # any list or map, also nested
MAX_DEPTH = 8  # lists and maps inside lists and maps
MAX_SEEN_IDS = 4096  # message ids an envelope may say its paglet has seen

# The longest string each named field may hold (front and back headers, envelopes).
TEXT_LIMITS: dict[str, int] = {
    "agent": MAX_AGENT_ID,
    "mid": MAX_MESSAGE_ID,
    "cls": MAX_CLASS_NAME,
    "kind": MAX_NAME,
    "token": MAX_NAME,
    "source": MAX_ADDRESS,
    "target": MAX_ADDRESS,
    "destination": MAX_ADDRESS,
    "version": MAX_NAME,
    "srcver": MAX_NAME,  # the code version of the node a paglet moves from (prepare)
    "sha": MAX_NAME,
    "key": MAX_KEY,
    "name": MAX_ADDRESS,  # a file name, or a node's name or address (host_status)
    "hook": MAX_NAME,
    "mode": MAX_NAME,
    "reason": MAX_TEXT,
    "cap": MAX_NAME,  # a service capability (lookup, services)
    "scope": MAX_NAME,
    "owner": MAX_AGENT_ID,  # the paglet that uploads an artifact
    "service": MAX_NAME,  # a service name (lease)
    "lease": MAX_NAME,  # a lease id (unlease)
}
# The most items each named list field may hold (their strings: ITEM_LIMITS, else MAX_TEXT).
ITEM_COUNTS: dict[str, int] = {"caps": 64, "table": 4096, "seen": MAX_SEEN_IDS}
ITEM_LIMITS: dict[str, int] = {"caps": MAX_NAME, "seen": MAX_MESSAGE_ID}


def check_text(what: str, name: str, value: str) -> str:
    """``value`` if it is no longer than the limit of field ``name``; else a ProtocolError."""
    limit = TEXT_LIMITS.get(name, MAX_TEXT)
    if len(value) > limit:
        raise ProtocolError(f"{what}: field {name!r} is {len(value)} characters long; the limit is {limit}")
    return value


def check_value(what: str, name: str, value: Any) -> Any:
    """Check a string, list or map field and everything inside it; other values pass."""
    if isinstance(value, str):
        return check_text(what, name, value)
    if isinstance(value, (list, dict)):
        count = ITEM_COUNTS.get(name, MAX_ITEMS)
        if len(value) > count:
            raise ProtocolError(f"{what}: field {name!r} has {len(value)} items; the limit is {count}")
        _check_nested(what, name, value, ITEM_LIMITS.get(name, MAX_TEXT), 1)
    return value


def _check_nested(what: str, name: str, value: Any, text_limit: int, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ProtocolError(f"{what}: field {name!r} nests lists and maps deeper than the limit of {MAX_DEPTH}")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        for part in (key, item):
            if isinstance(part, (str, bytes)):
                if len(part) > text_limit:
                    raise ProtocolError(
                        f"{what}: field {name!r} holds a value of {len(part)} characters; the limit is {text_limit}"
                    )
            elif isinstance(part, (list, dict)):
                if len(part) > MAX_ITEMS:
                    raise ProtocolError(
                        f"{what}: field {name!r} holds a list or map of {len(part)} items; the limit is {MAX_ITEMS}"
                    )
                _check_nested(what, name, part, MAX_TEXT, depth + 1)


__all__ = [
    "ITEM_COUNTS",
    "ITEM_LIMITS",
    "MAX_ADDRESS",
    "MAX_AGENT_ID",
    "MAX_CLASS_NAME",
    "MAX_DEPTH",
    "MAX_HEADER_BYTES",
    "MAX_ITEMS",
    "MAX_KEY",
    "MAX_NAME",
    "MAX_SEEN_IDS",
    "MAX_TEXT",
    "TEXT_LIMITS",
    "check_text",
    "check_value",
]

"""The relay protocol: paglets-relay's ROUTER, the nodes behind it and their clients.

A node that cannot accept connections connects a DEALER to the relay and
registers its node name with ``hello``; others address it as
``relay+tcp://HOST:PORT/NAME``. Every relay frame set starts with
``RELAY_MAGIC``:

==========================================  ==========  =====================================
frames (after the ROUTER's routing id)      direction   meaning
==========================================  ==========  =====================================
``RLY1 to NAME`` + a front request          client->R   deliver to node NAME
``RLY1 from CLIENT`` + a front request      R->node     a request relayed for CLIENT
``RLY1 reply CLIENT`` + a front reply       node->R     the answer; R sends the reply alone
``RLY1 hello {name, secret, key?}``         node->R     register / heartbeat (every beat)
``RLY1 welcome {relay, epoch}``             R->node     the hello was accepted
``RLY1 refused {reason}``                   R->node     the hello was refused, and why
==========================================  ==========  =====================================

A name belongs to the connection that registered it. ``secret`` is the
node's registration secret (kept in its data directory); the relay
remembers a hash of it per name, durably, at the first registration, and
from then on gives the name only to a hello that carries the same secret
(plus the relay's API key ``key`` if it has one). A second connection that
proves the name — the same node restarted — takes it over; any other
connection claiming it is answered ``refused`` and receives nothing. The
routing id a node's DEALER uses is random and says nothing: the relay routes
by the connection that registered, never by a routing id a peer chose.

``CLIENT`` is an opaque token the relay gives each (client, node) pair — a
node never learns a client's routing id; the front request and reply inside
are passed on untouched (:mod:`paglets.wire.protocol`
validates them where they are served). The relay passes a ``reply`` on only
from the registered connection of a node, and only to a client that sent
that node a request. A ``send`` for a node that is briefly away is queued on
disk (fsync'd) and answered with ``{"queued": true, "relay": ...}``; the
queue is delivered in order when the node is back. Other requests for an
away node fail with ``NodeUnreachableError``.

A plain front request sent to the relay itself (a client that took the
relay's address for a node's) is answered with the front error
:func:`not_a_node_error`: a ``NodeUnreachableError`` with ``"reached":
"relay"``, which the client turns into an error naming the address it used.

Relay frames are built (``*_frames``, ``to_prefix``) and parsed
(:func:`parse_at_relay`, :func:`parse_at_node`) only in this module. A parser
raises ``ProtocolError`` for a frame set that is not a well-formed relay frame
set; the relay and the node drop those without an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paglets.core.errors import ProtocolError
from paglets.wire.protocol import AGENT_ID_PATTERN, pack, unpack_map

RELAY_MAGIC = b"RLY1"
TO = b"to"
FROM = b"from"
REPLY = b"reply"
HELLO = b"hello"
WELCOME = b"welcome"
REFUSED = b"refused"

MAX_HELLO_BYTES = 16 * 1024  # name, secret and key: a hello is small
MAX_KEY_CHARS = 4096
SECRET_CHARS = (32, 256)  # a registration secret's length bounds
MAX_REASON_CHARS = 500


# -- what the relay receives (its ROUTER adds the sender's routing id first) ------------------
@dataclass(slots=True)
class ToNode:
    """``RLY1 to NAME`` + request: ``client`` asks for ``request`` to be delivered to node ``node``."""

    client: bytes
    node: str
    request: list[bytes]


@dataclass(slots=True)
class NodeReply:
    """``RLY1 reply CLIENT`` + reply: the connection ``source`` answers ``client``."""

    source: bytes
    client: bytes
    reply: list[bytes]


@dataclass(slots=True)
class Hello:
    """``RLY1 hello {name, secret, key?}``: a connection registers (or beats) as node ``name``.

    ``secret`` is the node's registration secret, None when the hello has
    none usable; ``key`` is the relay's API key as the node was given it.
    """

    name: str
    secret: str | None
    key: str | None


# -- what a node receives on its DEALER to the relay ----------------------------------------------
@dataclass(slots=True)
class FromClient:
    """``RLY1 from CLIENT`` + request: a front request the relay passes on for ``client``."""

    client: bytes
    request: list[bytes]


@dataclass(slots=True)
class Welcome:
    """``RLY1 welcome {relay, epoch}``; either is None when the body is garbled (still a sign of life)."""

    relay: str | None
    epoch: str | None


@dataclass(slots=True)
class Refused:
    """``RLY1 refused {reason}``: the relay did not accept our hello; ``reason`` says why."""

    reason: str


# -- builders ----------------------------------------------------------------------------------------
def to_prefix(node: str) -> list[bytes]:
    """The frames a client puts before a front request for node ``node`` behind a relay."""
    return [RELAY_MAGIC, TO, node.encode()]


def from_frames(client: bytes, request: list[bytes]) -> list[bytes]:
    """What the relay sends a node (after the node's routing id): ``request`` relayed for ``client``."""
    return [RELAY_MAGIC, FROM, client, *request]


def reply_frames(client: bytes, reply: list[bytes]) -> list[bytes]:
    """What a node sends the relay to answer ``client`` with the front reply ``reply``."""
    return [RELAY_MAGIC, REPLY, client, *reply]


def hello_frames(name: str, secret: str, api_key: str | None) -> list[bytes]:
    """A node's registration and heartbeat (the same frames every beat)."""
    body = {"name": name, "secret": secret, **({"key": api_key} if api_key else {})}
    return [RELAY_MAGIC, HELLO, pack(body)]


def welcome_frames(relay: str, epoch: str) -> list[bytes]:
    """The relay's answer to an accepted hello (after the node's routing id)."""
    return [RELAY_MAGIC, WELCOME, pack({"relay": relay, "epoch": epoch})]


def refused_frames(reason: str) -> list[bytes]:
    """The relay's answer to a refused hello (after the sender's routing id)."""
    return [RELAY_MAGIC, REFUSED, pack({"reason": reason[:MAX_REASON_CHARS]})]


NOT_A_NODE = "this is a paglets relay; address a node behind it as relay+tcp://HOST:PORT/NODE"


def not_a_node_error(op: str) -> dict[str, Any]:
    """The relay's answer (a front error) to a plain front request ``op`` sent to it as if it were a node."""
    return {"type": "NodeUnreachableError", "message": NOT_A_NODE, "address": "", "op": op, "reached": "relay"}


def reached_a_relay(error: dict[str, Any]) -> bool:
    """True when a front error is :func:`not_a_node_error`'s: the address a client used is a relay's."""
    return error.get("reached") == "relay"


# -- parsers -----------------------------------------------------------------------------------------
def parse_at_relay(frames: list[bytes]) -> ToNode | NodeReply | Hello:
    """Validate a frame set as the relay's ROUTER receives it (``frames[0]`` is the sender's routing id)."""
    if len(frames) < 3 or frames[1] != RELAY_MAGIC:
        raise ProtocolError("not a relay frame set (too short, or no RLY1 magic)")
    source, kind = frames[0], frames[2]
    if kind == TO:
        if len(frames) < 5:
            raise ProtocolError("relay 'to': expected a node name and a request")
        return ToNode(client=source, node=_node_name(frames[3], "relay 'to'"), request=frames[4:])
    if kind == REPLY:
        if len(frames) < 5:
            raise ProtocolError("relay 'reply': expected a client and a reply")
        return NodeReply(source=source, client=frames[3], reply=frames[4:])
    if kind == HELLO:
        if len(frames) != 4:
            raise ProtocolError("relay 'hello': expected exactly one body frame")
        return _parse_hello(frames[3])
    raise ProtocolError(f"unknown relay frame kind {kind!r:.40}")


def _node_name(raw: bytes, what: str) -> str:
    name = raw.decode("utf-8", "replace") if len(raw) <= 128 else ""
    if not AGENT_ID_PATTERN.match(name):
        raise ProtocolError(f"{what}: invalid node name {raw!r:.80}")
    return name


def _parse_hello(body: bytes) -> Hello:
    if len(body) > MAX_HELLO_BYTES:
        raise ProtocolError(f"relay hello: {len(body)} bytes, over the {MAX_HELLO_BYTES} a hello may have")
    header = unpack_map(body, "relay hello")
    name = header.get("name")
    if not isinstance(name, str) or not AGENT_ID_PATTERN.match(name):
        raise ProtocolError(f"relay hello: invalid node name {name!r:.80}")
    secret, key = header.get("secret"), header.get("key")
    low, high = SECRET_CHARS
    usable = isinstance(secret, str) and low <= len(secret) <= high and secret.isascii() and secret.isprintable()
    return Hello(
        name=name,
        secret=secret if usable else None,
        key=key if isinstance(key, str) and len(key) <= MAX_KEY_CHARS else None,
    )


def parse_at_node(frames: list[bytes]) -> FromClient | Welcome | Refused:
    """Validate a frame set as a node's DEALER to the relay receives it."""
    if len(frames) < 2 or frames[0] != RELAY_MAGIC:
        raise ProtocolError("not a relay frame set (too short, or no RLY1 magic)")
    kind = frames[1]
    if kind == FROM:
        if len(frames) < 4:
            raise ProtocolError("relay 'from': expected a client and a request")
        return FromClient(client=frames[2], request=frames[3:])
    if kind == WELCOME:
        return _parse_welcome(frames[2:])
    if kind == REFUSED:
        return _parse_refused(frames[2:])
    raise ProtocolError(f"unknown relay frame kind {kind!r:.40}")


def _parse_welcome(rest: list[bytes]) -> Welcome:
    try:
        info = unpack_map(rest[0], "relay welcome") if rest else {}
    except ProtocolError:  # a garbled welcome is still a sign of life
        info = {}
    relay, epoch = info.get("relay"), info.get("epoch")
    return Welcome(
        relay=relay[:200] if isinstance(relay, str) else None, epoch=epoch[:200] if isinstance(epoch, str) else None
    )


def _parse_refused(rest: list[bytes]) -> Refused:
    try:
        info = unpack_map(rest[0], "relay refused") if rest else {}
    except ProtocolError:  # still a refusal: say so, without a reason
        info = {}
    reason = info.get("reason")
    text = reason[:MAX_REASON_CHARS] if isinstance(reason, str) and reason else "(the relay gave no reason)"
    return Refused(reason=text)


__all__ = [
    "FROM",
    "HELLO",
    "NOT_A_NODE",
    "REFUSED",
    "RELAY_MAGIC",
    "REPLY",
    "TO",
    "WELCOME",
    "FromClient",
    "Hello",
    "NodeReply",
    "Refused",
    "ToNode",
    "Welcome",
    "from_frames",
    "hello_frames",
    "not_a_node_error",
    "parse_at_node",
    "parse_at_relay",
    "reached_a_relay",
    "refused_frames",
    "reply_frames",
    "to_prefix",
    "welcome_frames",
]

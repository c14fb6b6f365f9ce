"""The relay protocol: paglets-relay's ROUTER, the nodes behind it and their clients.

A node that cannot accept connections connects a DEALER to the relay with
its node name as routing id; others address it as ``relay+tcp://HOST:PORT/NAME``.
Every relay frame set starts with ``RELAY_MAGIC``:

==========================================  ==========  =====================================
frames (after the ROUTER's routing id)      direction   meaning
==========================================  ==========  =====================================
``RLY1 to NAME`` + a front request          client->R   deliver to node NAME
``RLY1 from CLIENT`` + a front request      R->node     a request relayed for CLIENT
``RLY1 reply CLIENT`` + a front reply       node->R     the answer; R sends the reply alone
``RLY1 hello {name, key?}``                 node->R     register / heartbeat (every beat)
``RLY1 welcome {relay, epoch}``             R->node     heartbeat answer
==========================================  ==========  =====================================

``CLIENT`` is the routing id the relay's ROUTER gave the client; the front
request and reply inside are passed on untouched (:mod:`paglets.wire.protocol`
validates them where they are served). A ``send`` for a node that is briefly
away is queued on disk (fsync'd) and answered with ``{"queued": true,
"relay": ...}``; the queue is delivered in order when the node is back. Other
requests for an away node fail with ``NodeUnreachableError``.

Relay frames are built (``*_frames``, ``to_prefix``) and parsed
(:func:`parse_at_relay`, :func:`parse_at_node`) only in this module. A parser
raises ``ProtocolError`` for a frame set that is not a well-formed relay frame
set; the relay and the node drop those without an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from paglets.core.errors import ProtocolError
from paglets.wire.protocol import AGENT_ID_PATTERN, pack, unpack_map

RELAY_MAGIC = b"RLY1"
TO = b"to"
FROM = b"from"
REPLY = b"reply"
HELLO = b"hello"
WELCOME = b"welcome"


# -- what the relay receives (its ROUTER adds the sender's routing id first) ------------------
@dataclass(slots=True)
class ToNode:
    """``RLY1 to NAME`` + request: ``client`` asks for ``request`` to be delivered to node ``node``."""

    client: bytes
    node: str
    request: list[bytes]


@dataclass(slots=True)
class NodeReply:
    """``RLY1 reply CLIENT`` + reply: node ``node`` (its routing id) answers ``client``."""

    node: bytes
    client: bytes
    reply: list[bytes]


@dataclass(slots=True)
class Hello:
    """``RLY1 hello {name, key?}``: node ``name`` registers (or beats); ``key`` is its API key."""

    name: str
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


def hello_frames(name: str, api_key: str | None) -> list[bytes]:
    """A node's registration and heartbeat (the same frames every beat)."""
    return [RELAY_MAGIC, HELLO, pack({"name": name, **({"key": api_key} if api_key else {})})]


def welcome_frames(relay: str, epoch: str) -> list[bytes]:
    """The relay's answer to a hello (after the node's routing id)."""
    return [RELAY_MAGIC, WELCOME, pack({"relay": relay, "epoch": epoch})]


# -- parsers -----------------------------------------------------------------------------------------
def parse_at_relay(frames: list[bytes]) -> ToNode | NodeReply | Hello:
    """Validate a frame set as the relay's ROUTER receives it (``frames[0]`` is the sender's routing id)."""
    if len(frames) < 3 or frames[1] != RELAY_MAGIC:
        raise ProtocolError("not a relay frame set (too short, or no RLY1 magic)")
    source, kind = frames[0], frames[2]
    if kind == TO:
        if len(frames) < 5:
            raise ProtocolError("relay 'to': expected a node name and a request")
        return ToNode(client=source, node=frames[3].decode("utf-8", "replace"), request=frames[4:])
    if kind == REPLY:
        if len(frames) < 5:
            raise ProtocolError("relay 'reply': expected a client and a reply")
        return NodeReply(node=source, client=frames[3], reply=frames[4:])
    if kind == HELLO:
        if len(frames) < 4:
            raise ProtocolError("relay 'hello': expected a body")
        return _parse_hello(source, frames[3])
    raise ProtocolError(f"unknown relay frame kind {kind!r:.40}")


def _parse_hello(source: bytes, body: bytes) -> Hello:
    header = unpack_map(body, "relay hello")
    name = source.decode("utf-8", "replace")
    if header.get("name") != name:
        raise ProtocolError(f"relay hello: name {header.get('name')!r:.80} is not the routing id {name!r:.80}")
    if not AGENT_ID_PATTERN.match(name):
        raise ProtocolError(f"relay hello: invalid node name {name!r:.80}")
    key = header.get("key")
    return Hello(name=name, key=key if isinstance(key, str) else None)


def parse_at_node(frames: list[bytes]) -> FromClient | Welcome:
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
    raise ProtocolError(f"unknown relay frame kind {kind!r:.40}")


def _parse_welcome(rest: list[bytes]) -> Welcome:
    try:
        info = unpack_map(rest[0], "relay welcome") if rest else {}
    except ProtocolError:  # a garbled welcome is still a sign of life
        info = {}
    relay, epoch = info.get("relay"), info.get("epoch")
    return Welcome(relay=relay if isinstance(relay, str) else None, epoch=epoch if isinstance(epoch, str) else None)


__all__ = [
    "FROM",
    "HELLO",
    "RELAY_MAGIC",
    "REPLY",
    "TO",
    "WELCOME",
    "FromClient",
    "Hello",
    "NodeReply",
    "ToNode",
    "Welcome",
    "from_frames",
    "hello_frames",
    "parse_at_node",
    "parse_at_relay",
    "reply_frames",
    "to_prefix",
    "welcome_frames",
]

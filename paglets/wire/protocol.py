"""The paglets wire protocol: frames, ops and validation.

Front protocol (client, peer node or relay DEALER -> node front ROUTER)
=======================================================================

Request, as the DEALER sends it (the ROUTER prepends the peer's routing id):

=====  ========  ===========================================================
frame  type      meaning
=====  ========  ===========================================================
0      bytes     magic ``b"PG"`` + protocol version byte (``MAGIC``)
1      ascii     op name, e.g. ``b"send"`` (see ``FRONT_OPS``)
2      bytes     correlation id, 1..32 bytes, echoed in the reply
3      msgpack   header: a map of op fields (below); ``key`` = API key
4..    bytes     payload frames, op specific (codec-encoded message, state)
=====  ========  ===========================================================

Reply:

=====  ========  ===========================================================
0      bytes     ``MAGIC``
1      ascii     ``b"ok"`` or ``b"err"`` (or ``b"acks"``, below)
2      bytes     the request's correlation id
3      msgpack   ok: result header (map); err: ``{"type", "message", ...}``
4..    bytes     payload frames (ok only): codec-encoded result, state
=====  ========  ===========================================================

Oneway ``send`` requests are acknowledged (``{"accepted": true}``) once the
message is in the mailbox. A node that accepts several from one peer in one
pass of its loop answers them together: ``MAGIC, b"acks", b"",
msgpack([cid, ...])`` means an ``ok`` with ``{"accepted": true}`` for each
correlation id listed.

Ops and header fields (``?`` = optional):

=========  ===================================================  ==============
op         header                                               payload
=========  ===================================================  ==============
ping       -                                                    -
health     -                                                    -
list       active?, inactive?, state?                           -
info       agent                                                -
state      agent                                                -> [state]
send       agent, oneway?, prio?, mid?, act?, nodelay?, fwd?    [message] -> [result]
create     cls, agent?, plain?                                  [state, init]
dispose    agent                                                -
mailbox    agent                                                -
dispatch   agent, ticket                                        -
clone      agent, ticket?                                       -
retract    agent, target                                        -
gossip     table, from?                                         -
hosts      online?                                              -
services   name?, cap?, scope?, peer?                           -> [records]
events     since?, limit?, agent?, kind?, wait?                 -
deactivate agent, request?                                      -
activate   agent                                                -
prepare    agent, cls, kind, token, source, ttl, caps?, version?,  -
           srcver?
arrive     agent, token                                         [envelope]
abort      agent, token                                         -
transfer   agent, token                                         -
envelope   -                                                    [envelope]
blob_has   sha, size                                            -
blob_put   sha, offset, size, final?                            [chunk]
artifact_begin  sha, size, name, owner?                         -
artifact_chunk  token, offset                                   [chunk]
artifact_commit token                                           -
artifact_abort  token                                           -
artifact_stat   sha                                             -
artifact_get    sha, offset, length                             -> [chunk]
artifact_list   -                                               -
artifact_delete sha                                             -
artifact_fetch  sha, source, name?                              -
update     target?                                              -
=========  ===================================================  ==============

Every inbound frame set is validated by :func:`parse_request` before anything
acts on it; a bad one is answered with a ``ProtocolError`` (when it at least
carries a correlation id) and the node carries on. Every string, list and
map in a header has a size limit (:mod:`paglets.wire.limits`: a message id
at most 256 characters, an agent id 128, a class name 512, an address 512,
a token or version 128, any other string 4096, any list or map 256 items,
the whole header 1 MiB); a longer one is a ``ProtocolError`` too.

Relay protocol
==============

Nodes behind NAT are reached through paglets-relay; its frames (``RLY1 to
NAME`` + a front request, ...) are defined, built and parsed in
:mod:`paglets.wire.relay`, whose docstring holds the table.

Back protocol (worker DEALER <-> node back ROUTER, ipc in the runtime dir)
=========================================================================

``[op, rid, header(msgpack), *payload]`` both ways; the ROUTER side adds the
worker's routing id (the agent id, or ``agent_id/N`` for a handler thread).

=======  =========  ========================================================
op       direction  meaning
=======  =========  ========================================================
ready    w -> n     process is up: ``{pid, workers, batch}`` (MAILBOX_WORKERS,
                    MAILBOX_BATCH)
start    n -> w     run a hook and begin: ``{event, ...}`` + [state, init]
msg      n -> w     deliver a message: ``{oneway}`` + [message]
msgs     n -> w     several queued oneway messages for one handler, to
                    run in order: no header, + [message, message, ...]
rep      w -> n     reply to ``start``/``msg``/``msgs``/``call``: status
                    frame (``ok``/``err``) instead of a header, + [result]
                    (for ``msgs``: how many failed, 4 bytes big-endian)
back     w -> n     the handler of a ``msgs`` is leaving with its paglet:
                    its last N (4 bytes) messages did not run; the node
                    queues them again at the head of the mailbox
call     n -> w     node request: ``{op, ...}`` (state, hook, shutdown...)
hcall    w -> n     paglet asks its node: ``{op, ...}`` + payload
hrep     n -> w     reply to ``hcall``: status frame + [result]
event    w -> n     notification: ``{kind, ...}`` (run finished, log)
hb       both       heartbeat; any traffic also counts as liveness
=======  =========  ========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgpack

from paglets.core.errors import ProtocolError
from paglets.wire.limits import MAX_HEADER_BYTES, check_text, check_value

PROTOCOL_VERSION = 1
MAGIC_PREFIX = b"PG"
MAGIC = MAGIC_PREFIX + bytes([PROTOCOL_VERSION])

OK = b"ok"
ERR = b"err"
ACKS = b"acks"
ACCEPTED = {"accepted": True}

MAX_CORRELATION_ID = 32
MAX_GOSSIP_ENTRIES = 1024  # nodes in one gossip table, sent or accepted
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024

# \Z, not $: "$" also matches before a trailing newline, and every caller uses .match()
AGENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")

_STR = (str,)
_BOOL = (bool,)
_INT = (int,)
_NUM = (int, float)
_LIST = (list,)
_MAP = (dict,)

# op -> {field: (accepted types, required)}
FRONT_OPS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "ping": {},
    "health": {},
    "list": {"active": (_BOOL, False), "inactive": (_BOOL, False), "state": (_BOOL, False)},
    "info": {"agent": (_STR, True)},
    "state": {"agent": (_STR, True)},
    "send": {
        "agent": (_STR, True),
        "oneway": (_BOOL, False),
        "prio": (_INT, False),
        "mid": (_STR, False),
        "act": (_BOOL, False),
        "nodelay": (_BOOL, False),
        "fwd": (_BOOL, False),
    },
    "create": {"cls": (_STR, True), "agent": (_STR, False), "plain": (_BOOL, False)},
    "dispose": {"agent": (_STR, True)},
    "mailbox": {"agent": (_STR, True)},
    # movement, asked by clients
    "dispatch": {"agent": (_STR, True), "ticket": (_MAP, True)},
    "clone": {"agent": (_STR, True), "ticket": (_MAP, False)},
    "retract": {"agent": (_STR, True), "target": (_STR, True)},
    # mesh
    "gossip": {"table": (_LIST, True), "from": (_STR, False)},
    "hosts": {"online": (_BOOL, False)},
    # services
    "services": {"name": (_STR, False), "cap": (_STR, False), "scope": (_STR, False), "peer": (_BOOL, False)},
    # observing
    "events": {
        "since": (_INT, False),
        "limit": (_INT, False),
        "agent": (_STR, False),
        "kind": (_STR, False),
        "wait": (_NUM, False),
    },
    # resident service leases
    "lease": {"agent": (_STR, True), "service": (_STR, True), "ttl": (_NUM, True)},
    "unlease": {"lease": (_STR, True)},
    # parking
    "deactivate": {"agent": (_STR, True), "request": (_MAP, False)},
    "activate": {"agent": (_STR, True)},
    # movement, between nodes
    "prepare": {
        "agent": (_STR, True),
        "cls": (_STR, True),
        "kind": (_STR, True),
        "token": (_STR, True),
        "source": (_STR, True),
        "caps": (_LIST, False),
        "version": (_STR, False),
        "srcver": (_STR, False),
        "ttl": (_NUM, True),
    },
    "arrive": {"agent": (_STR, True), "token": (_STR, True)},
    "abort": {"agent": (_STR, True), "token": (_STR, True)},
    "transfer": {"agent": (_STR, True), "token": (_STR, True)},
    "envelope": {},
    "blob_has": {"sha": (_STR, True), "size": (_INT, True)},
    "blob_put": {"sha": (_STR, True), "offset": (_INT, True), "size": (_INT, True), "final": (_BOOL, False)},
    # artifacts: explicit file exchange (paglets.client.artifacts streams them)
    "artifact_begin": {"sha": (_STR, True), "size": (_INT, True), "name": (_STR, True), "owner": (_STR, False)},
    "artifact_chunk": {"token": (_STR, True), "offset": (_INT, True)},
    "artifact_commit": {"token": (_STR, True)},
    "artifact_abort": {"token": (_STR, True)},
    "artifact_stat": {"sha": (_STR, True)},
    "artifact_get": {"sha": (_STR, True), "offset": (_INT, True), "length": (_INT, True)},
    "artifact_list": {},
    "artifact_delete": {"sha": (_STR, True)},
    "artifact_fetch": {"sha": (_STR, True), "source": (_STR, True), "name": (_STR, False)},
    # code rollout: fetch, fast-forward, reinstall and restart (refused without a key or Curve, and behind a relay)
    "update": {"target": (_STR, False)},
}

# op -> {list field: most items}
LIST_LIMITS: dict[str, dict[str, int]] = {"gossip": {"table": MAX_GOSSIP_ENTRIES}}
# op -> fields that name a node (checked like agent ids)
NODE_NAME_FIELDS: dict[str, tuple[str, ...]] = {"gossip": ("from",)}

PAYLOAD_FRAMES: dict[str, tuple[int, int]] = {
    "send": (1, 1),
    "create": (2, 2),
    "arrive": (1, 1),
    "envelope": (1, 1),
    "blob_put": (1, 1),
    "artifact_chunk": (1, 1),
}


@dataclass(slots=True)
class Request:
    """A validated front request."""

    peer: bytes
    op: str
    cid: bytes
    header: dict[str, Any]
    payload: list[bytes] = field(default_factory=list)


class BadRequest(ProtocolError):
    """A request that cannot be served; ``cid`` says whether it can be answered."""

    def __init__(self, message: str, cid: bytes | None):
        super().__init__(message)
        self.cid = cid


def unpack_map(data: bytes, what: str) -> dict[str, Any]:
    """Decode a msgpack map with string keys, or raise ProtocolError naming ``what``."""
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        raise ProtocolError(f"{what} is not valid msgpack: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a map, got {type(value).__name__}")
    return value


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def validate_agent_id(agent_id: Any) -> str:
    if not isinstance(agent_id, str) or not AGENT_ID_PATTERN.match(agent_id):
        raise ProtocolError(
            f"invalid agent id {agent_id!r:.80}: use 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)"
        )
    return agent_id


def parse_request(frames: list[bytes]) -> Request:
    """Validate a front request as received by the ROUTER (``frames[0]`` is the peer id)."""
    if len(frames) < 5:
        cid = _plausible_cid(frames)
        raise BadRequest(f"request has {max(0, len(frames) - 1)} frames; at least 4 expected", cid)
    peer, magic, raw_op, cid, raw_header, *payload = frames
    if not 1 <= len(cid) <= MAX_CORRELATION_ID:
        raise BadRequest("correlation id must be 1-32 bytes", None)
    if magic != MAGIC:
        if magic[:2] == MAGIC_PREFIX and len(magic) == 3:
            raise BadRequest(f"unsupported protocol version {magic[2]}; this node speaks {PROTOCOL_VERSION}", cid)
        raise BadRequest("not a paglets request (bad magic)", cid)
    op = raw_op.decode("ascii", "replace")
    schema = FRONT_OPS.get(op)
    if schema is None:
        raise BadRequest(f"unknown op {op!r:.40}", cid)
    try:
        if len(raw_header) > MAX_HEADER_BYTES:  # refused before decoding
            raise ProtocolError(f"{op}: header is {len(raw_header)} bytes; the limit is {MAX_HEADER_BYTES}")
        header = unpack_map(raw_header, f"{op} header")
        _check_fields(op, header, schema)
        _check_payload(op, payload)
    except ProtocolError as exc:
        raise BadRequest(str(exc), cid) from None
    return Request(peer=peer, op=op, cid=cid, header=header, payload=payload)


def _plausible_cid(frames: list[bytes]) -> bytes | None:
    if len(frames) >= 4 and frames[1] == MAGIC and 1 <= len(frames[3]) <= MAX_CORRELATION_ID:
        return frames[3]
    return None


def _check_fields(op: str, header: dict[str, Any], schema: dict[str, tuple[tuple[type, ...], bool]]) -> None:
    for name, (types, required) in schema.items():
        value = header.get(name)
        if value is None:
            if required:
                raise ProtocolError(f"{op}: missing field {name!r}")
            continue
        if not isinstance(value, types) or (types in (_INT, _NUM) and isinstance(value, bool)):
            raise ProtocolError(f"{op}: field {name!r} must be {types[0].__name__}, got {type(value).__name__}")
        check_value(op, name, value)
    if "agent" in header and header["agent"] is not None:
        validate_agent_id(header["agent"])
    key = header.get("key")
    if isinstance(key, str):  # any other type simply fails the key check
        check_text(op, "key", key)
    for name, most in LIST_LIMITS.get(op, {}).items():
        if len(header.get(name) or ()) > most:
            raise ProtocolError(f"{op}: field {name!r} has {len(header[name])} items, at most {most}")
    for name in NODE_NAME_FIELDS.get(op, ()):
        value = header.get(name)
        if value is not None and not AGENT_ID_PATTERN.match(value):
            raise ProtocolError(f"{op}: field {name!r} is not a node name: {value!r:.80}")


def _check_payload(op: str, payload: list[bytes]) -> None:
    low, high = PAYLOAD_FRAMES.get(op, (0, 0))
    if not low <= len(payload) <= high:
        raise ProtocolError(f"{op}: expected {low}-{high} payload frames, got {len(payload)}")


def request_frames(op: str, cid: bytes, header: dict[str, Any], payload: tuple[bytes, ...] = ()) -> list[bytes]:
    """The frames a client sends (without the routing id its DEALER adds)."""
    return [MAGIC, op.encode("ascii"), cid, pack(header), *payload]


def ok_frames(cid: bytes, header: dict[str, Any] | None = None, payload: tuple[bytes, ...] = ()) -> list[bytes]:
    return [MAGIC, OK, cid, pack(header or {}), *payload]


def err_frames(cid: bytes, error: dict[str, Any]) -> list[bytes]:
    return [MAGIC, ERR, cid, pack(error)]


@dataclass(slots=True)
class Reply:
    """A validated front reply, as a client receives it."""

    ok: bool
    cid: bytes
    header: dict[str, Any]
    payload: list[bytes]


def parse_reply(frames: list[bytes]) -> Reply:
    """Validate a reply frame set (client side); an ``acks`` frame set is :func:`parse_replies`' job."""
    if len(frames) < 4 or frames[0] != MAGIC or frames[1] not in (OK, ERR):
        raise ProtocolError(f"malformed reply ({len(frames)} frames)")
    header = unpack_map(frames[3], "reply header")
    return Reply(ok=frames[1] == OK, cid=frames[2], header=header, payload=list(frames[4:]))


def parse_replies(frames: list[bytes]) -> list[Reply]:
    """Every reply one frame set carries: one, or one per cid of an ``acks`` frame set."""
    if len(frames) == 4 and frames[1] == ACKS and frames[0] == MAGIC:
        try:
            cids = msgpack.unpackb(frames[3])
        except Exception as exc:
            raise ProtocolError(f"acks frame is not valid msgpack: {exc}") from None
        if not isinstance(cids, list) or not all(isinstance(cid, bytes) for cid in cids):
            raise ProtocolError("acks frame must be a list of correlation ids")
        return [Reply(ok=True, cid=cid, header=dict(ACCEPTED), payload=[]) for cid in cids]
    return [parse_reply(frames)]


def acks_frames(cids: list[bytes]) -> list[bytes]:
    """One frame set accepting several oneway sends (at least two: one is a plain ``ok``)."""
    return [MAGIC, ACKS, b"", pack(cids)]


__all__ = [
    "ACCEPTED",
    "ACKS",
    "AGENT_ID_PATTERN",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ERR",
    "FRONT_OPS",
    "MAGIC",
    "MAX_GOSSIP_ENTRIES",
    "OK",
    "PROTOCOL_VERSION",
    "BadRequest",
    "Reply",
    "Request",
    "acks_frames",
    "err_frames",
    "ok_frames",
    "pack",
    "parse_replies",
    "parse_reply",
    "parse_request",
    "request_frames",
    "unpack_map",
    "validate_agent_id",
]

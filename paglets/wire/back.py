"""The back protocol: a node and its worker processes.

Private to a node: the node's back ROUTER listens on ``ipc://`` in a
directory only the node's user can read; each worker process connects
DEALERs to it. Frames are stacked only here: the node's broker and the
worker call the builders below, and every frame set is taken apart by the
parsers below, which raise :class:`~paglets.core.errors.ProtocolError`
naming the op and the field when a frame set breaks this document.

Frames (both ways; the ROUTER adds, or is given, the worker socket's
routing id in front):

=====  ========  =========================================================
frame  type      meaning
=====  ========  =========================================================
0      ascii     op, e.g. ``b"msg"`` (below)
1      bytes     ``cid``: correlation id of a request, echoed in its reply
                 (8 bytes; empty for frames that need no answer)
2      msgpack   header: a map of op fields (``rep``/``hrep``: the status
                 ``b"ok"``/``b"err"`` instead; ``msgs``: the first message)
3..    bytes     payload frames, op specific
=====  ========  =========================================================

Routing ids (see below): a worker's main socket, and one per handler
thread, the ``run()`` thread and any thread that talks to the node. Idle
handler sockets are the mailbox credits.

Ops (``?`` = optional field; ``-`` = no header frame content):

=======  =========  ====================================  ================================
op       direction  header                                payload
=======  =========  ====================================  ================================
ready    w -> n     token, pid, workers?, batch?,         -
                    checkpoint?, idle?, state_class?, error?
start    n -> w     hook?, plain?, event?                 [state, init]
idle     w -> n     - (empty frame)                       -
msg      n -> w     oneway, unqueued?                     [message]
msgs     n -> w     (no header frame)                     [message, message, ...]
rep      w -> n     status ``ok``/``err``                 ok: [result]?; err: [error map];
                                                          for ``msgs``: [failed count]
back     w -> n     (no header frame)                     [count]
call     n -> w     op + the call's fields (below)        -
hcall    w -> n     op + the host call's fields (below)   op specific (below)
hrep     n -> w     status ``ok``/``err``                 ok: [result]; err: [error map]
event    w -> n     kind, ok?                             -
hb       w -> n     - (empty frame)                       -
hb       n -> w     ``{}``                                -
=======  =========  ====================================  ================================

* ``ready``: the process is up and its class loaded (``workers`` =
  MAILBOX_WORKERS, ``batch`` = MAILBOX_BATCH, ``checkpoint`` =
  CHECKPOINT_INTERVAL, ``idle`` = IDLE_TIMEOUT), or it could not load its class (``error``, and it
  exits). ``token`` is the one the node gave the worker in its
  :class:`~paglets.worker.spec.WorkerSpec`; a ``ready`` with another token
  is ignored.
* ``start``: build the paglet from [state, init] and run its start hook
  (``hook``, default ``on_creation``; ``plain``: the state is a plain map;
  ``event``: the hook's event); answered by a ``rep``.
* ``msg``: one message for a handler socket (``unqueued``: for the main
  socket, bypassing the mailbox); ``msgs``: several queued oneway messages
  for one handler, to run in order. Both answered by one ``rep``; a
  ``msgs`` reply's payload is how many of them failed.
* ``back``: the handler of a ``msgs`` is leaving with its paglet: the last
  ``count`` messages of that ``msgs`` (same ``cid``) did not run; the node
  queues them again at the head of the mailbox.
* ``call``: a node request to the worker's main socket, answered by a
  ``rep``; ``exit`` has an empty ``cid`` and no answer.
* ``hcall``: a paglet asks its node, answered by an ``hrep``.
* ``[count]`` and ``[failed count]`` are 4 bytes, big-endian.
* ``hb``: heartbeats; any frame also counts as a sign of life.

The ``call`` and ``hcall`` ops, their fields and their types are in
:mod:`paglets.wire.back_ops`; :func:`check_fields` checks a header against them.

Routing ids: a worker's main socket is ``agent_id/KEY``, where ``KEY`` is
a secret its node derived for this worker (``WorkerSpec.ident``); its other
sockets are ``agent_id/KEY/N``. The node only takes frames from routing ids
of a worker it started, so another process on the back socket cannot
answer, or ask, in a paglet's name.

The message path (``msg``, ``msgs``, ``rep``, ``idle``) is the hot path:
its constant frames are built once, and a ``msg`` header the node built is
recognised by its bytes instead of being decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paglets.core.errors import ProtocolError
from paglets.wire.back_ops import (
    CALL_OPS,
    EVENT_FIELDS,
    HCALL_OPS,
    HCALL_PAYLOAD,
    MSG_FIELDS,
    READY_FIELDS,
    START_FIELDS,
    check_fields,
)
from paglets.wire.protocol import ERR, OK, pack, unpack_map

READY = b"ready"
START = b"start"
IDLE = b"idle"
MSG = b"msg"
MSGS = b"msgs"
REP = b"rep"
BACK = b"back"
CALL = b"call"
HCALL = b"hcall"
HREP = b"hrep"
EVENT = b"event"
HB = b"hb"

NO_CID = b""
EMPTY_MAP = pack({})
EXIT_CALL = pack({"op": "exit"})
# A worker whose paglet raised a BaseException exits with this code (after its ``crashed`` host call).
CRASH_EXIT_CODE = 70

# The msg headers the node sends, built once; the worker looks them up instead of decoding.
MSG_HEADERS: dict[tuple[bool, bool], bytes] = {
    (oneway, unqueued): pack({"oneway": oneway, "unqueued": True} if unqueued else {"oneway": oneway})
    for oneway in (False, True)
    for unqueued in (False, True)
}
_MSG_HEADER_FLAGS = {frame: flags for flags, frame in MSG_HEADERS.items()}
_ONEWAY_HEADER = MSG_HEADERS[True, False]
_QUEUED_HEADER = (MSG_HEADERS[False, False], _ONEWAY_HEADER)  # indexed by oneway
_UNQUEUED_HEADER = (MSG_HEADERS[False, True], MSG_HEADERS[True, True])


def encode_count(count: int) -> bytes:
    return count.to_bytes(4, "big")


def decode_count(frame: bytes, what: str) -> int:
    if len(frame) != 4:
        raise ProtocolError(f"{what}: a count is 4 bytes, got {len(frame)}")
    return int.from_bytes(frame, "big")


def parse_error(payload: list[bytes]) -> dict[str, Any]:
    """The error map of an ``err`` reply; a malformed one becomes a ProtocolError's map (never raises)."""
    if not payload:
        return {"type": "ProtocolError", "message": "error reply without a body"}
    try:
        return unpack_map(payload[0], "error body")
    except ProtocolError as exc:
        return {"type": "ProtocolError", "message": str(exc)}


# -- worker -> node: builders (the worker's DEALERs add nothing) --------------------------------
def ready_frames(
    token: str,
    pid: int,
    *,
    workers: int | None = None,
    batch: int | None = None,
    checkpoint: float | None = None,
    idle: float | None = None,
    error: dict[str, Any] | None = None,
    state_class: str | None = None,
) -> list[bytes]:
    fields = {
        "workers": workers, "batch": batch, "checkpoint": checkpoint, "idle": idle, "error": error,
        "state_class": state_class,
    }  # fmt: skip
    header = {"token": token, "pid": pid, **{k: v for k, v in fields.items() if v is not None}}
    return [READY, NO_CID, pack(check_fields("ready", header, READY_FIELDS))]


def idle_frames() -> list[bytes]:
    return [IDLE, NO_CID, b""]


def hb_to_node() -> list[bytes]:
    return [HB, NO_CID, b""]


def rep_ok(cid: bytes, payload: bytes | None = None) -> list[bytes]:
    return [REP, cid, OK] if payload is None else [REP, cid, OK, payload]


def rep_err(cid: bytes, error: dict[str, Any]) -> list[bytes]:
    return [REP, cid, ERR, pack(error)]


def rep_batch(cid: bytes, failed: int) -> list[bytes]:
    """The reply to a ``msgs``: how many of its messages failed."""
    return [REP, cid, OK, encode_count(failed)]


def back_frames(cid: bytes, count: int) -> list[bytes]:
    """The last ``count`` messages of the ``msgs`` ``cid`` did not run."""
    return [BACK, cid, encode_count(count)]


def hcall_frames(cid: bytes, op: str, fields: dict[str, Any], payload: tuple[bytes, ...] = ()) -> list[bytes]:
    """A host call; the node validates it (see :data:`HCALL_OPS`)."""
    return [HCALL, cid, pack({"op": op, **fields}), *payload]


def event_frames(kind: str, **fields: Any) -> list[bytes]:
    header = {"kind": kind, **fields}
    return [EVENT, NO_CID, pack(check_fields("event", header, EVENT_FIELDS))]


# -- node -> worker: builders (the ROUTER needs the worker socket's routing id first) -----------
def pack_start(hook: str, plain: bool, event: dict[str, Any] | None = None) -> bytes:
    """A ``start`` header."""
    header: dict[str, Any] = {"hook": hook, "plain": plain}
    if event is not None:
        header["event"] = event
    return pack(check_fields("start", header, START_FIELDS))


def pack_call(op: str, **fields: Any) -> bytes:
    """A ``call`` header, checked against :data:`CALL_OPS`."""
    return pack(_check_call(op, {"op": op, **fields}))


def start_frames(ident: bytes, cid: bytes, header: bytes, payload: list[bytes]) -> list[bytes]:
    return [ident, START, cid, header, *payload]


def msg_frames(ident: bytes, cid: bytes, oneway: bool, unqueued: bool, body: bytes) -> list[bytes]:
    return [ident, MSG, cid, (_UNQUEUED_HEADER if unqueued else _QUEUED_HEADER)[oneway], body]


def msgs_frames(ident: bytes, cid: bytes, bodies: list[bytes]) -> list[bytes]:
    return [ident, MSGS, cid, *bodies]


def call_frames(ident: bytes, cid: bytes, header: bytes, payload: list[bytes]) -> list[bytes]:
    return [ident, CALL, cid, header, *payload]


def exit_frames(ident: bytes) -> list[bytes]:
    """Tell a worker to exit now (no answer)."""
    return [ident, CALL, NO_CID, EXIT_CALL]


def hb_to_worker(ident: bytes) -> list[bytes]:
    return [ident, HB, NO_CID, EMPTY_MAP]


def hrep_ok(ident: bytes, cid: bytes, payload: list[bytes]) -> list[bytes]:
    return [ident, HREP, cid, OK, *payload]


def hrep_err(ident: bytes, cid: bytes, error: dict[str, Any]) -> list[bytes]:
    return [ident, HREP, cid, ERR, pack(error)]


# -- node side: parsers ---------------------------------------------------------------------------
@dataclass(slots=True)
class Ready:
    """A validated ``ready`` header."""

    token: str
    pid: int
    workers: int | None = None
    batch: int | None = None
    checkpoint: float | None = None
    error: dict[str, Any] | None = None
    idle: float | None = None  # the class's IDLE_TIMEOUT
    state_class: str | None = None  # the class name of its State


@dataclass(slots=True)
class OpCall:
    """A validated ``hcall`` or ``call``: its op, its header (``op`` included) and payload frames."""

    op: str
    header: dict[str, Any]
    payload: list[bytes]


def split_from_worker(frames: list[bytes]) -> tuple[bytes, bytes, bytes, list[bytes]] | None:
    """``(routing id, op, cid, rest)`` of a frame set the back ROUTER received; None if too short."""
    if len(frames) < 3:
        return None
    return frames[0], frames[1], frames[2], frames[3:]


def parse_ready(rest: list[bytes]) -> Ready:
    header = check_fields("ready", unpack_map(rest[0] if rest else b"", "ready header"), READY_FIELDS)
    get = header.get
    return Ready(
        header["token"], header["pid"], get("workers"), get("batch"), get("checkpoint"), get("error"), get("idle"),
        get("state_class"),
    )  # fmt: skip


def parse_rep(rest: list[bytes]) -> tuple[bool, list[bytes]] | None:
    """``(ok, payload)`` of a ``rep`` (or ``hrep``); None without a status frame."""
    if not rest:
        return None
    return rest[0] == OK, rest[1:]


def batch_failures(payload: list[bytes]) -> int:
    """How many messages of a ``msgs`` failed, from its ``ok`` reply's payload."""
    return int.from_bytes(payload[0], "big") if payload else 0


def parse_give_back(rest: list[bytes]) -> int:
    """The count of a ``back`` frame set."""
    if not rest:
        raise ProtocolError("back: missing count frame")
    return decode_count(rest[0], "back")


def parse_host_call(rest: list[bytes]) -> OpCall:
    """Validate an ``hcall``: its op, every field of that op and its payload frame count."""
    header = unpack_map(rest[0] if rest else b"", "hcall header")
    op = header.get("op")
    schema = HCALL_OPS.get(op) if isinstance(op, str) else None
    if schema is None:
        raise ProtocolError(f"hcall: unknown op {op!r:.40}")
    check_fields(f"hcall {op}", header, schema)
    payload = rest[1:]
    low, high = HCALL_PAYLOAD.get(op, (0, 0))
    if not low <= len(payload) <= high:
        raise ProtocolError(f"hcall {op}: expected {low}-{high} payload frames, got {len(payload)}")
    return OpCall(op, header, payload)


def parse_event(rest: list[bytes]) -> dict[str, Any]:
    return check_fields("event", unpack_map(rest[0] if rest else b"", "event header"), EVENT_FIELDS)


# -- worker side: parsers -------------------------------------------------------------------------
def split_from_node(frames: list[bytes]) -> tuple[bytes, bytes, list[bytes]] | None:
    """``(op, cid, rest)`` of a frame set a worker socket received; None if too short."""
    if len(frames) < 3:
        return None
    return frames[0], frames[1], frames[2:]


def parse_msg(rest: list[bytes]) -> tuple[bool, bytes]:
    """``(oneway, body)`` of a ``msg``."""
    if len(rest) != 2:
        raise ProtocolError(f"msg: expected a header and one message frame, got {len(rest)} frames")
    flags = _MSG_HEADER_FLAGS.get(rest[0])
    if flags is None:
        flags = (check_fields("msg", unpack_map(rest[0], "msg header"), MSG_FIELDS)["oneway"], False)
    return flags[0], rest[1]


def parse_work(frames: list[bytes]) -> tuple[bytes, bool, bool, list[bytes]] | None:
    """What a handler socket was given: ``(cid, batch, oneway, bodies)`` for a ``msg`` or ``msgs``.

    None for anything else (e.g. the late answer to a host call that timed
    out). The node's own ``msg`` headers are recognised by their bytes.
    """
    op = frames[0]
    if op == MSG and len(frames) >= 4:
        return frames[1], False, frames[2] == _ONEWAY_HEADER, [frames[3]]
    if op == MSGS and len(frames) >= 3:
        return frames[1], True, True, frames[2:]
    return None


def parse_start(rest: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """``(header, [state, init])`` of a ``start``."""
    header = check_fields("start", unpack_map(rest[0] if rest else b"", "start header"), START_FIELDS)
    return header, rest[1:]


def parse_call(rest: list[bytes]) -> OpCall:
    """Validate a ``call``: its op and every field of that op."""
    header = unpack_map(rest[0] if rest else b"", "call header")
    op = header.get("op")
    _check_call(op, header)
    return OpCall(op, header, rest[1:])


def _check_call(op: Any, header: dict[str, Any]) -> dict[str, Any]:
    schema = CALL_OPS.get(op) if isinstance(op, str) else None
    if schema is None:
        raise ProtocolError(f"call: unknown op {op!r:.40}")
    return check_fields(f"call {op}", header, schema)


def parse_hrep(frames: list[bytes], cid: bytes) -> tuple[bool, list[bytes]] | None:
    """``(ok, payload)`` if ``frames`` is the ``hrep`` to host call ``cid``; None for anything else."""
    if len(frames) < 3 or frames[0] != HREP or frames[1] != cid:
        return None
    return frames[2] == OK, frames[3:]


# fmt: off
__all__ = [
    "BACK", "CALL", "CALL_OPS", "CRASH_EXIT_CODE", "EMPTY_MAP", "EVENT", "EVENT_FIELDS", "HB", "HCALL", "HCALL_OPS",
    "HCALL_PAYLOAD", "HREP", "IDLE", "MSG", "MSGS", "MSG_FIELDS", "MSG_HEADERS", "READY", "READY_FIELDS", "REP",
    "START", "START_FIELDS", "OpCall", "Ready", "back_frames", "batch_failures", "call_frames", "check_fields",
    "event_frames", "exit_frames", "hb_to_node", "hb_to_worker", "hcall_frames", "hrep_err", "hrep_ok",
    "idle_frames", "msg_frames", "msgs_frames", "pack_call", "pack_start", "parse_call", "parse_error",
    "parse_event", "parse_give_back", "parse_host_call", "parse_hrep", "parse_msg", "parse_ready", "parse_rep",
    "parse_start", "parse_work", "ready_frames", "rep_batch", "rep_err", "rep_ok", "split_from_node",
    "split_from_worker", "start_frames",
]
# fmt: on

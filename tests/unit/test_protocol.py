"""Front-protocol validation: every bad frame set is refused with a reason."""

from __future__ import annotations

import pickle

import msgpack
import pytest

from paglets.core.errors import (
    AuthenticationError,
    InvalidAgentError,
    NodeUnreachableError,
    ProtocolError,
    RemoteHostError,
)
from paglets.wire import protocol
from paglets.wire.errors import error_from_wire, error_to_wire

PEER = b"\x00peer"


def request(op="send", header=None, payload=(b"body",), cid=b"c1", magic=protocol.MAGIC):
    return [PEER, magic, op.encode(), cid, msgpack.packb(header if header is not None else {"agent": "a1"}), *payload]


def test_valid_send_request_is_parsed():
    parsed = protocol.parse_request(request(header={"agent": "a1", "oneway": True, "prio": 7}))
    assert (parsed.op, parsed.cid, parsed.header["prio"], parsed.payload) == ("send", b"c1", 7, [b"body"])


@pytest.mark.parametrize(
    ("frames", "reason", "answerable"),
    [
        ([PEER, b"junk"], "frames", False),
        (request(magic=b"XX\x01"), "bad magic", True),
        (request(magic=b"PG\x07"), "version 7", True),
        (request(op="explode"), "unknown op", True),
        (request(cid=b""), "correlation id", False),
        (request(cid=b"x" * 40), "correlation id", False),
        (request(header={}), "missing field 'agent'", True),
        (request(header={"agent": 5}), "must be str", True),
        (request(header={"agent": "../etc"}), "invalid agent id", True),
        (request(header={"agent": "a", "prio": True}), "must be int", True),
        (request(payload=()), "payload frames", True),
        ([PEER, protocol.MAGIC, b"send", b"c", b"\xc1\xc1", b"x"], "not valid msgpack", True),
        ([PEER, protocol.MAGIC, b"send", b"c", msgpack.packb([1, 2]), b"x"], "must be a map", True),
        ([PEER, protocol.MAGIC, b"ping", b"c", pickle.dumps({"a": 1})], "msgpack", True),
        (request(header={"agent": "a1", "mid": "m" * 257}), "'mid' is 257 characters long; the limit is 256", True),
        (request(op="ping", header={"key": "k" * 1025}, payload=()), "'key' is 1025 characters", True),
        (request(op="ping", header={"x": "x" * (1 << 20)}, payload=()), "header is .* the limit is 1048576", True),
        (request(op="create", header={"cls": "m:" + "C" * 600}, payload=(b"", b"")), "'cls' is 602", True),
        (request(op="gossip", header={"table": [{}] * 4097}, payload=()), "'table' has 4097 items", True),
        (
            request(op="deactivate", header={"agent": "a1", "request": {"m": {"n": "v" * 4097}}}, payload=()),
            "'request' holds a value of 4097 characters",
            True,
        ),
    ],
)
def test_bad_requests_are_refused_with_a_reason(frames, reason, answerable):
    with pytest.raises(protocol.BadRequest, match=reason) as info:
        protocol.parse_request(frames)
    assert (info.value.cid is not None) == answerable


def test_reply_frames_round_trip():
    reply = protocol.parse_reply(protocol.ok_frames(b"c9", {"x": 1}, (b"payload",)))
    assert reply.ok and reply.cid == b"c9" and reply.header == {"x": 1} and reply.payload == [b"payload"]
    failed = protocol.parse_reply(protocol.err_frames(b"c9", {"type": "InvalidAgentError", "message": "gone"}))
    assert not failed.ok
    with pytest.raises(ProtocolError):
        protocol.parse_reply([b"garbage"])


def test_an_acks_frame_set_answers_each_listed_send_as_accepted():
    replies = protocol.parse_replies(protocol.acks_frames([b"c1", b"c2", b"c3"]))
    assert [(r.ok, r.cid, r.header, r.payload) for r in replies] == [
        (True, cid, {"accepted": True}, []) for cid in (b"c1", b"c2", b"c3")
    ]
    single = protocol.parse_replies(protocol.ok_frames(b"c4", {"accepted": True}))
    assert [(r.cid, r.header) for r in single] == [(b"c4", {"accepted": True})]


@pytest.mark.parametrize("body", [b"\xc1", msgpack.packb({"c1": 1}), msgpack.packb([b"c1", 7]), msgpack.packb(["c1"])])
def test_malformed_acks_are_refused(body):
    with pytest.raises(ProtocolError, match="acks"):
        protocol.parse_replies([protocol.MAGIC, protocol.ACKS, b"", body])


def test_known_errors_map_both_ways():
    for exc in (InvalidAgentError("no such paglet"), AuthenticationError("bad key")):
        back = error_from_wire(error_to_wire(exc))
        assert type(back) is type(exc) and str(back) == str(exc)
    unreachable = error_from_wire(error_to_wire(NodeUnreachableError("down", address="tcp://h:1", op="send")))
    assert (unreachable.address, unreachable.op) == ("tcp://h:1", "send")


def test_unknown_remote_errors_become_remote_host_errors():
    error = error_from_wire(error_to_wire(KeyError("k")))
    assert isinstance(error, RemoteHostError) and error.remote_type == "KeyError"
    again = error_from_wire(error_to_wire(error))
    assert again.remote_type == "KeyError"
    assert isinstance(error_from_wire("not a dict"), ProtocolError)

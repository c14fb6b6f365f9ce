"""Back-protocol frames: what the builders stack, the parsers take apart; bad frames name op and field."""

from __future__ import annotations

import msgpack
import pytest

from paglets.client.security import CurveIdentity
from paglets.core.errors import ProtocolError
from paglets.wire import back
from paglets.worker.spec import WorkerSpec

IDENT = b"agent-1/2"
CID = (7).to_bytes(8, "big")


def from_worker(frames):
    """What the node's ROUTER receives for frames a worker DEALER sent."""
    return back.split_from_worker([IDENT, *frames])


def test_ready_round_trips_through_the_node_parser():
    ident, op, cid, rest = from_worker(back.ready_frames("tok", 42, workers=4, batch=32, checkpoint=1.5))
    ready = back.parse_ready(rest)
    assert (ident, op, cid) == (IDENT, back.READY, b"")
    assert (ready.token, ready.pid, ready.workers, ready.batch, ready.checkpoint, ready.error) == (
        "tok", 42, 4, 32, 1.5, None,
    )  # fmt: skip


def test_a_ready_that_could_not_load_its_class_carries_the_error():
    error = {"type": "HostError", "message": "no such class"}
    _ident, _op, _cid, rest = from_worker(back.ready_frames("tok", 42, error=error))
    assert back.parse_ready(rest).error == error


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"pid": 1}, "ready: missing field 'token'"),
        ({"token": "t"}, "ready: missing field 'pid'"),
        ({"token": 5, "pid": 1}, "ready: field 'token' must be str, got int"),
        ({"token": "t", "pid": True}, "ready: field 'pid' must be int, got bool"),
        ({"token": "t", "pid": 1, "batch": "32"}, "ready: field 'batch' must be int, got str"),
    ],
)
def test_bad_ready_headers_are_refused_naming_the_field(header, reason):
    with pytest.raises(ProtocolError, match=reason):
        back.parse_ready([msgpack.packb(header)])


def test_message_frames_reach_a_handler_as_work():
    frames = back.msg_frames(IDENT, CID, True, False, b"body")
    assert frames[0] == IDENT
    assert back.parse_work(frames[1:]) == (CID, False, True, [b"body"])
    request = back.msg_frames(IDENT, CID, False, False, b"body")
    assert back.parse_work(request[1:]) == (CID, False, False, [b"body"])
    batch = back.msgs_frames(IDENT, CID, [b"a", b"b", b"c"])
    assert back.parse_work(batch[1:]) == (CID, True, True, [b"a", b"b", b"c"])


def test_a_handler_ignores_frames_that_are_not_work():
    assert back.parse_work([back.HREP, CID, b"ok", b""]) is None
    assert back.parse_work([back.MSG, CID, b"x"]) is None


@pytest.mark.parametrize(("oneway", "unqueued"), [(False, False), (True, False), (False, True), (True, True)])
def test_an_unqueued_message_on_the_main_socket_keeps_its_oneway_flag(oneway, unqueued):
    op, cid, rest = back.split_from_node(back.msg_frames(IDENT, CID, oneway, unqueued, b"body")[1:])
    assert (op, cid, back.parse_msg(rest)) == (back.MSG, CID, (oneway, b"body"))


def test_a_msg_header_built_elsewhere_is_decoded_and_checked():
    assert back.parse_msg([msgpack.packb({"unqueued": True, "oneway": True, "extra": 1}), b"b"]) == (True, b"b")
    with pytest.raises(ProtocolError, match="msg: missing field 'oneway'"):
        back.parse_msg([msgpack.packb({}), b"b"])


def test_replies_round_trip():
    _ident, op, cid, rest = from_worker(back.rep_ok(CID, b"result"))
    assert (op, cid, back.parse_rep(rest)) == (back.REP, CID, (True, [b"result"]))
    _ident, _op, _cid, rest = from_worker(back.rep_err(CID, {"type": "LifecycleError", "message": "no"}))
    ok, payload = back.parse_rep(rest)
    assert not ok and back.parse_error(payload) == {"type": "LifecycleError", "message": "no"}
    _ident, _op, _cid, rest = from_worker(back.rep_batch(CID, 3))
    assert back.batch_failures(back.parse_rep(rest)[1]) == 3


def test_a_malformed_error_reply_becomes_a_protocol_error_map():
    assert back.parse_error([])["type"] == "ProtocolError"
    assert back.parse_error([b"\xc1"])["type"] == "ProtocolError"


def test_give_back_round_trips_and_needs_a_four_byte_count():
    _ident, op, cid, rest = from_worker(back.back_frames(CID, 5))
    assert (op, cid, back.parse_give_back(rest)) == (back.BACK, CID, 5)
    with pytest.raises(ProtocolError, match="back: a count is 4 bytes"):
        back.parse_give_back([b"\x01"])


def test_host_calls_round_trip():
    _ident, op, cid, rest = from_worker(
        back.hcall_frames(CID, "send", {"agent": "b", "local": True, "oneway": False, "prio": 5}, (b"msg",))
    )
    call = back.parse_host_call(rest)
    assert (op, cid, call.op, call.header["agent"], call.payload) == (back.HCALL, CID, "send", "b", [b"msg"])


@pytest.mark.parametrize(
    ("op", "fields", "payload", "reason"),
    [
        ("dispose", {}, (), "hcall dispose: missing field 'agent'"),
        ("dispose", {"agent": None}, (), "hcall dispose: missing field 'agent'"),
        ("dispose", {"agent": 5}, (), "hcall dispose: field 'agent' must be str, got int"),
        ("send", {"local": True}, (b"m",), "hcall send: missing field 'agent'"),
        ("send", {"agent": "b", "prio": "high"}, (b"m",), "hcall send: field 'prio' must be int, got str"),
        ("send", {"agent": "b"}, (), "hcall send: expected 1-1 payload frames, got 0"),
        ("create", {"cls": "m:C"}, (b"",), "hcall create: expected 2-2 payload frames, got 1"),
        ("create", {}, (b"", b""), "hcall create: missing field 'cls'"),
        ("dispatch", {"agent": "a"}, (), "hcall dispatch: missing field 'target'"),
        ("dispatch", {"target": 5}, (), "hcall dispatch: field 'target' must be str or dict, got int"),
        ("get_property", {"key": 1}, (), "hcall get_property: field 'key' must be str, got int"),
        ("wait_for_host", {"name": "n", "wait": True}, (), "hcall wait_for_host: field 'wait' must be int or float"),
        ("list", {}, (b"x",), "hcall list: expected 0-0 payload frames, got 1"),
        ("explode", {}, (), "hcall: unknown op 'explode'"),
        ("dispose", {"agent": "a" * 129}, (), "hcall dispose: field 'agent' is 129 characters long; the limit is 128"),
        ("send", {"agent": "b", "mid": "m" * 257}, (b"m",), "hcall send: field 'mid' is 257 .* the limit is 256"),
        ("create", {"cls": "m:" + "C" * 511}, (b"", b""), "hcall create: field 'cls' is 513 .* limit is 512"),
        ("dispatch", {"target": "t" * 513}, (), "hcall dispatch: field 'target' is 513 .* the limit is 512"),
        ("deactivate", {"metadata": {str(i): i for i in range(257)}}, (), "'metadata' has 257 items; the limit"),
        ("crashed", {"reason": "r" * 4097}, (), "hcall crashed: field 'reason' is 4097 .* the limit is 4096"),
    ],
)
def test_bad_host_calls_are_refused_naming_op_and_field(op, fields, payload, reason):
    rest = back.hcall_frames(CID, op, fields, payload)[2:]
    with pytest.raises(ProtocolError, match=reason):
        back.parse_host_call(rest)


def test_a_host_call_header_that_is_not_a_map_is_refused():
    with pytest.raises(ProtocolError, match="hcall header must be a map"):
        back.parse_host_call([msgpack.packb([1])])
    with pytest.raises(ProtocolError, match="hcall header is not valid msgpack"):
        back.parse_host_call([])


def test_node_calls_round_trip_and_exit_needs_no_answer():
    header = back.pack_call("hook", name="on_cloning", event={"kind": "clone"})
    op, cid, rest = back.split_from_node(back.call_frames(IDENT, CID, header, [])[1:])
    call = back.parse_call(rest)
    assert (op, cid, call.op, call.header["name"]) == (back.CALL, CID, "hook", "on_cloning")
    op, cid, rest = back.split_from_node(back.exit_frames(IDENT)[1:])
    assert (op, cid, back.parse_call(rest).op) == (back.CALL, b"", "exit")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"op": "hook", "event": {}}, "call hook: missing field 'name'"),
        ({"op": "policy"}, "call policy: missing field 'request'"),
        ({"op": "cleanup", "reason": 3}, "call cleanup: field 'reason' must be str, got int"),
        ({"op": "reboot"}, "call: unknown op 'reboot'"),
        ({}, "call: unknown op None"),
    ],
)
def test_bad_node_calls_are_refused_naming_op_and_field(header, reason):
    with pytest.raises(ProtocolError, match=reason):
        back.parse_call([msgpack.packb(header)])


def test_the_node_cannot_build_a_call_its_worker_would_refuse():
    with pytest.raises(ProtocolError, match="call hook: missing field 'name'"):
        back.pack_call("hook", event={})


def test_start_round_trips():
    header = back.pack_start("on_arrival", False, {"kind": "mobility"})
    op, cid, rest = back.split_from_node(back.start_frames(IDENT, CID, header, [b"state", b""])[1:])
    parsed, payload = back.parse_start(rest)
    assert (op, cid, parsed["hook"], parsed["event"], payload) == (
        back.START, CID, "on_arrival", {"kind": "mobility"}, [b"state", b""],
    )  # fmt: skip
    with pytest.raises(ProtocolError, match="start: field 'plain' must be bool"):
        back.parse_start([msgpack.packb({"hook": "on_creation", "plain": "yes"})])


def test_events_and_heartbeats():
    _ident, op, _cid, rest = from_worker(back.event_frames("run-finished", ok=True))
    assert (op, back.parse_event(rest)) == (back.EVENT, {"kind": "run-finished", "ok": True})
    with pytest.raises(ProtocolError, match="event: missing field 'kind'"):
        back.parse_event([msgpack.packb({"ok": True})])
    assert from_worker(back.hb_to_node())[1] == back.HB
    assert back.split_from_node(back.hb_to_worker(IDENT)[1:])[0] == back.HB


def test_host_call_answers_match_their_cid_only():
    ok = back.hrep_ok(IDENT, CID, [b"r"])[1:]
    assert back.parse_hrep(ok, CID) == (True, [b"r"])
    assert back.parse_hrep(ok, (8).to_bytes(8, "big")) is None  # a late answer to an earlier call
    failed = back.hrep_err(IDENT, CID, {"type": "HostError", "message": "no"})[1:]
    ok_flag, payload = back.parse_hrep(failed, CID)
    assert not ok_flag and back.parse_error(payload)["message"] == "no"


def test_too_short_frame_sets_are_not_split():
    assert back.split_from_worker([IDENT, b"hb"]) is None
    assert back.split_from_node([b"hb", b""]) is None


# -- WorkerSpec -------------------------------------------------------------------------------
def spec(**overrides):
    fields = {
        "agent_id": "a1",
        "token": "t1",
        "class_name": "tests.sample_paglets:WorkingPaglet",
        "back_endpoint": "ipc:///tmp/x",
        "node_name": "n",
        "node_address": "tcp://127.0.0.1:1",
        "work_dir": "/tmp/w",
        "storage_root": "/tmp/s",
    }
    return WorkerSpec(**{**fields, **overrides})


def test_worker_spec_round_trips_through_msgpack():
    full = spec(
        heartbeat=0.25,
        heartbeat_misses=5,
        sys_path=["/a", "/b"],
        cwd="/tmp",
        api_key="k",
        curve=CurveIdentity(b"p" * 40, b"s" * 40, b"v" * 40),
        storage_quota=1024,
        log_level="DEBUG",
    )
    for original in (spec(), full):
        wire = msgpack.unpackb(msgpack.packb(original.to_wire(), use_bin_type=True), raw=False)
        assert WorkerSpec.from_wire(wire) == original


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"agent_id": None}, "worker spec: missing field 'agent_id'"),
        ({"token": 5}, "worker spec: field 'token' must be str, got int"),
        ({"heartbeat": "fast"}, "worker spec: field 'heartbeat' must be int or float, got str"),
        ({"heartbeat_misses": True}, "worker spec: field 'heartbeat_misses' must be int, got bool"),
        ({"sys_path": ["/a", 5]}, "worker spec: field 'sys_path' must be a list of str"),
        ({"curve": {"public": "p"}}, "worker spec: field 'curve' must map public, secret and server to str"),
        ({"nonce": "t1"}, "worker spec: unknown field 'nonce'"),
    ],
)
def test_a_bad_worker_spec_is_refused_naming_the_field(change, reason):
    wire = {**spec().to_wire(), **change}
    with pytest.raises(ProtocolError, match=reason):
        WorkerSpec.from_wire(wire)

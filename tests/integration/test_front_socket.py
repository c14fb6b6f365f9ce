"""The node's front ROUTER survives anything a peer sends and answers the next good request."""

from __future__ import annotations

import pickle

import msgpack
import pytest
import zmq

from paglets.core.errors import InvalidAgentError, ProtocolError, RequestTimeoutError
from paglets.core.messages import Message
from paglets.examples.echo import EchoPaglet
from paglets.remote.client import HostClient
from paglets.wire import protocol
from paglets.wire.errors import error_from_wire


@pytest.fixture
def raw(node):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(node.address)
    yield sock
    sock.close(0)


def answer(sock, timeout_ms=2000):
    assert sock.poll(timeout_ms), "the node did not answer"
    return protocol.parse_reply(sock.recv_multipart())


def still_serving(node, proxy):
    assert proxy.send(Message("echo", arg="ok"), timeout=5) == "ok"
    assert HostClient().health(node.address)["name"] == node.name


@pytest.mark.parametrize(
    ("frames", "answered"),
    [
        # without a usable correlation id there is nobody to answer
        ([b"garbage"], False),
        ([b"\x00" * 3, b"\xff" * 10], False),
        ([pickle.dumps({"op": "send"})], False),
        ([protocol.MAGIC, b"send"], False),
        # with one, the sender hears a ProtocolError
        ([protocol.MAGIC, b"send", b"c1", b"\xc1"], True),
        ([protocol.MAGIC, b"send", b"c1", msgpack.packb({"agent": "x"})], True),
        ([protocol.MAGIC, b"nope", b"c1", msgpack.packb({})], True),
        ([b"PG\x09", b"ping", b"c1", msgpack.packb({})], True),
        ([protocol.MAGIC, b"send", b"c1", pickle.dumps({"agent": "x"}), b"x"], True),
    ],
)
def test_bad_frames_leave_the_node_serving(node, raw, frames, answered):
    proxy = node.create(EchoPaglet)
    raw.send_multipart(frames)
    raw.send_multipart(protocol.request_frames("ping", b"after", {}, ()))
    # Replies on one connection keep request order: whatever the bad frames got comes before the ping's.
    replies = [answer(raw) for _ in range(2 if answered else 1)]
    assert [reply.cid for reply in replies] == ([b"c1", b"after"] if answered else [b"after"])
    *refusals, pong = replies
    assert pong.ok and pong.header["name"] == node.name
    assert [not r.ok and isinstance(error_from_wire(r.header), ProtocolError) for r in refusals] == [True] * answered
    still_serving(node, proxy)


def test_wrong_protocol_version_is_told_which_version_the_node_speaks(node, raw):
    raw.send_multipart([b"PG\x09", b"ping", b"c1", msgpack.packb({})])
    reply = answer(raw)
    assert "version 9" in reply.header["message"] and f"speaks {protocol.PROTOCOL_VERSION}" in reply.header["message"]


def test_garbage_message_body_fails_only_that_message(node, raw):
    proxy = node.create(EchoPaglet)
    raw.send_multipart(protocol.request_frames("send", b"c1", {"agent": proxy.agent_id}, (b"\xc1\xc1junk",)))
    reply = answer(raw)
    assert not reply.ok and reply.header["type"] == "SerializationError"
    raw.send_multipart(protocol.request_frames("send", b"c2", {"agent": proxy.agent_id}, (pickle.dumps("x"),)))
    assert not answer(raw).ok
    still_serving(node, proxy)


def test_oversized_message_is_dropped_and_the_node_carries_on(make_node):
    node = make_node("small-frames", max_message_size=64 * 1024)
    proxy = node.create(EchoPaglet)
    with pytest.raises(RequestTimeoutError):  # the frame is dropped with its connection: no reply ever comes
        HostClient(timeout=1).send(node.address, proxy.agent_id, Message("echo", arg=b"x" * 200_000))
    still_serving(node, proxy)


def test_many_unknown_agent_requests_do_not_disturb_others(node):
    proxy = node.create(EchoPaglet)
    client = HostClient()
    for i in range(50):
        with pytest.raises(InvalidAgentError):
            client.send(node.address, f"ghost-{i}", "echo")
    still_serving(node, proxy)


def test_forwarded_copy_of_a_delivered_message_is_dropped(node, raw):
    from paglets.wire import codec
    from paglets.wire.message_codec import encode_message

    proxy = node.create(EchoPaglet)
    message = Message("add", arg=1)
    body = encode_message(message)
    header = {"agent": proxy.agent_id, "mid": message.message_id}
    raw.send_multipart(protocol.request_frames("send", b"c1", header, (body,)))
    assert codec.decode(answer(raw).payload[0]) == 1
    raw.send_multipart(protocol.request_frames("send", b"c2", dict(header, fwd=True), (body,)))
    again = answer(raw)
    assert again.ok and codec.decode(again.payload[0]) == 1  # the first reply, not a second delivery
    assert node.get_state(proxy.agent_id)["total"] == 1

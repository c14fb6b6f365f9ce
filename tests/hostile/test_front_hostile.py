"""Hostile front frames: what a stranger (or a broken peer) can send a node's ZeroMQ front socket.

Overlong strings in every header field, oversized headers and payloads,
garbage ops, message ids of megabytes, floods of slow requests, moves that
hang toward an address that never answers, tickets that ask for too long,
and envelopes too big for their target. Every case ends with
:func:`still_serves`: the node's echo paglet answers a normal message from
the same worker process, and no paglet was reported crashed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
import zmq

from paglets.client.host_client import HostClient
from paglets.client.transfer import TransferTicket
from paglets.core.errors import OverloadedError, ProtocolError, TransferError
from paglets.core.messages import Message
from paglets.examples.echo import EchoPaglet
from paglets.wire import limits, protocol
from paglets.wire.errors import error_from_wire
from paglets.wire.message_codec import encode_message
from tests.hostile_paglets import FragilePaglet

ANSWER_MS = 20_000  # how long a test waits for a reply it expects (a bound, not a speed goal)
SILENT_TIMEOUT = 60.0  # ticket timeout of the moves that hang: far longer than any test lasts


@dataclass
class Site:
    """A node with one running echo paglet, as it was before the attack."""

    node: Any
    echo: str
    pid: int


def start_site(make_node, name: str = "alpha", **options: Any) -> Site:
    node = make_node(name, **options)
    proxy = node.create(EchoPaglet)
    return Site(node, proxy.agent_id, node.agent_info(proxy.agent_id)["pid"])


@pytest.fixture
def site(make_node) -> Site:
    return start_site(make_node)


def still_serves(site: Site) -> None:
    """The echo paglet answers, from the same process, and the node never reported a crash."""
    client = HostClient(timeout=10)
    assert client.send(site.node.address, site.echo, Message("echo", arg="still here")) == "still here"
    assert site.node.agent_info(site.echo)["pid"] == site.pid
    assert [e for e in site.node.list_events(limit=10_000) if e.kind == "crash"] == []


@pytest.fixture
def raw(site) -> Iterator[zmq.Socket]:
    sock = dealer(site.node.address)
    yield sock
    sock.close(0)


def dealer(address: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(address)
    return sock


def send(sock: zmq.Socket, op: str, header: dict[str, Any], payload: tuple[bytes, ...] = (), cid: bytes = b"c1"):
    sock.send_multipart(protocol.request_frames(op, cid, header, payload))


def replies(sock: zmq.Socket, count: int) -> list[protocol.Reply]:
    """The next ``count`` replies on ``sock`` (an ``acks`` frame set counts once per correlation id)."""
    got: list[protocol.Reply] = []
    while len(got) < count:
        assert sock.poll(ANSWER_MS), f"the node answered {len(got)} of {count} requests"
        got.extend(protocol.parse_replies(sock.recv_multipart()))
    return got


def ask(sock: zmq.Socket, op: str, header: dict[str, Any], payload: tuple[bytes, ...] = ()) -> protocol.Reply:
    send(sock, op, header, payload, cid=b"ask")
    (reply,) = replies(sock, 1)
    assert reply.cid == b"ask"
    return reply


def refusal(reply: protocol.Reply) -> Exception:
    assert not reply.ok, reply.header
    return error_from_wire(reply.header)


# -- overlong strings, lists and maps in every header field ------------------------------------
VALID: dict[str, Any] = {
    "agent": "ghost-1",
    "mid": "m1",
    "cls": "paglets.examples.echo:EchoPaglet",
    "kind": "dispatch",
    "token": "t1",
    "source": "tcp://127.0.0.1:9",
    "target": "tcp://127.0.0.1:9",
    "version": "1",
    "sha": "00" * 32,
    "ttl": 5.0,
    "size": 1,
    "offset": 0,
    "caps": [],
    "ticket": {"destination": "tcp://127.0.0.1:9"},
    "table": [],
    "request": {},
    "name": "x",  # artifacts
    "length": 1,
    "service": "counter",
    "lease": "abc123",
}


def overlong(name: str, types: tuple[type, ...]) -> list[Any]:
    """Values of field ``name`` just past its limits."""
    if types == (str,):
        return ["x" * (limits.TEXT_LIMITS.get(name, limits.MAX_TEXT) + 1)]
    if types == (list,):
        count = limits.ITEM_COUNTS.get(name, limits.MAX_ITEMS)
        item = limits.ITEM_LIMITS.get(name, limits.MAX_TEXT)
        return [["c"] * (count + 1), ["x" * (item + 1)]]
    if types == (dict,):
        deep: dict[str, Any] = {"destination": "tcp://127.0.0.1:9"}
        for _ in range(limits.MAX_DEPTH + 1):
            deep = {"destination": "tcp://127.0.0.1:9", "metadata": deep}
        return [
            {f"k{i}": i for i in range(limits.MAX_ITEMS + 1)},
            {"destination": "tcp://127.0.0.1:9", "metadata": {"note": "x" * (limits.MAX_TEXT + 1)}},
            deep,
        ]
    return []


CASES = [
    (op, name, value)
    for op, schema in sorted(protocol.FRONT_OPS.items())
    for name, (types, _required) in sorted(schema.items())
    for value in overlong(name, types)
]


def test_every_header_field_has_a_limit_checked_where_the_frame_enters(site, raw):
    assert len(CASES) > 40  # every string, list and map field of every op
    for index, (op, name, value) in enumerate(CASES):
        schema = protocol.FRONT_OPS[op]
        header = {field: VALID[field] for field, (_types, required) in schema.items() if required}
        header[name] = value
        send(raw, op, header, cid=b"%d" % index)
    answers = replies(raw, len(CASES))
    assert [reply.cid for reply in answers] == [b"%d" % index for index in range(len(CASES))]
    for (op, name, _value), reply in zip(CASES, answers, strict=True):
        error = refusal(reply)
        assert isinstance(error, ProtocolError), (op, name, reply.header)
        assert name in str(error) and "limit" in str(error), (op, name, str(error))
    still_serves(site)


def test_an_overlong_api_key_and_an_oversized_header_are_refused_unread(site, raw):
    error = refusal(ask(raw, "ping", {"key": "k" * (limits.MAX_KEY + 1)}))
    assert isinstance(error, ProtocolError) and "'key'" in str(error)
    error = refusal(ask(raw, "ping", {"padding": "p" * limits.MAX_HEADER_BYTES}))
    assert isinstance(error, ProtocolError) and f"the limit is {limits.MAX_HEADER_BYTES}" in str(error)
    still_serves(site)


def test_a_ticket_destination_longer_than_an_address_is_refused(site, raw):
    ticket = {"destination": "tcp://127.0.0.1:9/" + "x" * limits.MAX_ADDRESS}
    error = refusal(ask(raw, "dispatch", {"agent": site.echo, "ticket": ticket}))
    assert isinstance(error, ProtocolError) and "'destination'" in str(error)
    still_serves(site)


@pytest.mark.parametrize("op", [b"", b"\xff\xfe", b"send\x00", b"x" * 10_000, b"Ping", b"_op_health", b"handle"])
def test_garbage_ops_are_refused(site, raw, op):
    raw.send_multipart([protocol.MAGIC, op, b"c1", msgpack.packb({})])
    (reply,) = replies(raw, 1)
    error = refusal(reply)
    assert isinstance(error, ProtocolError) and "unknown op" in str(error) and len(str(error)) < 200
    still_serves(site)


# -- message ids of megabytes -------------------------------------------------------------------
def test_huge_message_ids_are_refused_and_the_paglet_stays_movable(make_node):
    site = start_site(make_node)
    beta = make_node("beta")
    body = encode_message(Message("echo", arg="x"))
    sock = dealer(site.node.address)
    try:
        for index in range(40):
            send(sock, "send", {"agent": site.echo, "mid": "m" * (4 * 1024 * 1024)}, (body,), cid=b"%d" % index)
        for index in range(40):
            send(sock, "send", {"agent": site.echo, "mid": "m" * 300, "oneway": True}, (body,), cid=b"o%d" % index)
        answers = replies(sock, 80)
    finally:
        sock.close(0)
    assert all(isinstance(refusal(reply), ProtocolError) for reply in answers)
    assert site.node.mailbox_status(site.echo)["delivered"] == 0  # not one of them reached the paglet
    still_serves(site)
    moved = site.node.dispatch(site.echo, beta.address)
    assert moved.send(Message("echo", arg="moved"), timeout=10) == "moved"


# -- oversized payloads ---------------------------------------------------------------------------
def test_a_payload_over_max_message_size_never_reaches_the_paglet(make_node):
    site = start_site(make_node, max_message_size=64 * 1024)
    big = dealer(site.node.address)
    try:  # the node drops the frame set with its connection: no reply comes to this socket
        send(big, "send", {"agent": site.echo}, (encode_message(Message("echo", arg=b"x" * 200_000)),))
        still_serves(site)
    finally:
        big.close(0)
    assert site.node.mailbox_status(site.echo)["delivered"] == 1  # still_serves' message only


# -- slow requests cannot starve the cheap ones ----------------------------------------------------
@pytest.fixture
def silent() -> Iterator[str]:
    """A TCP address where a ZeroMQ peer accepts connections and never reads: requests to it hang."""
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.linger = 0
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield f"tcp://127.0.0.1:{port}"
    sock.close(0)  # the moves still hanging toward it fail at once


def hanging_move(agent_id: str, address: str) -> dict[str, Any]:
    return {"agent": agent_id, "ticket": TransferTicket(address, timeout=SILENT_TIMEOUT).to_wire()}


def check_reads_answer(site: Site, sock: zmq.Socket) -> None:
    """Every cheap request answers while the slow ones hang (their replies have not come)."""
    agent = {"agent": site.echo}
    reads = [("health", {}), ("ping", {}), ("list", {"state": True}), ("info", agent), ("state", agent),
             ("mailbox", agent), ("hosts", {})]  # fmt: skip
    for index, (op, header) in enumerate(reads):
        send(sock, op, header, cid=b"read%d" % index)
    answers = {reply.cid: reply for reply in replies(sock, len(reads))}  # ping and mailbox: from the loop itself
    assert sorted(answers) == [b"read%d" % index for index in range(len(reads))]
    assert all(reply.ok for reply in answers.values()), [r.header for r in answers.values() if not r.ok]
    assert answers[b"read0"].header["name"] == site.node.name


def test_health_answers_while_64_moves_hang_toward_a_silent_address(site, silent):
    moves = dealer(site.node.address)
    reads = dealer(site.node.address)
    try:
        for index in range(64):
            send(moves, "dispatch", hanging_move(site.echo, silent), cid=b"move%d" % index)
        # The 65th slow request is one too many (max_slow_ops, 64 by default): refused at once.
        send(moves, "create", {"cls": "paglets.examples.echo:EchoPaglet"}, (b"", b""), cid=b"create")
        (refused,) = replies(moves, 1)
        assert refused.cid == b"create" and isinstance(refusal(refused), OverloadedError)
        check_reads_answer(site, reads)
        assert not moves.poll(0)  # every move still hangs
    finally:
        moves.close(0)
        reads.close(0)


def test_slow_requests_beyond_the_limit_are_refused_not_queued(make_node, silent):
    site = start_site(make_node, max_slow_ops=4)
    sock = dealer(site.node.address)
    try:
        for index in range(4):
            send(sock, "dispatch", hanging_move(site.echo, silent), cid=b"move%d" % index)
        for index in range(6):
            send(sock, "deactivate", {"agent": site.echo}, cid=b"extra%d" % index)
        answers = replies(sock, 6)
        assert sorted(reply.cid for reply in answers) == [b"extra%d" % index for index in range(6)]
        for reply in answers:
            error = refusal(reply)
            assert isinstance(error, OverloadedError) and "the limit is 4" in str(error), str(error)
        check_reads_answer(site, sock)
    finally:
        sock.close(0)
    still_serves(site)


# -- movement timeouts a remote caller may ask for ---------------------------------------------------
@pytest.mark.parametrize(
    "ticket",
    [
        {"timeout": 1e9},
        {"timeout": math.inf},
        {"timeout": math.nan},
        {"retries": 1000},
        {"retry_interval": 1e9},
    ],
)
def test_a_ticket_asking_for_too_long_a_move_is_refused(make_node, ticket):
    site = start_site(make_node, max_transfer_timeout=120.0)
    beta = make_node("beta")
    wire = dict(TransferTicket(beta.address).to_wire(), **ticket)
    client = HostClient(timeout=10)
    with pytest.raises(TransferError, match="allow"):
        client.request(site.node.address, "dispatch", {"agent": site.echo, "ticket": wire})
    with pytest.raises(TransferError, match="allow"):
        client.request(site.node.address, "clone", {"agent": site.echo, "ticket": wire})
    assert beta.list_agents() == []
    still_serves(site)


@pytest.mark.parametrize("ttl", [math.nan, math.inf, -1.0, 0.0])
def test_a_prepare_with_a_senseless_ttl_is_refused(site, raw, ttl):
    header = {"agent": "arrival-1", "cls": "paglets.examples.echo:EchoPaglet", "kind": "dispatch",
              "token": "t1", "source": "tcp://127.0.0.1:9", "ttl": ttl}  # fmt: skip
    error = refusal(ask(raw, "prepare", header))
    assert isinstance(error, TransferError) and "ttl" in str(error)
    assert [a["agent_id"] for a in site.node.list_agents()] == [site.echo]
    still_serves(site)


# -- a move too big for its target -----------------------------------------------------------------
def test_a_move_over_the_targets_max_message_size_fails_and_the_paglet_stays(make_node):
    site = start_site(make_node)
    beta = make_node("beta", max_message_size=256 * 1024)
    fragile = site.node.create(FragilePaglet)
    assert fragile.send(Message("grow", arg=400_000), timeout=10) == 400_000
    for move in (site.node.dispatch, site.node.clone):
        with pytest.raises(TransferError) as refused:
            move(fragile.agent_id, beta.address)
        message = str(refused.value)
        assert "262144" in message and "max_message_size" in message, message
        size = int(message.split("envelope is ", 1)[1].split(" bytes", 1)[0])
        assert size > 400_000
    assert beta.list_agents() == []
    assert fragile.send(Message("echo", arg="here"), timeout=10) == "here"
    assert site.node.agent_info(fragile.agent_id)["phase"] == "ready"
    assert fragile.send(Message("grow", arg=10), timeout=10) == 10  # small again: now it moves
    moved = site.node.dispatch(fragile.agent_id, beta.address)
    assert moved.send(Message("echo", arg="moved"), timeout=10) == "moved"
    still_serves(site)

"""Mesh gossip under attack: lies about other nodes, impostor nodes, oversized and malformed entries.

A node takes an address for node N first-hand only when it reached that
address and N answered; hearsay fills names it does not know yet and never
moves a name. The attacker is a raw DEALER speaking the front protocol, or a
ROUTER posing as a node; the nodes are real, on loopback. Every case ends by
checking the victim still serves a normal message.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import pytest
import zmq

from paglets.client.hosts import HostRef
from paglets.core.errors import ProtocolError, SerializationError
from paglets.core.messages import Message
from paglets.runtime.host import Host
from paglets.wire import protocol
from tests.conftest import wait_until

FAST = {"mesh_gossip_interval": 0.1, "mesh_offline_after": 1.0}


def entry(name: str, url: str, **fields) -> dict:
    """A well-formed gossip entry, as a live node would send it; ``fields`` override."""
    wire = HostRef(name=name, url=url, heartbeat=5, incarnation=time.time(), last_seen=time.time()).to_wire()
    return {**wire, **fields}


class Listener:
    """A ROUTER on a free loopback port: an address the attacker owns. Records every frame set;
    with ``answer`` it plays a node and answers each request with ``answer(op, header)``."""

    def __init__(self, ctx: zmq.Context, answer=None):
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.url = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"
        self.ops: list[str] = []
        self._answer = answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for _ in range(1_000_000):  # bounded; stop() ends it long before
            if self._stop.is_set():
                return
            if not self.sock.poll(50):
                continue
            frames = self.sock.recv_multipart()
            try:
                request = protocol.parse_request(frames)
            except ProtocolError:
                self.ops.append("?")
                continue
            self.ops.append(request.op)
            if self._answer is not None:
                reply = protocol.ok_frames(request.cid, self._answer(request.op, request.header))
                self.sock.send_multipart([request.peer, *reply])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(0)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(0)


@pytest.fixture
def listeners(ctx):
    made: list[Listener] = []

    def listener(answer=None) -> Listener:
        made.append(Listener(ctx, answer))
        return made[-1]

    yield listener
    for one in made:
        one.stop()


def front_request(ctx: zmq.Context, address: str, op: str, header: dict) -> list[bytes]:
    """One request from a raw DEALER, as any peer on the network can send it; the reply frames."""
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(address)
        sock.send_multipart(protocol.request_frames(op, b"g1", header))
        assert sock.poll(10_000), f"no answer to {op}"
        return sock.recv_multipart()
    finally:
        sock.close(0)


def gossip(ctx: zmq.Context, address: str, table: list, sender: str | None = None) -> protocol.Reply:
    header = {"table": table, **({"from": sender} if sender is not None else {})}
    return protocol.parse_reply(front_request(ctx, address, "gossip", header))


def own_heartbeat(node) -> int:
    return node.mesh.lookup(node.name).heartbeat


def rounds_pass(node, count: int) -> None:
    """Wait until ``node`` has run ``count`` more gossip rounds (its own heartbeat counts them)."""
    start = own_heartbeat(node)
    wait_until(lambda: own_heartbeat(node) >= start + count, 20, f"{count} gossip rounds of {node.name}")


class Warnings(logging.Handler):
    """Signals a WARNING (or worse) from the mesh that mentions ``text``."""

    def __init__(self, text: str):
        super().__init__(logging.WARNING)
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()

    def __enter__(self) -> Warnings:
        logging.getLogger("paglets.mesh").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("paglets.mesh").removeHandler(self)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """alpha (the victim), beta (the node whose name is attacked) and gamma (a third node).

    Shared by the cases that must change nothing (each checks so); nodes cost sockets that the
    process-wide client caches keep, so the module does not start a mesh per case.
    """
    root = tmp_path_factory.mktemp("gossip-mesh")
    nodes = []
    try:
        for name, peers in (("alpha", []), ("beta", ["alpha"]), ("gamma", ["alpha"])):
            urls = [nodes[0].address] if peers else []
            node = Host(name, peers=urls, persistence_dir=root / name, mesh_lan_discovery=False, **FAST)
            node.start_background()
            nodes.append(node)
        alpha, beta, gamma = nodes
        for node in nodes:
            for other in ("alpha", "beta", "gamma"):
                assert node.mesh.wait_for_host(other, 10) is not None, f"{node.name} never heard of {other}"
        # The mesh offers a wait for a node, not for how it knows it: read the table.
        wait_until(lambda: alpha.mesh.is_firsthand("beta"), 10, "alpha to reach beta itself")
        echo = alpha.create("paglets.examples.echo:EchoPaglet")
        yield alpha, beta, gamma, echo
    finally:
        for node in reversed(nodes):
            node.stop()


def still_serves(echo) -> None:
    assert echo.send(Message("echo", arg="still here")) == "still here"


def beta_url_everywhere(mesh) -> set[str]:
    alpha, _beta, gamma, _echo = mesh
    return {alpha.mesh.lookup("beta").url, gamma.mesh.lookup("beta").url}


# -- lies about another node -------------------------------------------------------------------------
def test_a_huge_incarnation_for_a_known_node_is_refused_outright(ctx, mesh, listeners):
    alpha, beta, _gamma, echo = mesh
    trap = listeners()
    reply = gossip(ctx, alpha.address, [entry("beta", trap.url, incarnation=1e18, heartbeat=2**40)])
    assert not reply.ok and reply.header["type"] == "SerializationError" and "incarnation" in reply.header["message"]
    rounds_pass(alpha, 5)
    assert beta_url_everywhere(mesh) == {beta.address}
    assert trap.ops == []  # alpha never dialled the address the lie named
    still_serves(echo)


def test_hearsay_that_moves_a_known_node_moves_nothing_and_is_never_dialled(ctx, mesh, listeners):
    alpha, beta, _gamma, echo = mesh
    trap = listeners()
    lie = entry("beta", trap.url, incarnation=time.time() + 3600, heartbeat=2**50)
    for _ in range(5):
        assert gossip(ctx, alpha.address, [lie]).ok
    rounds_pass(alpha, 10)
    assert beta_url_everywhere(mesh) == {beta.address}
    assert trap.ops == []
    still_serves(echo)


def test_an_attacker_claiming_to_be_a_live_node_is_refused_without_dialling_its_address(ctx, mesh, listeners):
    alpha, beta, _gamma, echo = mesh
    trap = listeners(answer=lambda op, header: {"name": "beta"})  # it would even answer a ping as beta
    with Warnings("still answers there") as refused:
        reply = gossip(ctx, alpha.address, [entry("beta", trap.url, incarnation=time.time() + 60)], sender="beta")
        assert reply.ok  # the gossip is answered; its sender's own entry waits for proof
        assert refused.seen.wait(20), "alpha never checked the claim against beta"
    rounds_pass(alpha, 5)
    assert beta_url_everywhere(mesh) == {beta.address}
    assert trap.ops == []  # beta still answers where alpha knows it: the claimed address is never asked
    still_serves(echo)


def test_a_peer_that_answers_gossip_as_another_live_node_does_not_take_its_name(ctx, make_node, listeners):
    alpha = make_node("alpha", **FAST)
    beta = make_node("beta", peers=[alpha.address], **FAST)
    wait_until(lambda: alpha.mesh.is_firsthand("beta"), 10, "alpha to reach beta itself")
    impostor = listeners(
        answer=lambda op, header: (
            {"name": "beta"} if op == "ping" else {"from": "beta", "table": [entry("beta", impostor.url)]}
        )
    )
    with Warnings("still answers there") as refused:
        alpha.mesh.add_peer(impostor.url)  # an operator was talked into gossiping with it
        assert refused.seen.wait(20), "alpha never checked the impostor's answer against beta"
    rounds_pass(alpha, 5)
    assert alpha.mesh.lookup("beta").url == beta.address
    assert "ping" not in impostor.ops and "gossip" in impostor.ops
    echo = alpha.create("paglets.examples.echo:EchoPaglet")
    still_serves(echo)


def test_hearsay_fills_an_unknown_name_but_a_proven_address_replaces_it(ctx, listeners, make_node):
    alpha = make_node("alpha", **FAST)
    echo = alpha.create("paglets.examples.echo:EchoPaglet")
    nowhere = listeners()  # listens, never answers
    assert gossip(ctx, alpha.address, [entry("delta", nowhere.url)]).ok
    assert alpha.mesh.lookup("delta").url == nowhere.url and not alpha.mesh.is_firsthand("delta")
    delta = make_node("delta", peers=[alpha.address], **FAST)
    wait_until(lambda: alpha.mesh.is_firsthand("delta"), 20, "alpha to prove delta's own address")
    assert alpha.mesh.lookup("delta").url == delta.address
    still_serves(echo)


# -- malformed and oversized -----------------------------------------------------------------------
BAD_ENTRIES = {
    "not a map": ["beta"],
    "no name": {"name": None},
    "name not a node name": {"name": "../beta"},
    "name too long": {"name": "b" * 129},
    "url not an address": {"url": "http://127.0.0.1:1"},
    "url too long": {"url": "tcp://" + "h" * 600 + ":1"},
    "http_url scheme": {"http_url": "javascript:alert(1)"},
    "code_version too long": {"code_version": "v" * 65},
    "online not a bool": {"online": "yes"},
    "too many tags": {"tags": [f"t{i}" for i in range(65)]},
    "tag too long": {"tags": ["t" * 65]},
    "tag not a string": {"tags": [["nested"]]},
    "too many properties": {"properties": {f"k{i}": "v" for i in range(65)}},
    "property value too long": {"properties": {"zone": "z" * 513}},
    "property value not a string": {"properties": {"zone": {"deep": [1, 2, 3]}}},
    "negative heartbeat": {"heartbeat": -1},
    "huge heartbeat": {"heartbeat": 2**60},
    "float heartbeat": {"heartbeat": 1.5},
    "infinite incarnation": {"incarnation": math.inf},
    "nan incarnation": {"incarnation": math.nan},
    "huge last_seen": {"last_seen": 1e300},
    "negative count": {"active_count": -5},
    "huge count": {"inactive_count": 2**40},
    "too many fields": {f"x{i}": i for i in range(40)},
}


def bad(case: str):
    fields = BAD_ENTRIES[case]
    return fields if isinstance(fields, list) else [{**entry("mallory", "tcp://127.0.0.1:1"), **fields}]


@pytest.mark.parametrize("case", BAD_ENTRIES)
def test_from_wire_refuses_a_malformed_or_oversized_entry(case):
    with pytest.raises(SerializationError):
        HostRef.from_wire(bad(case)[0])


@pytest.mark.parametrize("case", ["url too long", "too many tags", "huge heartbeat", "nan incarnation", "not a map"])
def test_a_gossip_with_a_bad_entry_is_refused_whole_and_the_node_still_serves(ctx, mesh, case):
    alpha, beta, _gamma, echo = mesh
    good = entry("mallory", "tcp://127.0.0.1:1")
    reply = gossip(ctx, alpha.address, [good, *bad(case)])
    assert not reply.ok and reply.header["type"] == "SerializationError"
    assert alpha.mesh.lookup("mallory") is None  # nothing of a refused gossip is taken
    assert alpha.mesh.lookup("beta").url == beta.address
    still_serves(echo)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"table": [{}] * 1025}, "at most 1024"),
        ({"table": [], "from": "../alpha"}, "not a node name"),
        ({"table": [], "from": "a" * 200}, "not a node name"),
        ({"table": "beta"}, "must be list"),
        ({}, "missing field 'table'"),
    ],
)
def test_a_malformed_gossip_request_is_a_protocol_error(ctx, mesh, header, reason):
    alpha, _beta, _gamma, echo = mesh
    reply = protocol.parse_reply(front_request(ctx, alpha.address, "gossip", header))
    assert not reply.ok and reply.header["type"] == "ProtocolError" and reason in reply.header["message"]
    still_serves(echo)


def test_a_flood_of_unknown_names_is_bounded_and_known_names_stay_put(ctx, make_node):
    alpha = make_node("alpha", **FAST)
    beta = make_node("beta", peers=[alpha.address], **FAST)
    wait_until(lambda: alpha.mesh.is_firsthand("beta"), 10, "alpha to reach beta itself")
    echo = alpha.create("paglets.examples.echo:EchoPaglet")
    for batch in range(3):
        table = [entry(f"ghost-{batch}-{i}", "tcp://127.0.0.1:9") for i in range(1000)]
        assert gossip(ctx, alpha.address, table).ok
    assert len(alpha.list_hosts()) <= protocol.MAX_GOSSIP_ENTRIES
    assert alpha.mesh.lookup("beta").url == beta.address
    still_serves(echo)


def test_garbage_in_the_gossip_reply_of_a_peer_is_ignored(ctx, make_node, listeners):
    alpha = make_node("alpha", **FAST)
    garbage = listeners(answer=lambda op, header: {"from": "mallory", "table": [{"name": 7}] * 3})
    with Warnings("ignoring the gossip answer") as ignored:
        alpha.mesh.add_peer(garbage.url)
        assert ignored.seen.wait(20), "alpha never took in the garbage answer"
    assert [ref.name for ref in alpha.list_hosts()] == ["alpha"]
    echo = alpha.create("paglets.examples.echo:EchoPaglet")
    still_serves(echo)

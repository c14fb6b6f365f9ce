"""The relay under attack: impostors, forged replies, garbage frames, refused nodes.

A name behind a relay belongs to the connection that registered it with the
node's registration secret (and the relay's key). Peers here are raw DEALERs
speaking relay frames, as an attacker would; nodes and relays are real, on
loopback. Every case ends by checking the relay still carries a normal
request to the real node.
"""

from __future__ import annotations

import logging
import signal
import threading

import msgpack
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.errors import AuthenticationError, NodeUnreachableError, ProtocolError
from paglets.relay.server import QUEUED, RelayServer
from paglets.remote.client import HostClient
from paglets.runtime.host import Host
from paglets.wire import protocol, relay
from tests.conftest import wait_until

BEAT = 0.1
KEY = "relay-key"
SECRET = "attacker-secret-" + "x" * 30


def relay_nodes(server: RelayServer) -> dict:
    return {n["name"]: n for n in server.health().get("nodes", [])}


def connected(server: RelayServer, name: str) -> None:
    # The relay publishes a health snapshot each heartbeat; nothing signals a node's hello.
    wait_until(lambda: relay_nodes(server).get(name, {}).get("connected"), 10, f"{name} to reach the relay")


def relay_frame(frames: list[bytes]) -> object:
    """What a relay frame set is, or None for anything else (a front reply the relay answered itself)."""
    try:
        return relay.parse_at_node(frames)
    except ProtocolError:
        return None


class Peer:
    """A raw DEALER on the relay that keeps every frame set it receives."""

    def __init__(self, ctx: zmq.Context, address: str, identity: bytes | None):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if identity is not None:
            self.sock.identity = identity
        self.sock.connect(address)
        self.received: list[list[bytes]] = []

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv(self, timeout: float = 10.0) -> list[bytes]:
        assert self.sock.poll(timeout * 1000), "no frame set arrived"
        frames = self.sock.recv_multipart()
        self.received.append(frames)
        return frames

    def hello(self, name: str, secret: str | None = SECRET, key: str | None = None) -> relay.Welcome | relay.Refused:
        """Say hello and return the relay's answer; the relay answers on this connection in order,
        so everything it sent us before is in ``received`` once this returns."""
        body = {"name": name, **({"secret": secret} if secret else {}), **({"key": key} if key else {})}
        self.send([relay.RELAY_MAGIC, relay.HELLO, protocol.pack(body)])
        for _ in range(1000):
            frame = relay_frame(self.recv())
            if isinstance(frame, (relay.Welcome, relay.Refused)):
                return frame
        raise AssertionError("the relay never answered the hello")

    def ask(self, node: str, cid: bytes, key: str | None = KEY) -> protocol.Reply:
        self.send([*relay.to_prefix(node), *protocol.request_frames("ping", cid, {"key": key} if key else {})])
        return protocol.parse_reply(self.recv())

    def waiting(self) -> bool:
        return bool(self.sock.poll(0))


@pytest.fixture
def peers():
    ctx = zmq.Context()
    made: list[Peer] = []

    def peer(address: str, identity: bytes | None = None) -> Peer:
        made.append(Peer(ctx, address, identity))
        return made[-1]

    yield peer
    for one in made:
        one.sock.close(0)
    ctx.term()


@pytest.fixture
def keyed_relay(tmp_path):
    server = RelayServer(port=0, data_dir=tmp_path / "relay", heartbeat_interval=BEAT, api_key=KEY)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def natted(keyed_relay, make_node):
    node = make_node("natted", connect_to=keyed_relay.address, heartbeat_interval=BEAT, api_key=KEY)
    connected(keyed_relay, "natted")
    return node


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One keyed relay and its node, for the cases that must change nothing (each checks so);
    nodes cost sockets that the process-wide client caches keep, so not one per case."""
    root = tmp_path_factory.mktemp("shared-relay")
    server = RelayServer(port=0, data_dir=root / "relay", heartbeat_interval=BEAT, api_key=KEY)
    server.start()
    node = Host(
        "natted", connect_to=server.address, heartbeat_interval=BEAT, api_key=KEY,
        persistence_dir=root / "natted", mesh_lan_discovery=False,
    )  # fmt: skip
    try:
        node.start_background()
        connected(server, "natted")
        yield server, node
    finally:
        node.stop()
        server.stop()


def still_serves(node) -> None:
    assert HostClient(api_key=KEY, timeout=10).ping(node.address)["name"] == node.name


class Errors(logging.Handler):
    """Collects ERROR records that mention ``text``; ``wait`` blocks until ``count`` have come."""

    def __init__(self, text: str):
        super().__init__(logging.ERROR)
        self.text = text
        self.records: list[logging.LogRecord] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            with self.changed:
                self.records.append(record)
                self.changed.notify_all()

    def wait(self, count: int, timeout: float) -> list[logging.LogRecord]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.records) >= count, timeout), f"{count} errors never came"
            return list(self.records)

    def __enter__(self) -> Errors:
        logging.getLogger("paglets").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("paglets").removeHandler(self)


# -- impostors ---------------------------------------------------------------------------------
def test_an_impostor_with_the_nodes_routing_id_and_the_relay_key_gets_no_request_and_no_key(keyed_relay, natted, peers):
    impostor = peers(keyed_relay.address, identity=b"natted")  # the routing id the node used to have
    client = peers(keyed_relay.address, identity=b"victim-client")
    refused = impostor.hello("natted", key=KEY)
    assert isinstance(refused, relay.Refused) and "registered to another node" in refused.reason
    answers = [client.ask("natted", f"c{i}".encode()) for i in range(20)]
    assert [a.header["name"] for a in answers] == ["natted"] * 20  # the real node answered every one
    assert isinstance(impostor.hello("natted", key=KEY), relay.Refused)  # after anything sent to it before
    assert [type(relay_frame(frames)) for frames in impostor.received] == [relay.Refused] * 2
    assert not any(KEY.encode() in frame for frames in impostor.received for frame in frames)
    still_serves(natted)


def test_forged_replies_from_an_impostor_or_another_node_never_reach_a_client(keyed_relay, natted, peers):
    client = peers(keyed_relay.address, identity=b"victim-client")
    assert client.ask("natted", b"c0").header["name"] == "natted"  # the client has asked natted before
    forged = relay.reply_frames(b"victim-client", protocol.ok_frames(b"c1", {"name": "forged"}))
    impostor = peers(keyed_relay.address, identity=b"natted")
    impostor.send(forged)  # before any hello
    assert isinstance(impostor.hello("natted", key=KEY), relay.Refused)
    impostor.send(forged)  # refused, and answering anyway
    mallory = peers(keyed_relay.address)
    assert isinstance(mallory.hello("mallory", secret="mallory-" + "m" * 40, key=KEY), relay.Welcome)
    mallory.send(forged)  # registered, but as another node: the client never asked mallory
    # Each hello is answered after the frames sent before it were handled: any forged reply the
    # relay passed on is already on its way to the client, ahead of the real answer to c1.
    assert isinstance(impostor.hello("natted", key=KEY), relay.Refused)
    assert isinstance(mallory.hello("mallory", secret="mallory-" + "m" * 40, key=KEY), relay.Welcome)
    assert client.ask("natted", b"c1").header["name"] == "natted"
    assert not client.waiting()
    still_serves(natted)


def test_an_impostor_that_knows_the_node_name_but_not_the_secret_cannot_take_it_while_the_node_is_away(
    keyed_relay, natted, peers, tmp_path, make_node
):
    natted.shutdown()  # the name stays the node's, with it gone
    wait_until(lambda: not relay_nodes(keyed_relay)["natted"]["connected"], 5, "the relay to see the node go")
    impostor = peers(keyed_relay.address)
    assert isinstance(impostor.hello("natted", key=KEY), relay.Refused)
    with pytest.raises(NodeUnreachableError, match="away"):
        HostClient(api_key=KEY, timeout=5).ping(natted.address)
    back = make_node(
        "natted", connect_to=keyed_relay.address, heartbeat_interval=BEAT, api_key=KEY,
        persistence_dir=tmp_path / "natted",
    )  # fmt: skip
    connected(keyed_relay, "natted")
    still_serves(back)


def test_the_relay_keeps_owners_across_a_restart_and_stores_only_a_hash(keyed_relay, natted, peers, tmp_path):
    secret = (tmp_path / "natted" / "relay-secret").read_text().strip()
    record = (tmp_path / "relay" / "owners" / "natted").read_text()
    assert secret not in record and len(record.strip()) == 64  # a SHA-256, in hex
    port = keyed_relay.port
    keyed_relay.stop()
    again = RelayServer(port=port, data_dir=tmp_path / "relay", heartbeat_interval=BEAT, api_key=KEY)
    again.start()
    try:
        impostor = peers(again.address)
        assert isinstance(impostor.hello("natted", key=KEY), relay.Refused)
        connected(again, "natted")  # the node proves its name to the new relay
        still_serves(natted)
    finally:
        again.stop()


# -- refused nodes say so --------------------------------------------------------------------------
def test_a_node_whose_name_is_taken_logs_an_error_with_the_reason_each_time(keyed_relay, peers, make_node):
    owner = peers(keyed_relay.address)
    assert isinstance(owner.hello("natted", key=KEY), relay.Welcome)
    with Errors("refused our registration") as errors:
        node = make_node("natted", connect_to=keyed_relay.address, heartbeat_interval=BEAT, api_key=KEY)
        records = errors.wait(2, timeout=20)
    assert all("registered to another node" in r.getMessage() for r in records)
    assert records[0].name == "paglets.relay_link"
    with pytest.raises(NodeUnreachableError):  # the owner's connection holds the name, and answers nothing
        HostClient(api_key=KEY, timeout=1).ping(node.address)


def test_a_node_without_the_relay_key_logs_an_error_saying_so(keyed_relay, make_node):
    with Errors("refused our registration") as errors:
        make_node("keyless", connect_to=keyed_relay.address, heartbeat_interval=BEAT)
        records = errors.wait(2, timeout=20)
    assert all("missing or wrong API key" in r.getMessage() for r in records)
    assert "keyless" not in relay_nodes(keyed_relay)


@pytest.mark.timeout(120)
def test_a_refused_node_process_logs_errors_after_ready(relay_process, node_process, peers):
    server = relay_process("relay", "--heartbeat", "0.1")
    owner = peers(server.address)
    assert isinstance(owner.hello("natted"), relay.Welcome)
    node = node_process("natted", "--connect", server.address, "--heartbeat", "0.1")
    wait_until(lambda: node.log_path.read_text().count("refused our registration") >= 2, 20, "two error lines")
    lines = [line for line in node.log_path.read_text().splitlines() if "refused our registration" in line]
    assert all(" ERROR paglets.relay_link: " in line and "registered to another node" in line for line in lines)


@pytest.mark.timeout(120)
def test_a_restarted_node_registers_again_while_its_old_connection_still_looks_alive(relay_process, node_process):
    # The relay would call a node away only after 3 x 10 s of silence: the killed one still looks connected.
    server = relay_process("relay", "--heartbeat", "10")
    first = node_process("natted", "--connect", server.address, "--heartbeat", "0.1")
    client = HostClient(timeout=10)
    assert client.health(first.address)["pid"] == first.pid
    first.stop(signal.SIGKILL)  # a crash: its data dir (and relay secret) stay, the relay has not noticed yet
    second = node_process("natted", "--connect", server.address, "--heartbeat", "0.1")  # the same data dir
    assert second.address == first.address
    assert client.health(second.address)["pid"] == second.pid
    assert client.health(second.address)["pid"] == second.pid


def test_a_node_registering_a_free_name_works_as_before(keyed_relay, natted, make_node):
    other = make_node("other", connect_to=keyed_relay.address, heartbeat_interval=BEAT, api_key=KEY)
    connected(keyed_relay, "other")
    still_serves(other)
    still_serves(natted)


# -- garbage ------------------------------------------------------------------------------------------
GARBAGE = [
    [b"\x00" * 10],
    [relay.RELAY_MAGIC],
    [relay.RELAY_MAGIC, b"explode", b"x"],
    [relay.RELAY_MAGIC, relay.TO, b"../../etc/passwd", b"x"],
    [relay.RELAY_MAGIC, relay.TO, b"n" * 100_000, *protocol.request_frames("ping", b"c", {})],
    [relay.RELAY_MAGIC, relay.TO, b"natted", b"not a request"],
    [relay.RELAY_MAGIC, relay.TO, b"ghost", *protocol.request_frames("send", b"c", {"agent": "a"}, (b"m",))],
    [relay.RELAY_MAGIC, relay.REPLY, b"\x00" * 5, b"x"],
    [relay.RELAY_MAGIC, relay.REPLY, QUEUED + b"\x00\x00\x00\x00", b"x"],
    [relay.RELAY_MAGIC, relay.HELLO],
    [relay.RELAY_MAGIC, relay.HELLO, b"\xc1"],
    [relay.RELAY_MAGIC, relay.HELLO, b"\x80" * 4, b"extra"],
    [relay.RELAY_MAGIC, relay.HELLO, b"\xdf\xff\xff\xff\xff"],  # a map claiming 4 billion entries
    [relay.RELAY_MAGIC, relay.HELLO, msgpack.packb({"name": "natted", "secret": "s" * 100_000})],
    [relay.RELAY_MAGIC, relay.HELLO, msgpack.packb({"name": ["natted"], "secret": SECRET})],
    [relay.RELAY_MAGIC, relay.HELLO, msgpack.packb({"name": "natted\n", "secret": SECRET})],
    [relay.RELAY_MAGIC, relay.HELLO, msgpack.packb({"name": "natted", "secret": 12345})],
    [relay.RELAY_MAGIC, relay.HELLO, msgpack.packb({"name": "natted", "secret": SECRET, "key": "k" * 100_000})],
]


@pytest.mark.parametrize("frames", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_frame_sets_change_nothing_and_the_relay_still_serves(shared, peers, frames):
    keyed_relay, natted = shared
    attacker = peers(keyed_relay.address)
    attacker.send(frames)
    answer = attacker.hello("natted", key=KEY)  # handled after the garbage: the relay is alive
    assert isinstance(answer, relay.Refused)
    assert not any(isinstance(relay_frame(f), relay.FromClient) for f in attacker.received)
    still_serves(natted)


def test_a_flood_of_hellos_for_one_name_from_many_connections_is_all_refused(shared, peers):
    keyed_relay, natted = shared
    # One takes the node's old routing id; a second with the same id would wait, unread, behind it.
    attackers = [peers(keyed_relay.address, identity=None if i else b"natted") for i in range(20)]
    for i, attacker in enumerate(attackers):
        assert isinstance(attacker.hello("natted", secret=f"guess-{i:04d}-" + "g" * 30, key=KEY), relay.Refused)
    still_serves(natted)


def test_a_relay_that_holds_its_most_names_refuses_a_new_one_and_keeps_serving(tmp_path, peers, make_node):
    server = RelayServer(port=0, data_dir=tmp_path / "small", heartbeat_interval=BEAT, api_key=KEY, max_names=2)
    server.start()
    try:
        node = make_node("natted", connect_to=server.address, heartbeat_interval=BEAT, api_key=KEY)
        connected(server, "natted")
        assert isinstance(peers(server.address).hello("one", key=KEY), relay.Welcome)
        refused = peers(server.address).hello("two", key=KEY)
        assert isinstance(refused, relay.Refused) and "most node names" in refused.reason
        still_serves(node)
    finally:
        server.stop()


def test_a_wrong_key_is_refused_before_anything_is_recorded(shared, peers):
    keyed_relay, natted = shared
    answer = peers(keyed_relay.address).hello("squatter", key="wrong")
    assert isinstance(answer, relay.Refused) and "API key" in answer.reason
    assert not (keyed_relay.data_dir / "owners" / "squatter").exists()
    with pytest.raises(AuthenticationError):
        HostClient(api_key="wrong", timeout=5).ping(natted.address)  # the node checks its key too
    still_serves(natted)


# -- the parsers, fuzzed -----------------------------------------------------------------------------


def packb(body: dict) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FRAMES = st.lists(st.binary(max_size=64), max_size=6)
KINDS = st.sampled_from([relay.TO, relay.FROM, relay.REPLY, relay.HELLO, relay.WELCOME, relay.REFUSED, b"x"])
BODIES = st.dictionaries(  # every key a relay body may hold, with values of any type
    st.sampled_from(["name", "secret", "key", "reason", "relay", "epoch", "other"]),
    st.one_of(st.none(), INTS, st.text(max_size=300), st.binary(max_size=20), st.lists(INTS)),
    max_size=5,
)


@settings(max_examples=300, deadline=None, database=None)  # no .hypothesis/ in the repo
@given(source=st.binary(min_size=1, max_size=20), kind=KINDS, rest=FRAMES, body=BODIES)
def test_parse_at_relay_returns_a_frame_or_raises_protocol_error(source, kind, rest, body):
    shapes = ([source, *rest], [source, relay.RELAY_MAGIC, kind, *rest], [source, relay.RELAY_MAGIC, kind, packb(body)])
    for frames in shapes:
        try:
            parsed = relay.parse_at_relay(frames)
        except ProtocolError:
            continue
        assert isinstance(parsed, (relay.ToNode, relay.NodeReply, relay.Hello))
        if isinstance(parsed, relay.Hello):
            assert parsed.secret is None or relay.SECRET_CHARS[0] <= len(parsed.secret) <= relay.SECRET_CHARS[1]


@settings(max_examples=300, deadline=None, database=None)  # no .hypothesis/ in the repo
@given(kind=KINDS, rest=FRAMES, body=BODIES)
def test_parse_at_node_returns_a_frame_or_raises_protocol_error(kind, rest, body):
    for frames in (rest, [relay.RELAY_MAGIC, kind, *rest], [relay.RELAY_MAGIC, kind, packb(body)]):
        try:
            parsed = relay.parse_at_node(frames)
        except ProtocolError:
            continue
        assert isinstance(parsed, (relay.FromClient, relay.Welcome, relay.Refused))
        if isinstance(parsed, relay.Refused):
            assert 0 < len(parsed.reason) <= relay.MAX_REASON_CHARS


# -- routing ids never leak ----------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_a_node_never_learns_a_client_routing_id_so_it_cannot_crash_the_relay(relay_process, peers, make_node):
    # libzmq aborts a ROUTER's process when a peer has claimed the routing id it gives the next
    # anonymous connection (consecutive: 00 + a 4-byte counter). A node learning one could crash the relay.
    server = relay_process("relay", "--heartbeat", "0.1")
    evil = peers(server.address)
    assert isinstance(evil.hello("evil"), relay.Welcome)
    asker = peers(server.address)
    asker.send([*relay.to_prefix("evil"), *protocol.request_frames("ping", b"c1", {})])
    token = relay_frame(evil.recv()).client
    assert not token.startswith(b"\x00")
    counter = int.from_bytes(token[-4:], "big")
    for step in range(1, 4):  # the ids the relay would give next, were the token a routing id
        peers(server.address, identity=b"\x00" + ((counter + step) % 2**32).to_bytes(4, "big")).send([b"x"])
    for _ in range(4):
        assert isinstance(peers(server.address).hello("evil", secret="other-" + "o" * 40), relay.Refused)
    assert server.proc.poll() is None, "the relay process died"
    node = make_node("natted", connect_to=server.address, heartbeat_interval=BEAT)
    assert HostClient(timeout=10).ping(node.address)["name"] == "natted"

"""Keys, CurveZMQ, and hostile bytes on every socket and endpoint."""

from __future__ import annotations

import http.client
import pickle
import urllib.request

import msgpack
import pytest
import zmq

from paglets.client.addresses import route
from paglets.client.security import CurveIdentity, generate_keys
from paglets.core.errors import AuthenticationError, NodeUnreachableError
from paglets.core.messages import Message
from paglets.examples.echo import EchoPaglet
from paglets.relay.server import RelayServer
from paglets.remote.client import HostClient
from paglets.wire import protocol
from paglets.wire.relay import RELAY_MAGIC
from tests import sample_paglets as sp
from tests.integration.test_relay import connected

PICKLE = pickle.dumps({"op": "send", "agent": "x"}, protocol=2)


# -- API keys ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("op", "header"),
    [
        ("health", {}),
        ("list", {}),
        ("send", None),
        ("create", {"cls": "paglets.examples.echo:EchoPaglet"}),
        ("gossip", {"table": []}),
        ("prepare", {"agent": "a1", "cls": "x:Y", "kind": "dispatch", "token": "t", "source": "tcp://h:1", "ttl": 5}),
    ],
)
def test_every_zmq_op_needs_the_key(make_node, op, header):
    node = make_node("locked", api_key="s3cret")
    proxy = node.create(EchoPaglet)
    payload: tuple[bytes, ...] = ()
    if op == "send":
        header = {"agent": proxy.agent_id}
        payload = (b"\x90",)
    if op == "create":
        payload = (b"", b"")
    for client in (HostClient(), HostClient(api_key="wrong")):
        with pytest.raises(AuthenticationError):
            client.request(node.address, op, dict(header), payload)


def test_nodes_sharing_a_key_mesh_and_move_paglets(make_node):
    fast = {"mesh_gossip_interval": 0.1, "mesh_offline_after": 1.0, "api_key": "cluster"}
    alpha = make_node("alpha", **fast)
    make_node("beta", peers=[alpha.address], **fast)
    assert alpha.mesh.wait_for_host("beta", 5) is not None
    proxy = alpha.create(sp.TravellerPaglet)
    alpha.dispatch(proxy.agent_id, "beta")
    assert proxy.send("where") == "beta"


def test_http_refuses_missing_and_wrong_keys(make_node):
    node = make_node("locked", api_key="s3cret")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        request = urllib.request.Request(f"{node.http_address}/agents", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 401
    ok = urllib.request.Request(f"{node.http_address}/agents", headers={"Authorization": "Bearer s3cret"})
    with urllib.request.urlopen(ok, timeout=5) as response:
        assert response.status == 200


# -- CurveZMQ ------------------------------------------------------------------------------
@pytest.fixture
def keys(tmp_path):
    allow = tmp_path / "allow"
    allow.mkdir()
    server_public, server_secret = generate_keys(tmp_path / "server", "cluster")
    alice_public, alice_secret = generate_keys(tmp_path / "clients", "alice")
    _mallory_public, mallory_secret = generate_keys(tmp_path / "clients", "mallory")
    for public in (server_public, alice_public):  # the cluster's own key, for its nodes' own calls
        (allow / public.name).write_bytes(public.read_bytes())
    return {
        "allow": allow,
        "server_public": server_public,
        "server_secret": server_secret,
        "alice": CurveIdentity.from_files(alice_secret, server_public),
        "mallory": CurveIdentity.from_files(mallory_secret, server_public),
    }


def test_curve_lets_allowed_keys_in_and_keeps_unknown_ones_out(make_node, keys):
    node = make_node("secure", curve_secret=keys["server_secret"], curve_allow=keys["allow"])
    alice = HostClient(curve=keys["alice"], timeout=3)
    proxy = alice.create(node.address, "tests.sample_paglets:WorkingPaglet")
    child = proxy.send(Message("spawn", arg="inside"))  # the worker's own calls use the node's key
    assert alice.get_state(node.address, child)["created_with"] == "inside"
    for stranger in (HostClient(curve=keys["mallory"], timeout=1), HostClient(timeout=1)):
        with pytest.raises(NodeUnreachableError):
            stranger.ping(node.address)


def test_curve_nodes_mesh_and_move_paglets(make_node, keys):
    secure = {"curve_secret": keys["server_secret"], "curve_allow": keys["allow"], "mesh_gossip_interval": 0.1}
    alpha = make_node("alpha", **secure)
    beta = make_node("beta", peers=[alpha.address], **secure)
    assert alpha.mesh.wait_for_host("beta", 5) is not None
    proxy = alpha.create(sp.TravellerPaglet)
    alpha.dispatch(proxy.agent_id, beta.address)
    assert HostClient(curve=keys["alice"]).send(beta.address, proxy.agent_id, "where") == "beta"


# -- hostile bytes -------------------------------------------------------------------------
def still_serving(node):
    proxy = node.create(EchoPaglet)
    assert proxy.send(Message("echo", arg="ok"), timeout=5) == "ok"


HOSTILE = [[PICKLE], [b"\x00" * 5, PICKLE], [b"garbage"] * 7, [protocol.MAGIC, b"send", b"c", PICKLE, PICKLE]]


def test_hostile_frames_on_the_back_socket_are_ignored(node):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.identity = b"not-a-worker"
    sock.connect(node.broker.back_endpoint)
    try:
        for frames in [*HOSTILE, [b"ready", b"", msgpack.packb({"nonce": "x"})], [b"rep", b"\x00" * 8, b"ok"]]:
            sock.send_multipart(frames)
        still_serving(node)
    finally:
        sock.close(0)


def test_hostile_frames_on_the_relay_are_ignored(tmp_path, make_node):
    relay = RelayServer(port=0, data_dir=tmp_path / "relay", heartbeat_interval=0.1)
    relay.start()
    try:
        natted = make_node("natted", connect_to=relay.address, heartbeat_interval=0.1)
        connected(relay, "natted")
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(relay.address)
        try:
            for frames in [
                *HOSTILE,
                [RELAY_MAGIC, b"to", b"natted", PICKLE],
                [RELAY_MAGIC, b"reply", b"someone", PICKLE],
                [RELAY_MAGIC, b"hello", PICKLE],
                [RELAY_MAGIC, b"to"],
            ]:
                sock.send_multipart(frames)
            # The relay reads one connection in order: a ping sent after the garbage is routed after it.
            _, prefix = route(natted.address)
            sock.send_multipart([*prefix, *protocol.request_frames("ping", b"after", {}, ())])
            # The only answer before it: the plain front request (cid "c") is told this is a relay, not a node.
            assert sock.poll(10_000), "the relay did not answer the plain front request"
            not_a_node = protocol.parse_reply(sock.recv_multipart())
            assert sock.poll(10_000), "the relay did not pass the ping on"
            pong = protocol.parse_reply(sock.recv_multipart())
        finally:
            sock.close(0)
        assert not_a_node.cid == b"c" and not not_a_node.ok and not_a_node.header["reached"] == "relay"
        assert pong.cid == b"after" and pong.ok and pong.header["name"] == "natted"
        still_serving(natted)
    finally:
        relay.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/agents"),
        ("POST", "/agents/a1/messages"),
        ("POST", "/agents/a1/dispatch"),
        ("POST", "/agents/a1/clone"),
        ("POST", "/agents/a1/retract"),
        ("POST", "/agents/a1/deactivate"),
        ("POST", "/envelopes"),
        ("GET", "/agents/a1/state"),
        ("DELETE", "/agents/a1"),
    ],
)
def test_pickle_on_every_http_endpoint_is_refused(node, method, path):
    connection = http.client.HTTPConnection(node.http_address.removeprefix("http://"), timeout=5)
    for content_type in ("application/json", "application/msgpack", "application/python-pickle"):
        connection.request(method, path, body=PICKLE, headers={"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        assert 400 <= response.status < 500
    connection.close()
    still_serving(node)

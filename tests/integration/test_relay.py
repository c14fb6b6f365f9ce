"""A node behind a relay: reached only through it, doing everything a node does, both ways."""

from __future__ import annotations

import json
import urllib.request

import pytest

from paglets.core.errors import MessageQueuedError, NodeUnreachableError
from paglets.core.messages import MIN_PRIORITY, Message
from paglets.relay.server import RelayServer
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from tests import sample_paglets as sp
from tests.conftest import wait_until

BEAT = 0.1


@pytest.fixture
def relay(tmp_path):
    server = RelayServer(port=0, data_dir=tmp_path / "relay", heartbeat_interval=BEAT)
    server.start()
    yield server
    server.stop()


def relay_nodes(relay):
    return {n["name"]: n for n in relay.health().get("nodes", [])}


def connected(relay, name):
    # The relay publishes a health snapshot each heartbeat; nothing signals a node's hello.
    return wait_until(lambda: relay_nodes(relay).get(name, {}).get("connected"), 5, f"{name} to reach the relay")


@pytest.fixture
def natted(relay, make_node):
    node = make_node("natted", connect_to=relay.address, heartbeat_interval=BEAT)
    connected(relay, "natted")
    return node


def test_a_relayed_node_listens_nowhere_and_is_addressed_through_the_relay(relay, natted):
    assert natted.address == f"relay+{relay.address}/natted"
    assert natted.http_address is None and natted.broker.front_address == ""
    client = HostClient()
    assert client.health(natted.address)["name"] == "natted"
    proxy = client.create(natted.address, "tests.sample_paglets:TravellerPaglet")
    assert proxy.host_url == natted.address
    assert proxy.send("count") == 1 and proxy.send("where") == "natted"
    assert client.get_state(natted.address, proxy.agent_id)["count"] == 1
    assert [a["agent_id"] for a in client.list_agents(natted.address)] == [proxy.agent_id]


def test_a_burst_of_oneway_mail_through_the_relay_is_all_accepted_and_handled(relay, natted):
    client = HostClient()
    proxy = client.create(natted.address, "tests.sample_paglets:BacklogPaglet")
    for i in range(2000):
        proxy.send_oneway(Message("note", arg=i))
    client.flush(natted.address, 20)  # acks come back through the relay, several per frame set
    # One handler: a lowest-priority question sent after the notes is answered after all of them.
    seen = proxy.send(Message("seen", priority=MIN_PRIORITY), timeout=30)
    assert [arg for arg, _ in seen] == list(range(2000))


def test_paglets_move_both_ways_through_the_relay(relay, natted, make_node):
    alpha = make_node("alpha")
    proxy = alpha.create(sp.TravellerPaglet)
    stale = PagletProxy(alpha.address, proxy.agent_id)
    proxy.dispatch(natted.address)
    assert proxy.send("where") == "natted"
    assert stale.send("where") == "natted" and stale.host_url == natted.address  # forwarded via the relay
    reply = proxy.send(Message("go", arg=alpha.address))  # the relayed node dispatches out
    assert reply["now_at"] == alpha.address and proxy.send("where") == "alpha"
    copy = proxy.clone(natted.address)
    assert copy.send("where") == "natted"
    back = natted.clone(copy.agent_id, alpha.address)
    assert back.send("where") == "alpha"
    assert alpha.retract(natted.address, copy.agent_id).send("where") == "alpha"
    remote = alpha.create_remote(natted.address, "tests.sample_paglets:TravellerPaglet")
    assert remote.send("where") == "natted"


def test_a_relayed_paglet_talks_to_paglets_elsewhere(relay, natted, make_node):
    alpha = make_node("alpha")
    echo = alpha.create("paglets.examples.echo:EchoPaglet")
    worker = HostClient().create(natted.address, "tests.sample_paglets:WorkingPaglet")
    assert worker.send(Message("ask-remote", {"url": alpha.address, "agent": echo.agent_id, "value": 7})) == 7


def test_mail_for_an_away_node_waits_at_the_relay_and_arrives_in_order(relay, make_node, tmp_path):
    data = tmp_path / "natted-data"
    node = make_node("natted", connect_to=relay.address, heartbeat_interval=BEAT, persistence_dir=data)
    connected(relay, "natted")
    client = HostClient(timeout=5)
    proxy = client.create(node.address, "tests.sample_paglets:SerialParkingPaglet")
    proxy.send(Message("note", arg="before"))
    node.shutdown()  # its paglets are parked, to wake when it is back
    wait_until(lambda: not relay_nodes(relay)["natted"]["connected"], 5, "the relay to see the node go")
    for i in range(4):
        note = Message("note", arg=i)
        with pytest.raises(MessageQueuedError) as raised:  # no handler ran: there is no reply to give
            proxy.send(note)
        assert raised.value.message_id == note.message_id and f"relay {relay.name}" in str(raised.value)
    proxy.send_oneway(Message("note", arg=4))  # oneway mail is simply accepted
    client.flush(node.address, 5)
    wait_until(lambda: relay_nodes(relay)["natted"]["queue_depth"] == 5, 5, "the relay to report five queued")
    with pytest.raises(NodeUnreachableError, match="away"):
        client.list_agents(node.address)
    make_node("natted", connect_to=relay.address, heartbeat_interval=BEAT, persistence_dir=data)
    connected(relay, "natted")
    # The relay sends its queue the moment the node says hello, so this comes after the five.
    assert proxy.send("seen", timeout=10) == ["before", 0, 1, 2, 3, 4]
    wait_until(lambda: relay_nodes(relay)["natted"]["queue_depth"] == 0, 5, "the relay's queue to empty")


def test_the_relay_health_endpoint_lists_nodes(relay, natted):
    with urllib.request.urlopen(f"{relay.http_address}/health", timeout=5) as response:
        health = json.load(response)
    [entry] = health["nodes"]
    last_seen = entry.pop("last_seen_s")
    assert entry == {"name": "natted", "connected": True, "queue_depth": 0}
    assert isinstance(last_seen, float) and last_seen >= 0.0  # seconds since its last heartbeat


def test_the_node_comes_back_after_the_relay_restarts(relay, natted, tmp_path):
    client = HostClient(timeout=3)
    proxy = client.create(natted.address, "tests.sample_paglets:TravellerPaglet")
    port = relay.port
    relay.stop()
    again = RelayServer(port=port, data_dir=tmp_path / "relay", heartbeat_interval=BEAT)
    again.start()
    try:
        connected(again, "natted")
        assert proxy.send("where", timeout=5) == "natted"
    finally:
        again.stop()


def test_an_unknown_node_behind_the_relay_is_a_clear_error(relay):
    with pytest.raises(NodeUnreachableError, match="not connected"):
        HostClient(timeout=3).ping(f"relay+{relay.address}/ghost")


def test_a_relay_with_a_key_refuses_nodes_without_it(tmp_path, make_node):
    locked = RelayServer(port=0, data_dir=tmp_path / "locked", heartbeat_interval=BEAT, api_key="relay-key")
    locked.start()
    try:
        intruder = make_node("intruder", connect_to=locked.address, heartbeat_interval=BEAT)
        welcome = make_node("member", connect_to=locked.address, heartbeat_interval=BEAT, api_key="relay-key")
        connected(locked, "member")
        assert "intruder" not in relay_nodes(locked)
        with pytest.raises(NodeUnreachableError, match="not connected"):
            HostClient(api_key="relay-key", timeout=3).ping(intruder.address)
        assert HostClient(api_key="relay-key").ping(welcome.address)["name"] == "member"
    finally:
        locked.stop()

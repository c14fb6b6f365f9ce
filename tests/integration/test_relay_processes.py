"""Relays and relayed nodes as real processes: kills, restarts, and a node only the relay can reach."""

from __future__ import annotations

import json
import random
import signal
import socket
import textwrap
import threading
import time

import pytest

from paglets.core.errors import MessageQueuedError, PagletError
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from tests.conftest import start_relay_process, wait_until
from tests.netns import ProcessLines, netns_lab_factory  # noqa: F401  (a fixture)

SERIAL = "tests.sample_paglets:SerialParkingPaglet"
FAST = ("--heartbeat", "0.1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def fixed_relay(tmp_path):
    """A relay on a fixed port, so it can be killed and started again where nodes expect it."""
    port = free_port()
    started = []

    def start():
        relay = start_relay_process("relay", tmp_path / "relay-data", "--port", str(port), *FAST)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.stop(signal.SIGKILL)


@pytest.mark.timeout(120)
def test_relay_killed_during_traffic_loses_no_acknowledged_message(fixed_relay, node_process):
    relay = fixed_relay()
    node = node_process("natted", "--connect", relay.address, *FAST)
    client = HostClient(timeout=2)
    agent_id = client.create(node.address, SERIAL).agent_id
    acked: list[str] = []
    progress = threading.Condition()  # notified by the sender at each acknowledged note
    stop = threading.Event()

    def send_notes() -> None:
        for count in range(100_000):
            if stop.is_set():
                return
            try:
                client.send(node.address, agent_id, Message("note", arg=f"n{count}"), timeout=2)
            except PagletError:
                continue  # no answer: not acknowledged (the relay may be down)
            with progress:
                acked.append(f"n{count}")
                progress.notify_all()

    def acked_more_than(count: int, timeout: float, what: str) -> None:
        with progress:
            assert progress.wait_for(lambda: len(acked) > count, timeout), f"timed out waiting for {what}"

    sender = threading.Thread(target=send_notes)
    sender.start()
    rng = random.Random(7)
    try:
        for _ in range(2):
            acked_more_than(len(acked), 20, "traffic to flow")
            time.sleep(rng.uniform(0.2, 0.6))  # a random moment in the traffic, not a wait for anything
            with progress:
                before = len(acked)
            relay.stop(signal.SIGKILL)
            relay = fixed_relay()
            acked_more_than(before + 5, 20, "traffic to flow through the new relay")
    finally:
        stop.set()
        sender.join(20)
    assert not sender.is_alive(), "the sender is still running"
    seen = client.send(node.address, agent_id, "seen", timeout=10)
    assert len(seen) == len(set(seen)), "a note was delivered twice"
    assert [n for n in acked if n not in seen] == []
    assert [seen.index(n) for n in acked] == sorted(seen.index(n) for n in acked)


@pytest.mark.timeout(120)
def test_mail_queued_at_the_relay_survives_a_relay_kill(fixed_relay, node_process):
    relay = fixed_relay()
    node = node_process("natted", "--connect", relay.address, *FAST)
    client = HostClient(timeout=3)
    agent_id = client.create(node.address, SERIAL).agent_id
    assert node.stop(signal.SIGTERM) == 0  # shutdown parks its paglets, to wake on restart
    for i in range(5):
        with pytest.raises(MessageQueuedError):
            client.send(node.address, agent_id, Message("note", arg=i))
    relay.stop(signal.SIGKILL)
    relay = fixed_relay()
    node_process("natted", "--connect", relay.address, *FAST)

    def delivered() -> bool:
        try:
            return client.send(node.address, agent_id, "seen", timeout=5) == [0, 1, 2, 3, 4]
        except PagletError:
            return False  # the node has not said hello to the new relay yet

    wait_until(delivered, 20, "the queued notes to arrive after both restarts")


LISTENER = textwrap.dedent(
    """
    import socket, sys
    server = socket.create_server((sys.argv[1], 0))
    print(server.getsockname()[1], flush=True)
    sys.stdin.read()  # until the lab ends
    """
)

CONNECT = textwrap.dedent(
    """
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
        print("connected", flush=True)
    except OSError as exc:
        print("failed", exc, flush=True)
    """
)

CLIENT_IN_C = textwrap.dedent(
    """
    import json, sys
    from paglets.core.messages import Message
    from paglets.remote.client import HostClient

    relayed, gamma = sys.argv[1], sys.argv[2]
    client = HostClient(timeout=10)
    out = {}
    proxy = client.create(relayed, "tests.sample_paglets:TravellerPaglet")
    out["where"] = proxy.send("where")
    proxy.dispatch(gamma)
    out["after_dispatch"] = proxy.send("where")
    proxy.dispatch(relayed)
    out["back"] = proxy.send("where")
    copy = proxy.clone(gamma)
    out["clone"] = copy.send("where")
    out["count"] = proxy.send("count")
    print(json.dumps(out), flush=True)
    """
)


@pytest.mark.netns
@pytest.mark.timeout(120)
def test_a_node_reachable_only_through_the_relay_does_everything_both_ways(netns_lab_factory, tmp_path):  # noqa: F811
    lab = netns_lab_factory(3)
    a, b, c = lab.namespaces  # a: the public side; b: behind NAT; c: a client somewhere
    lab.restrict_routes(b, reachable=[a])  # b talks to a only
    relay = lab.start_relay(a, "relay", tmp_path / "relay", *FAST)
    gamma = lab.start_node(a, "gamma", tmp_path / "gamma")
    beta = lab.start_node(b, "beta", tmp_path / "beta", "--connect", relay.address, *FAST)
    assert beta.address == f"relay+{relay.address}/beta"

    # Something does listen in b: a reaches it, c does not (b cannot answer c).
    port = ProcessLines(lab.python(b, LISTENER, b.address)).wait_for(str.isdigit, 10, "the listener in b")

    def connect_from(ns) -> str:
        lines = ProcessLines(lab.python(ns, CONNECT, b.address, port))
        return lines.wait_for(lambda text: text.startswith(("connected", "failed")), 10, f"a connect from {ns.name}")

    assert connect_from(a) == "connected"
    assert connect_from(c) == "failed timed out"
    script = lab.python(c, CLIENT_IN_C, beta.address, gamma.address)
    line = ProcessLines(script).wait_for(lambda text: text.startswith("{"), 60, "the client in c")
    result = json.loads(line)
    assert result == {"where": "beta", "after_dispatch": "gamma", "back": "beta", "clone": "gamma", "count": 1}

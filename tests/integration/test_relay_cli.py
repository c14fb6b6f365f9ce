"""``paglets-relay`` and a node behind it, driven as a user would: real processes and the ``paglets`` CLI."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

import pytest
import zmq

from paglets.wire import protocol
from tests.conftest import wait_until
from tests.integration.test_cli import ECHO, cli_env, failed, ok, run_cli

GOSSIP = ("--gossip-interval", "0.2")


def relay_health(relay) -> dict:
    with urllib.request.urlopen(f"{relay.http_address}/health", timeout=5) as answer:
        return json.loads(answer.read())


def host_names(address: str) -> list[str]:
    return [host["name"] for host in json.loads(ok(run_cli("--json", "hosts", address)))]


@pytest.fixture
def relay(relay_process):
    return relay_process("relay")


@pytest.fixture
def hidden(relay, node_process):
    """A node that listens nowhere: it dialled out to the relay."""
    return node_process("hidden", "--connect", relay.address, *GOSSIP)


def test_relay_prints_its_addresses_then_stops_on_sigterm(relay):
    assert relay.address.startswith("tcp://127.0.0.1:")
    assert relay.http_address.startswith("http://127.0.0.1:")
    assert relay_health(relay)["nodes"] == []
    assert relay.stop(signal.SIGTERM) == 0
    assert "Traceback" not in relay.log_path.read_text()


def test_relay_without_http_prints_no_http_line(relay_process):
    quiet = relay_process("quiet", "--no-http")
    assert quiet.address.startswith("tcp://127.0.0.1:") and quiet.http_address is None


def test_node_behind_the_relay_is_addressed_through_it_and_shows_in_relay_health(relay, hidden):
    assert hidden.address == f"relay+{relay.address}/hidden"
    assert hidden.http_address is None
    health = dict(line.split(None, 1) for line in ok(run_cli("health", hidden.address)).splitlines())
    assert health["name"] == "hidden" and health["address"] == hidden.address
    nodes = wait_until(lambda: relay_health(relay)["nodes"], 5, "the relay to list the node")
    assert [(node["name"], node["connected"]) for node in nodes] == [("hidden", True)]


def test_paglet_on_a_relayed_node_is_created_sent_to_and_moved_from_the_command_line(hidden, node_process):
    open_node = node_process("open")
    created = ok(run_cli("create", hidden.address, ECHO, "--id", "rover"))
    assert created.split() == ["agent_id", "rover", "address", hidden.address]
    assert ok(run_cli("send", hidden.address, "rover", "echo", "--arg", '"behind nat"')) == "behind nat\n"

    assert ok(run_cli("dispatch", hidden.address, "rover", open_node.address)) == f"{open_node.address}\n"
    assert ok(run_cli("send", open_node.address, "rover", "echo", "--arg", '"in the open"')) == "in the open\n"
    assert ok(run_cli("dispatch", open_node.address, "rover", hidden.address)) == f"{hidden.address}\n"
    assert json.loads(ok(run_cli("--json", "send", hidden.address, "rover", "history"))) == ["echo", "echo", "history"]
    assert [a["agent_id"] for a in json.loads(ok(run_cli("--json", "ls", open_node.address)))] == []


def test_hosts_on_a_node_with_a_peer_lists_both_nodes_once_they_gossiped(hidden, node_process):
    open_node = node_process("open", "--peer", hidden.address, "--tag", "gpu", *GOSSIP)
    both = ["hidden", "open"]
    wait_until(lambda: host_names(open_node.address) == both, 10, "open to learn of hidden by gossip")
    wait_until(lambda: host_names(hidden.address) == both, 10, "hidden to learn of open by gossip")

    table = ok(run_cli("hosts", open_node.address)).splitlines()
    assert table[0].split() == [
        "NAME",
        "URL",
        "ONLINE",
        "CODE",
        "VERSION",
        "ACTIVE",
        "INACTIVE",
        "TAGS",
        "LAST",
        "SEEN",
    ]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["hidden"][1:3] == [hidden.address, "yes"]
    assert rows["open"][1:3] == [open_node.address, "yes"] and "gpu" in rows["open"]
    assert re.fullmatch(r"\d+s", rows["open"][-2]) and rows["open"][-1] == "ago"  # LAST SEEN: "3s ago"

    [me] = [
        h for h in json.loads(ok(run_cli("--json", "hosts", "--online-only", open_node.address))) if h["name"] == "open"
    ]
    assert me["tags"] == ["gpu"] and me["online"] is True


def test_unknown_node_behind_the_relay_exits_1_naming_it(relay):
    stderr = failed(run_cli("--timeout", "2", "health", f"relay+{relay.address}/nobody"))
    assert stderr.startswith("Error: NodeUnreachableError: ") and "nobody" in stderr


def test_relay_that_cannot_bind_exits_1_with_one_error_line(relay, tmp_path):
    port = relay.address.rsplit(":", 1)[1]
    cmd = [sys.executable, "-m", "paglets.cli.relay", "--port", port, "--no-http", "--data-dir", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), timeout=30)
    stderr = failed(result)
    assert f"Error: cannot start relay relay on 127.0.0.1 (port {port}, http off): ZMQError: " in stderr
    assert result.stdout == ""


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.0.2.10", "relay.example.org"])
def test_relay_off_loopback_without_a_key_or_curve_refuses_to_start_naming_the_fix(tmp_path, bind):
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "paglets.cli.relay", "--bind", bind, "--port", "0", "--http-port", "0"]
    result = subprocess.run([*cmd, "--data-dir", str(data)], capture_output=True, text=True, env=cli_env(), timeout=30)
    [line] = failed(result).strip().splitlines()
    assert line.startswith(f"Error: cannot start relay relay on {bind} ")
    assert "HostError: relay relay would be reachable on" in line
    for fix in ("--api-key-env VAR", "--curve-secret FILE --curve-allow DIR", "--insecure"):
        assert fix in line
    assert result.stdout == "" and not data.exists()  # refused before anything was bound or written


def test_relay_on_loopback_is_not_insecure(relay):
    assert relay_health(relay)["insecure"] is False
    assert "INSECURE" not in relay.log_path.read_text()


def test_curve_relay_carries_an_allowed_client_to_the_node_behind_it(relay_process, node_process, tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    for name in ("relay", "node", "client"):
        ok(run_cli("keys", "generate", str(keys), "--name", name))
    allowed.mkdir()
    for name in ("node", "client"):
        (allowed / f"{name}.key").write_bytes((keys / f"{name}.key").read_bytes())
    curve = ("--curve-secret", str(keys / "relay.key_secret"), "--curve-allow", str(allowed))
    relay = relay_process("sealed", *curve)
    node = node_process(
        "hidden", "--connect", relay.address, "--curve-secret", str(keys / "node.key_secret"),
        "--curve-allow", str(allowed), "--curve-server-key", str(keys / "relay.key"),
    )  # fmt: skip

    client = ("--curve-secret", str(keys / "client.key_secret"), "--curve-server-key", str(keys / "relay.key"))
    assert json.loads(ok(run_cli(*client, "--json", "health", node.address)))["name"] == "hidden"
    stderr = failed(run_cli("--timeout", "1", "health", node.address))  # no Curve at all
    assert stderr.startswith(f"Error: NodeUnreachableError: cannot reach node {node.address} for 'health'")


def test_a_node_command_at_the_relays_own_port_says_a_relay_answered(relay):
    # A timeout would say "no reply ... within 20 s"; the relay answers at once instead.
    stderr = failed(run_cli("--timeout", "20", "ls", relay.address, timeout=60))
    assert stderr == (
        f"Error: NodeUnreachableError: {relay.address} is a paglets relay, not a node: "
        f"address a node behind it as relay+{relay.address}/NODE\n"
    )


def test_the_relay_answers_a_plain_front_request_with_an_error_naming_the_relay_form(relay):
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(relay.address)
    try:
        dealer.send_multipart(protocol.request_frames("list", b"cid-1", {}))
        assert dealer.poll(20_000), "the relay did not answer"
        reply = protocol.parse_reply(dealer.recv_multipart())
    finally:
        dealer.close(0)
    assert (reply.ok, reply.cid) == (False, b"cid-1")
    assert reply.header["type"] == "NodeUnreachableError" and reply.header["op"] == "list"
    assert reply.header["message"] == (
        "this is a paglets relay; address a node behind it as relay+tcp://HOST:PORT/NODE"
    )

"""Meshed paglets-node processes: found by gossip or by LAN discovery, moving paglets by name."""

from __future__ import annotations

import signal

import pytest

from paglets.core.errors import PagletError
from paglets.remote.client import HostClient
from tests.conftest import wait_until
from tests.netns import netns_lab_factory  # noqa: F401  (a fixture)

FAST = ("--gossip-interval", "0.1", "--offline-after", "1.0")


def online_names(client: HostClient, address: str) -> set[str]:
    try:
        hosts = client.request(address, "hosts", {"online": True}).header["hosts"]
    except PagletError:
        return set()
    return {h["name"] for h in hosts}


@pytest.mark.timeout(120)
def test_three_node_processes_mesh_lose_one_and_get_it_back(node_process):
    client = HostClient(timeout=3)
    alpha = node_process("alpha", *FAST)
    beta = node_process("beta", "--peer", alpha.address, *FAST)
    gamma = node_process("gamma", "--peer", beta.address, *FAST)
    everyone = {"alpha", "beta", "gamma"}
    for node in (alpha, beta, gamma):
        wait_until(lambda n=node: online_names(client, n.address) == everyone, 10, f"{node.address} to see all")
    proxy = client.create(alpha.address, "tests.sample_paglets:TravellerPaglet")
    assert client.dispatch(alpha.address, proxy.agent_id, "gamma") == gamma.address
    assert client.send(gamma.address, proxy.agent_id, "where") == "gamma"
    assert gamma.stop(signal.SIGTERM) == 0
    wait_until(lambda: online_names(client, alpha.address) == {"alpha", "beta"}, 10, "gamma to go offline")
    gamma = node_process("gamma", "--peer", beta.address, *FAST)
    wait_until(lambda: online_names(client, alpha.address) == everyone, 10, "gamma to come back")
    assert client.send(gamma.address, proxy.agent_id, "where") == "gamma"  # parked at shutdown, woke at start


@pytest.mark.netns
@pytest.mark.timeout(120)
def test_nodes_on_a_lan_find_each_other_without_peers(netns_lab_factory, tmp_path):  # noqa: F811
    lab = netns_lab_factory(2)
    a, b = lab.namespaces
    flags = ("--lan-discovery", *FAST)
    alpha = lab.start_node(a, "alpha", tmp_path / "alpha", *flags)
    lab.start_node(b, "beta", tmp_path / "beta", *flags)
    code = (
        "import json, sys, time\n"
        "from paglets.remote.client import HostClient\n"
        "client, deadline = HostClient(timeout=2), time.time() + 15\n"
        "while time.time() < deadline:\n"
        "    hosts = client.request(sys.argv[1], 'hosts', {'online': True}).header['hosts']\n"
        "    if {h['name'] for h in hosts} == {'alpha', 'beta'}:\n"
        "        print('found', flush=True); break\n"
        "    time.sleep(0.1)\n"
        "else:\n"
        "    print('missing', flush=True)\n"
    )
    probe = lab.python(a, code, alpha.address)
    assert probe.communicate(timeout=30)[0].decode().strip() == "found"

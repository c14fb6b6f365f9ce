"""The machine's LAN addresses as each real source reports them, in a namespace whose addresses are known."""

from __future__ import annotations

import json

import pytest

from tests.netns import ip, netns_lab_factory  # noqa: F401  (a fixture)

SOURCES = """
import json
from paglets import binding
print(json.dumps({
    "ip": binding._addresses_from_ip_command(),
    "fib_trie": binding._addresses_from_fib_trie(),
    "udp_probe": binding._address_from_udp_probe(),
    "lan": binding.lan_addresses(),
}))
"""


@pytest.mark.netns
def test_each_source_finds_the_namespaces_lan_address_and_skips_loopback_and_link_local(netns_lab_factory):  # noqa: F811
    lab = netns_lab_factory(1)
    [ns] = lab.namespaces
    ip("-n", ns.name, "addr", "add", "169.254.7.7/16", "dev", ns.interface)  # link-local: never a LAN address
    ip("-n", ns.name, "link", "add", "down0", "type", "veth", "peer", "name", "down1")  # left down
    ip("-n", ns.name, "addr", "add", "10.66.0.1/24", "dev", "down0")
    ip("-n", ns.name, "route", "add", "default", "dev", ns.interface)  # for the UDP probe's route
    out, _ = lab.python(ns, SOURCES).communicate(timeout=30)
    assert json.loads(out) == {
        "ip": [ns.address],  # link state known: the down interface is left out
        "fib_trie": ["10.66.0.1", ns.address],  # no link state there: every local address, in trie order
        "udp_probe": [ns.address],  # the source address of the default route
        "lan": [ns.address],  # the first source that answers: ip
    }

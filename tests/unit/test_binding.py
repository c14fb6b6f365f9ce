"""Where a node listens and what it advertises: a pure decision over the machine's LAN addresses."""

from __future__ import annotations

import json
import logging
import os

import pytest

from paglets import binding
from paglets.binding import Binding, advertised_address, lan_addresses, resolve_binding


@pytest.fixture
def lan(monkeypatch):
    """Pretend the machine has these LAN addresses."""

    def set_addresses(*addresses: str) -> None:
        monkeypatch.setattr(binding, "lan_addresses", lambda: list(addresses))

    return set_addresses


def test_auto_binds_and_advertises_the_first_lan_address(lan):
    lan("192.168.1.20", "10.0.0.5")
    assert resolve_binding("auto", port=7700) == Binding("192.168.1.20", "192.168.1.20")


def test_auto_without_a_lan_address_falls_back_to_loopback_with_a_warning(lan, caplog):
    lan()
    with caplog.at_level(logging.WARNING, logger="paglets.binding"):
        assert resolve_binding("auto", port=7700) == Binding("127.0.0.1", "127.0.0.1")
    assert "no LAN address" in caplog.text


def test_bind_public_listens_everywhere_and_advertises_the_lan_address(lan):
    lan("192.168.1.20")
    assert resolve_binding("127.0.0.1", bind_public=True, port=7700) == Binding("0.0.0.0", "192.168.1.20")


def test_bind_public_without_a_lan_address_advertises_loopback(lan):
    lan()
    assert resolve_binding("auto", bind_public=True, port=0) == Binding("0.0.0.0", "127.0.0.1")


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "*", ""])
def test_a_wildcard_bind_advertises_the_lan_address(lan, wildcard):
    lan("10.1.2.3")
    result = resolve_binding(wildcard, port=7700)
    assert result.advertised_host == "10.1.2.3"
    assert result.bind_host == (wildcard or "0.0.0.0")


@pytest.mark.parametrize("host", ["127.0.0.1", "10.9.9.9", "node.example.org"])
def test_an_explicit_host_is_bound_and_advertised_as_given(lan, host):
    lan("192.168.1.20")
    assert resolve_binding(host, port=7700) == Binding(host, host)


def test_public_url_overrides_only_the_advertised_address(lan):
    lan("192.168.1.20")
    result = resolve_binding("0.0.0.0", public_url="tcp://example.org:7700", port=7800)
    assert result.bind_host == "0.0.0.0"
    assert advertised_address(result, 7800, "tcp://example.org:7700/") == "tcp://example.org:7700"
    assert advertised_address(result, 7800, None) == "tcp://192.168.1.20:7800"


@pytest.mark.parametrize(
    "url",
    ["example.org:7700", "http://example.org:7700", "tcp://example.org", "tcp://:7700", "tcp://host:0",
     "tcp://host:99999", "tcp://host:port", "tcp://a/b:7700", "relay+tcp://relay:7700/node"],
)  # fmt: skip
def test_a_public_url_that_is_not_tcp_host_port_is_refused(lan, url):
    lan("192.168.1.20")
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        resolve_binding("0.0.0.0", public_url=url, port=7700)
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        advertised_address(Binding("0.0.0.0", "192.168.1.20"), 7700, url)


def test_a_port_out_of_range_is_refused(lan):
    lan()
    with pytest.raises(ValueError, match="port"):
        resolve_binding("127.0.0.1", port=70000)


def test_an_ipv6_advertised_host_is_bracketed():
    assert advertised_address(Binding("::1", "::1"), 7700) == "tcp://[::1]:7700"


IP_ADDR_JSON = [
    {"ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
    {"ifname": "eth0", "flags": ["BROADCAST", "UP", "LOWER_UP"], "addr_info": [
        {"family": "inet", "local": "192.168.1.20"}, {"family": "inet", "local": "169.254.10.1"},
    ]},
    {"ifname": "eth1", "flags": ["BROADCAST", "MULTICAST"], "addr_info": [{"family": "inet", "local": "10.0.0.9"}]},
    {"ifname": "docker0", "flags": ["UP"], "addr_info": [
        {"family": "inet", "local": "172.17.0.1"}, {"family": "inet", "local": "192.168.1.20"},
    ]},
    {"ifname": "wg0", "flags": ["UP"], "addr_info": [{"family": "inet6", "local": "fe80::1"}, {"local": "nonsense"}]},
]  # fmt: skip


@pytest.fixture
def fake_ip(tmp_path, monkeypatch):
    """An ``ip`` first on PATH that prints IP_ADDR_JSON for ``ip -j -4 addr show`` (and fails otherwise)."""
    script = tmp_path / "ip"
    answer = json.dumps(IP_ADDR_JSON)
    script.write_text(f'#!/bin/sh\n[ "$*" = "-j -4 addr show" ] || exit 2\ncat <<\'EOF\'\n{answer}\nEOF\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), os.environ.get("PATH", "")]))
    return script


def test_lan_addresses_lists_the_ipv4_addresses_of_up_interfaces_but_loopback_and_link_local(fake_ip):
    assert lan_addresses() == ["192.168.1.20", "172.17.0.1"]


def test_lan_addresses_falls_back_when_ip_fails(fake_ip, monkeypatch):
    fake_ip.write_text("#!/bin/sh\nexit 1\n")
    monkeypatch.setattr(binding, "_addresses_from_fib_trie", lambda: ["10.9.9.9"])
    assert lan_addresses() == ["10.9.9.9"]


def test_lan_addresses_falls_back_when_ip_is_missing(monkeypatch):
    monkeypatch.setattr(binding, "_addresses_from_ip_command", lambda: None)
    monkeypatch.setattr(binding, "_addresses_from_fib_trie", lambda: ["10.9.9.9"])
    assert lan_addresses() == ["10.9.9.9"]
    monkeypatch.setattr(binding, "_addresses_from_fib_trie", lambda: None)
    monkeypatch.setattr(binding, "_address_from_udp_probe", lambda: ["10.8.8.8"])
    assert lan_addresses() == ["10.8.8.8"]


def test_lan_addresses_is_empty_when_every_source_fails(monkeypatch):
    def broken():
        raise OSError("no network here")

    for source in ("_addresses_from_ip_command", "_addresses_from_fib_trie", "_address_from_udp_probe"):
        monkeypatch.setattr(binding, source, broken)
    assert lan_addresses() == []

"""The rule for nodes and relays off loopback, and the names the HTTP shim answers to."""

from __future__ import annotations

import logging

import pytest

from paglets.core.errors import HostError
from paglets.exposure import check_exposure, exposure, is_loopback, url_host
from paglets.node.http import guard
from paglets.node.http.guard import ServedNames


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LocalHost", "::ffff:127.0.0.1"]
)
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "*", "", "auto", "10.0.0.1", "192.168.1.2", "fe80::1", "my-host"])
def test_other_hosts_are_not_loopback(host):
    assert not is_loopback(host)


def test_url_host_reads_tcp_relay_and_bracketed_addresses():
    assert url_host("tcp://[::1]:7700") == "::1"
    assert url_host("relay+tcp://10.0.0.1:7800/node") == "10.0.0.1"
    assert url_host("tcp://Node.Example.org:1") == "node.example.org"
    assert url_host("tcp://[::1") == ""


@pytest.mark.parametrize(
    ("host", "options", "where"),
    [
        ("127.0.0.1", {}, None),
        ("localhost", {}, None),
        ("::1", {"public_url": "tcp://127.0.0.1:7700"}, None),
        ("127.0.0.1", {"connect_to": "tcp://127.0.0.1:7800"}, None),
        ("0.0.0.0", {"connect_to": "tcp://127.0.0.1:7800"}, None),  # behind a relay the bind host is unused
        ("0.0.0.0", {}, "every interface (bind 0.0.0.0)"),
        ("*", {}, "every interface (bind *)"),
        ("::", {}, "every interface (bind ::)"),
        ("127.0.0.1", {"bind_public": True}, "every interface (bind_public)"),
        ("auto", {}, "this machine's LAN address (bind auto)"),
        ("10.1.2.3", {}, "10.1.2.3"),
        ("node.lan", {}, "node.lan"),
        ("127.0.0.1", {"public_url": "tcp://node.example.org:7700"}, "public url tcp://node.example.org:7700"),
        ("127.0.0.1", {"connect_to": "tcp://10.0.0.9:7800"}, "relay tcp://10.0.0.9:7800"),
    ],
)
def test_exposure_says_where_a_node_is_reachable_from_beyond_this_machine(host, options, where):
    assert exposure(host, **options) == where


def test_an_exposed_node_without_credentials_is_refused_naming_every_fix():
    with pytest.raises(HostError) as info:
        check_exposure("node a", "10.1.2.3", credentials=False, insecure=False, at_risk="do anything")
    message = str(info.value)
    assert message.startswith("node a would be reachable on 10.1.2.3 with neither an API key nor CurveZMQ")
    for fix in (
        "--api-key-env VAR",
        "api_key=...",
        "--curve-secret FILE --curve-allow DIR",
        "--insecure",
        "insecure=True",
    ):
        assert fix in message


def test_credentials_or_loopback_pass_and_insecure_passes_loudly(caplog):
    assert check_exposure("node a", None, credentials=False, insecure=False, at_risk="x") is False
    assert check_exposure("node a", "0.0.0.0", credentials=True, insecure=False, at_risk="x") is False
    assert check_exposure("node a", "0.0.0.0", credentials=True, insecure=True, at_risk="x") is False
    assert caplog.records == []
    with caplog.at_level(logging.WARNING):
        assert check_exposure("node a", "0.0.0.0", credentials=False, insecure=True, at_risk="do anything") is True
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.getMessage().startswith("INSECURE: node a is reachable on")


# -- the names the shim answers to -------------------------------------------------------
def test_a_loopback_shim_answers_to_the_loopback_names_with_its_port():
    names = ServedNames.for_shim("127.0.0.1", 7701)
    for host in ("127.0.0.1:7701", "localhost:7701", "LOCALHOST.:7701", "[::1]:7701"):
        assert names.accepts_host(host), host
        assert names.accepts_origin(f"http://{host}"), host
    for host in ("127.0.0.1", "127.0.0.1:7702", "evil.example:7701", "10.0.0.1:7701", "localhost:7701:1",
                 "[::1]", "[::1:7701", "::1:7701", "localhost:+7701", "local host:7701", ""):  # fmt: skip
        assert not names.accepts_host(host), host
    for origin in ("null", "https://127.0.0.1:7701", "http://127.0.0.1:7701/", "127.0.0.1:7701", "http://evil:7701"):
        assert not names.accepts_origin(origin), origin


def test_a_shim_on_one_address_answers_to_it_and_its_advertised_and_public_names_only():
    names = ServedNames.for_shim("10.0.0.5", 80, ["10.0.0.5", "node.example.org"])
    assert names.accepts_host("10.0.0.5") and names.accepts_host("node.example.org:80")
    assert names.accepts_origin("http://node.example.org")
    assert not names.accepts_host("127.0.0.1:80") and not names.accepts_host("localhost")


def test_a_shim_on_every_interface_answers_to_loopback_lan_addresses_and_the_host_name(monkeypatch):
    monkeypatch.setattr(guard, "lan_addresses", lambda: ["192.168.7.2", "10.9.9.9"])
    monkeypatch.setattr(guard.socket, "gethostname", lambda: "Box")
    names = ServedNames.for_shim("0.0.0.0", 7701, ["192.168.7.2"])
    for host in ("127.0.0.1", "localhost", "[::1]", "192.168.7.2", "10.9.9.9", "box"):
        assert names.accepts_host(f"{host}:7701"), host
    assert not names.accepts_host("10.9.9.10:7701") and not names.accepts_host("box.evil.example:7701")

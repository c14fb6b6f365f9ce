"""Off loopback a node or relay needs a key or Curve, or ``--insecure``; with Curve and no key HTTP stays local.

Only loopback is used on this machine: refusals happen before anything binds
(checked by the data directory that is never made), and the nodes and relays
that do listen off loopback run inside network namespaces made for the test.
"""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from paglets.client.security import generate_keys
from paglets.core.errors import HostError
from paglets.node.host import Host
from paglets.relay.server import RelayServer
from tests.netns import ProcessLines, netns_lab_factory  # noqa: F401  (a fixture)

EXPOSED = [
    {"host": "0.0.0.0"},
    {"host": "auto"},
    {"host": "192.0.2.10"},
    {"bind_public": True},
    {"public_url": "tcp://node.example.org:7700"},
    {"connect_to": "tcp://192.0.2.1:7800"},
]


@pytest.fixture
def curve_files(tmp_path):
    allow = tmp_path / "allow"
    allow.mkdir()
    public, secret = generate_keys(tmp_path / "keys", "node")
    shutil.copy(public, allow)
    return {"curve_secret": secret, "curve_allow": allow}


# -- Python: Host(...) and RelayServer(...) -----------------------------------------------
@pytest.mark.parametrize("options", EXPOSED, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_host_off_loopback_without_credentials_is_refused_at_construction(tmp_path, options):
    with pytest.raises(HostError, match=r"node open would be reachable on .*--api-key-env VAR.*--insecure"):
        Host("open", persistence_dir=tmp_path / "open", **options)
    assert not (tmp_path / "open").exists()


def test_host_off_loopback_with_a_key_or_curve_is_built_and_not_insecure(tmp_path, curve_files):
    for options in ({"api_key": "k"}, curve_files):
        node = Host("closed", host="0.0.0.0", persistence_dir=tmp_path / "closed", **options)  # never started
        assert node.here.insecure is False


def test_host_with_insecure_is_built_with_a_warning_and_marked_insecure(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="paglets.security"):
        node = Host("open", host="0.0.0.0", persistence_dir=tmp_path / "open", insecure=True)  # never started
    assert node.here.insecure is True
    [warning] = [r.getMessage() for r in caplog.records if r.name == "paglets.security"]
    assert warning.startswith("INSECURE: node open is reachable on every interface (bind 0.0.0.0)")


def test_relay_off_loopback_without_credentials_is_refused_at_construction(tmp_path):
    with pytest.raises(
        HostError, match=r"relay r would be reachable on every interface \(bind 0\.0\.0\.0\) .*--insecure"
    ):
        RelayServer(name="r", bind="0.0.0.0", port=0, data_dir=tmp_path / "r")
    assert RelayServer(name="r", bind="0.0.0.0", port=0, data_dir=tmp_path / "r", api_key="k").insecure is False
    assert RelayServer(name="r", bind="0.0.0.0", port=0, data_dir=tmp_path / "r", insecure=True).insecure is True
    assert not (tmp_path / "r").exists()  # none of them was started


def test_a_node_on_loopback_reports_it_is_not_insecure(make_node):
    node = make_node("local", http_port=0)
    assert node.health()["insecure"] is False


# -- in network namespaces ---------------------------------------------------------------
HEALTH_SCRIPT = """
import json, sys, urllib.request
from paglets.client.host_client import HostClient
http = json.load(urllib.request.urlopen(sys.argv[1] + "/health", timeout=5)) if sys.argv[1] != "-" else {}
zmq = HostClient(timeout=5).request(sys.argv[2], "health", {}).header
print(json.dumps({"http": http.get("insecure"), "zmq": zmq["insecure"], "address": zmq["address"]}), flush=True)
"""


def health_inside(lab, ns, http_address: str | None, address: str) -> dict:
    lines = ProcessLines(lab.python(ns, HEALTH_SCRIPT, http_address or "-", address))
    return json.loads(lines.wait_for(lambda line: line.startswith("{"), 20, "the health probe"))


@pytest.mark.netns
@pytest.mark.timeout(120)
def test_insecure_nodes_off_loopback_start_warn_and_say_so_in_health(netns_lab_factory, tmp_path):  # noqa: F811
    lab = netns_lab_factory(1)
    [ns] = lab.namespaces
    bound = lab.start_node(ns, "bound", tmp_path / "bound")  # the lab passes --insecure
    wide = lab.start_node(ns, "wide", tmp_path / "wide", "--bind-public", "--no-http")
    assert bound.address.startswith(f"tcp://{ns.address}:") and bound.http_address.startswith(f"http://{ns.address}:")
    assert wide.address.startswith(f"tcp://{ns.address}:")  # its LAN address, reachable at what it printed
    assert health_inside(lab, ns, bound.http_address, bound.address) == {
        "http": True, "zmq": True, "address": bound.address,
    }  # fmt: skip
    assert health_inside(lab, ns, None, wide.address) == {"http": None, "zmq": True, "address": wide.address}
    for node, name, where in ((bound, "bound", ns.address), (wide, "wide", "every interface (bind_public)")):
        log = node.log_path.read_text()
        assert f"WARNING paglets.security: INSECURE: node {name} is reachable on {where} with neither" in log


@pytest.mark.netns
@pytest.mark.timeout(120)
def test_an_insecure_relay_off_loopback_says_so_in_health(netns_lab_factory, tmp_path):  # noqa: F811
    lab = netns_lab_factory(1)
    [ns] = lab.namespaces
    relay = lab.start_relay(ns, "relay", tmp_path / "relay")
    code = (
        "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1] + '/health', timeout=5).read().decode())"
    )
    lines = ProcessLines(lab.python(ns, code, relay.http_address))
    health = json.loads(lines.wait_for(lambda line: line.startswith("{"), 20, "the relay's health"))
    assert health["insecure"] is True and health["name"] == "relay"
    assert f"INSECURE: relay relay is reachable on {ns.address}" in relay.log_path.read_text()


CONNECT_SCRIPT = """
import socket, sys
for host in sys.argv[1:3]:
    try:
        socket.create_connection((host, int(sys.argv[3])), timeout=2.0).close()
        print(host, "connected", flush=True)
    except OSError as exc:
        print(host, "failed", type(exc).__name__, flush=True)
"""


@pytest.mark.netns
@pytest.mark.timeout(120)
def test_a_curve_node_without_a_key_serves_http_on_loopback_only(netns_lab_factory, tmp_path, curve_files):  # noqa: F811
    lab = netns_lab_factory(1)
    [ns] = lab.namespaces
    curve = ("--curve-secret", str(curve_files["curve_secret"]), "--curve-allow", str(curve_files["curve_allow"]))
    node = lab.start_node(ns, "sealed", tmp_path / "sealed", *curve)
    port = node.http_address.rsplit(":", 1)[1]
    assert node.http_address == f"http://127.0.0.1:{port}" and node.address.startswith(f"tcp://{ns.address}:")
    lines = ProcessLines(lab.python(ns, CONNECT_SCRIPT, "127.0.0.1", ns.address, port))
    assert lines.wait_for(lambda line: line.startswith(ns.address), 10, "a connect to the LAN address") == (
        f"{ns.address} failed ConnectionRefusedError"
    )
    assert lines.wait_for(lambda line: line.startswith("127.0.0.1"), 10, "a connect to loopback") == (
        "127.0.0.1 connected"
    )
    log = node.log_path.read_text()
    assert "CurveZMQ without an API key must not be bypassed over plain HTTP" in log
    assert "INSECURE" not in log  # Curve is a credential: --insecure changed nothing

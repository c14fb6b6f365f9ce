"""LAN discovery: nodes announce themselves by UDP multicast and find each other.

Three settings: network namespaces on a bridge (real separate network
stacks; skipped without root), the loopback interface of this machine
(skipped when the kernel will not route multicast there), and the
announcement decoder on its own.
"""

from __future__ import annotations

import errno
import json
import pickle
import socket
import threading

import msgpack
import pytest

from paglets.node.mesh.discovery import MAGIC, MAX_DATAGRAM, Announcement, LanDiscovery, decode_announcement
from tests.netns import ProcessLines, ip, netns_lab_factory  # noqa: F401  (a fixture)

GROUP = "239.255.77.77"
LOOPBACK = "127.0.0.1"
NO_MULTICAST_ROUTE = (errno.ENETUNREACH, errno.ENODEV, errno.EADDRNOTAVAIL)

DISCOVERY_SCRIPT = """
import json, sys
from paglets.node.mesh.discovery import LanDiscovery

name, url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def found(other, where):
    print(json.dumps({"found": other, "url": where}), flush=True)

discovery = LanDiscovery(name, lambda: url, found, port=port, interval=0.2)
discovery.start()
print(json.dumps({"started": name}), flush=True)
sys.stdin.read()  # until the test closes our stdin
discovery.stop()
"""


class FoundLog:
    """An ``on_found`` callback that records its calls and lets a test wait for one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._changed = threading.Condition()

    def __call__(self, name: str, url: str) -> None:
        with self._changed:
            self.calls.append((name, url))
            self._changed.notify_all()

    def wait_for(self, name: str, timeout: float, url: str | None = None) -> str:
        def heard() -> str | None:
            return next((u for n, u in self.calls if n == name and url in (None, u)), None)

        with self._changed:
            if not self._changed.wait_for(heard, timeout):
                pytest.fail(f"timed out after {timeout} s waiting to discover {name} (heard {self.calls})")
            return heard()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def loopback_sender() -> socket.socket:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK))
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    return sender


def announcement(name: str, url: str, **extra) -> bytes:
    return msgpack.packb({"magic": MAGIC, "name": name, "url": url, **extra})


@pytest.fixture
def loopback_port() -> int:
    """A free port for a group on loopback; skips when this kernel will not send multicast on lo."""
    port = free_udp_port()
    with loopback_sender() as sender:
        try:
            sender.sendto(b"probe", (GROUP, port))
        except OSError as exc:
            if exc.errno in NO_MULTICAST_ROUTE:
                pytest.skip(f"no multicast route on loopback ({exc}); not changing the host's routes")
            raise
    return port


@pytest.fixture
def discoveries():
    """Factory for LanDiscovery objects on loopback; all stopped at teardown."""
    started: list[LanDiscovery] = []

    def factory(name: str, port: int, url: str | None = None, interval: float = 0.1) -> tuple[LanDiscovery, FoundLog]:
        log = FoundLog()
        url = url or f"tcp://127.0.0.1:{7700 + len(started)}"
        discovery = LanDiscovery(name, lambda: url, log, port=port, interval=interval, interface=LOOPBACK)
        discovery.start()
        started.append(discovery)
        return discovery, log

    yield factory
    for discovery in started:
        discovery.stop()


def wait_or_skip_without_route(log: FoundLog, name: str, discovery: LanDiscovery, timeout: float) -> str:
    try:
        return log.wait_for(name, timeout)
    except pytest.fail.Exception:
        error = discovery.last_send_error or discovery.last_join_error
        if error is not None and error.errno in NO_MULTICAST_ROUTE:
            pytest.skip(f"LanDiscovery cannot send multicast on loopback here: {error}")
        raise


# -- in network namespaces -----------------------------------------------------------------
@pytest.mark.netns
def test_nodes_on_one_bridge_find_each_other_and_an_unbridged_one_finds_nobody(netns_lab_factory):  # noqa: F811
    lab = netns_lab_factory(2, isolated=1)
    outputs = {}
    for index, ns in enumerate(lab.namespaces):
        url = f"tcp://{ns.address}:7700"
        outputs[ns.name] = ProcessLines(lab.python(ns, DISCOVERY_SCRIPT, f"node-{index}", url, "7790"))
    for ns in lab.namespaces:
        outputs[ns.name].wait_for(lambda line: '"started"' in line, 10, f"discovery to start in {ns.name}")
    alpha, beta, lonely = lab.namespaces

    # Only the script's own JSON lines count (a log line on the same stream may name a node too).
    heard_by_alpha = outputs[alpha.name].wait_for(lambda line: '"found": "node-1"' in line, 5, "node-0 to find node-1")
    heard_by_beta = outputs[beta.name].wait_for(lambda line: '"found": "node-0"' in line, 5, "node-1 to find node-0")
    assert json.loads(heard_by_alpha) == {"found": "node-1", "url": f"tcp://{beta.address}:7700"}
    assert json.loads(heard_by_beta) == {"found": "node-0", "url": f"tcp://{alpha.address}:7700"}

    lonely_lines = outputs[lonely.name].collect(1.0)  # several announcement rounds of the others
    assert [line for line in lonely_lines if '"found"' in line] == []
    for ns in (alpha, beta):
        assert not any("node-2" in line for line in outputs[ns.name].collect(0.1)), f"{ns.name} heard the lonely node"


@pytest.mark.netns
def test_a_node_without_a_multicast_route_keeps_trying_and_is_found_once_it_has_one(netns_lab_factory):  # noqa: F811
    lab = netns_lab_factory(2)
    alpha, beta = lab.namespaces
    ip("-n", alpha.name, "route", "del", "224.0.0.0/4", "dev", alpha.interface)
    outputs = {}
    for index, ns in enumerate((alpha, beta)):
        url = f"tcp://{ns.address}:7700"
        outputs[ns.name] = ProcessLines(lab.python(ns, DISCOVERY_SCRIPT, f"node-{index}", url, "7790"))
        outputs[ns.name].wait_for(lambda line: '"started"' in line, 10, f"discovery to start in {ns.name}")
    assert not any('"found"' in line for line in outputs[beta.name].collect(0.6)), "alpha could not have sent"

    ip("-n", alpha.name, "route", "add", "224.0.0.0/4", "dev", alpha.interface)
    outputs[beta.name].wait_for(lambda line: "node-0" in line, 5, "node-1 to find node-0 once it has a route")
    outputs[alpha.name].wait_for(lambda line: "node-1" in line, 5, "node-0 to find node-1 once it has a route")


CONNECT_SCRIPT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0).close()
    print("connected", flush=True)
except OSError as exc:
    print("failed", exc, flush=True)
"""


@pytest.mark.netns
def test_a_node_in_a_namespace_serves_on_its_address_and_restricted_routes_hide_it(netns_lab_factory, tmp_path):  # noqa: F811
    lab = netns_lab_factory(3)
    home, friend, stranger = lab.namespaces
    lab.restrict_routes(home, reachable=[friend])
    node = lab.start_node(home, "alpha", tmp_path / "alpha", "--no-http")
    assert node.address.startswith(f"tcp://{home.address}:")
    port = node.address.rsplit(":", 1)[1]

    def connect_from(ns) -> str:
        lines = ProcessLines(lab.python(ns, CONNECT_SCRIPT, home.address, port))
        return lines.wait_for(lambda line: line.startswith(("connected", "failed")), 5, f"a connect from {ns.name}")

    assert connect_from(friend) == "connected"
    assert connect_from(stranger) == "failed timed out"  # home cannot answer it (not "refused": it listens)


# -- on loopback ---------------------------------------------------------------------------
def test_two_discoveries_on_loopback_find_each_other(loopback_port, discoveries):
    alpha, alpha_log = discoveries("alpha", loopback_port, "tcp://127.0.0.1:7701")
    beta, beta_log = discoveries("beta", loopback_port, "tcp://127.0.0.1:7702")

    assert wait_or_skip_without_route(alpha_log, "beta", alpha, 5) == "tcp://127.0.0.1:7702"
    assert wait_or_skip_without_route(beta_log, "alpha", beta, 5) == "tcp://127.0.0.1:7701"
    assert alpha.found == {"beta": "tcp://127.0.0.1:7702"}
    assert beta.found == {"alpha": "tcp://127.0.0.1:7701"}


def test_garbage_datagrams_are_ignored_and_discovery_keeps_working(loopback_port, discoveries):
    alpha, alpha_log = discoveries("alpha", loopback_port)
    garbage = [
        b"",
        b"\x00\xffnot msgpack at all",
        msgpack.packb([MAGIC, "mallory", "tcp://10.0.0.1:7700"]),
        msgpack.packb({"magic": "other-protocol/1", "name": "mallory", "url": "tcp://10.0.0.1:7700"}),
        announcement("big", "tcp://10.0.0.1:7700", padding="x" * (MAX_DATAGRAM + 100)),
        announcement("mallory", "tcp://10.0.0.1:7700")[:-4],
        msgpack.packb({"magic": MAGIC, "name": 42, "url": "tcp://10.0.0.1:7700"}),
        msgpack.packb({"magic": MAGIC, "name": "mallory", "url": ["tcp://10.0.0.1:7700"]}),
        announcement("mallory", "http://10.0.0.1:80"),
        announcement("../../etc", "tcp://10.0.0.1:7700"),
        announcement("alpha", "tcp://10.6.6.6:7700"),  # its own name: never a peer
        pickle.dumps({"magic": MAGIC, "name": "pickled", "url": "tcp://10.0.0.1:7700"}),
    ]
    with loopback_sender() as sender:
        for datagram in garbage:
            sender.sendto(datagram, (GROUP, loopback_port))
        # Datagrams on one socket are read in order: once the sentinel is heard, the garbage was read too.
        sender.sendto(announcement("sentinel", "tcp://10.0.0.9:7700"), (GROUP, loopback_port))
        wait_or_skip_without_route(alpha_log, "sentinel", alpha, 5)

    discoveries("beta", loopback_port, "tcp://127.0.0.1:7799")
    alpha_log.wait_for("beta", 5)
    assert alpha.running
    assert alpha.found == {"sentinel": "tcp://10.0.0.9:7700", "beta": "tcp://127.0.0.1:7799"}
    assert [name for name, _ in alpha_log.calls] == ["sentinel", "beta"]


def test_on_found_runs_once_per_new_name_and_url(loopback_port, discoveries):
    alpha, alpha_log = discoveries("alpha", loopback_port)
    with loopback_sender() as sender:
        for _ in range(3):
            sender.sendto(announcement("gamma", "tcp://10.0.0.3:7700"), (GROUP, loopback_port))
        wait_or_skip_without_route(alpha_log, "gamma", alpha, 5)
        sender.sendto(announcement("gamma", "tcp://10.0.0.3:7800"), (GROUP, loopback_port))
        alpha_log.wait_for("gamma", 5, url="tcp://10.0.0.3:7800")

    assert alpha_log.calls == [("gamma", "tcp://10.0.0.3:7700"), ("gamma", "tcp://10.0.0.3:7800")]
    assert alpha.found == {"gamma": "tcp://10.0.0.3:7800"}


def test_stop_does_not_wait_out_the_announcement_interval(loopback_port):
    # An hour between announcements: a stop that waited for the next one would hit the test's timeout.
    discovery = LanDiscovery("alpha", lambda: "tcp://127.0.0.1:7700", lambda *a: None, port=loopback_port,
                             interval=3600, interface=LOOPBACK)  # fmt: skip
    discovery.start()
    assert discovery.running
    discovery.stop()
    assert not discovery.running


# -- the decoder ---------------------------------------------------------------------------
def test_a_valid_announcement_decodes_and_round_trips():
    sent = Announcement("node-1", "tcp://10.0.0.1:7700")
    assert decode_announcement(sent.encode()) == sent
    relayed = announcement("node-2", "relay+tcp://10.0.0.2:7701/node-2", future_key=1)
    assert decode_announcement(relayed) == Announcement("node-2", "relay+tcp://10.0.0.2:7701/node-2")


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\xc1",  # never used in msgpack
        msgpack.packb("just a string"),
        msgpack.packb({1: MAGIC}),
        msgpack.packb({"magic": MAGIC.encode(), "name": "n", "url": "tcp://10.0.0.1:1"}),
        msgpack.packb({"magic": MAGIC, "url": "tcp://10.0.0.1:1"}),
        msgpack.packb({"magic": MAGIC, "name": "n"}),
        msgpack.packb({"magic": MAGIC, "name": "n", "url": "tcp://10.0.0.1"}),
        msgpack.packb({"magic": MAGIC, "name": "n", "url": "udp://10.0.0.1:1"}),
        msgpack.packb({"magic": MAGIC, "name": "", "url": "tcp://10.0.0.1:1"}),
        announcement("n", "tcp://10.0.0.1:1", padding="x" * MAX_DATAGRAM),
        announcement("n", "tcp://10.0.0.1:1") + b"trailing",
    ],
)
def test_anything_but_an_announcement_is_refused(datagram):
    assert decode_announcement(datagram) is None

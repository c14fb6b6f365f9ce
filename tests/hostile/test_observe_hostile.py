"""Hostile readers of a node's events and views: bogus queries, floods of waiting reads and streams,
a stream reader that never reads, listings of nodes that are not in the mesh.

Every case ends with :func:`still_serves` (see ``test_http_hostile``): the node's echo paglet answers
over HTTP from the same worker and nothing was reported crashed.
"""

from __future__ import annotations

import http.client
import socket
import time
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import wait as wait_futures
from urllib.parse import quote

import pytest

from paglets.core.errors import ProtocolError
from paglets.node.http import observe_routes
from paglets.node.http import shim as http_shim
from paglets.node.observe.feed import MAX_WAITERS
from tests.hostile.test_http_hostile import AGENT, Site, start_site, still_serves
from tests.integration.test_http import call

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def site(make_node) -> Site:
    return start_site(make_node)


def open_stream(site: Site, path: str = "/events/stream") -> tuple[http.client.HTTPConnection, int, bytes]:
    """Open an event stream: the connection, its status and its first line (or the error body)."""
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=20)
    conn.request("GET", path)
    response = conn.getresponse()
    first = response.fp.readline() if response.status == 200 else response.read()
    return conn, response.status, first


@pytest.mark.parametrize(
    "query",
    [
        "since=-1", "since=abc", "since=1e99", "since=99999999999999999999", "since=", "since=1.5",
        "limit=0", "limit=1001", "limit=-5", "limit=x", "agent=../../etc", "agent=" + "a" * 200, "agent=",
        "kind=DROP%20TABLE", "kind=" + "x" * 100, "wait=-1", "wait=nan", "wait=1e9", "wait=inf", "wait=31",
    ],
)  # fmt: skip
def test_a_bogus_events_query_is_400_naming_the_parameter(site, query):
    reply = call(site.web, "GET", f"/events?{query}")
    assert reply.status == 400 and reply.body["error"]["type"] == "ProtocolError", (query, reply)
    assert query.split("=")[0] in reply.body["error"]["message"]
    still_serves(site)


def test_a_since_beyond_the_newest_event_starts_over_instead_of_waiting_forever(site):
    reply = call(site.web, "GET", f"/events?since={2**63 - 1}&limit=1")
    assert reply.status == 200 and reply.body["events"][0]["event_id"] == reply.body["first"]
    conn, status, first = open_stream(site, f"/events/stream?since={2**63 - 1}")
    conn.close()
    assert status == 200 and first.startswith(b"retry:")
    still_serves(site)


@pytest.mark.parametrize(
    "header",
    [
        {"since": -1}, {"since": "5"}, {"since": True}, {"since": 2**64 - 1}, {"limit": 0}, {"limit": 10**6},
        {"agent": "bad/agent"}, {"agent": 7}, {"kind": "Crash!"}, {"kind": ["create"]}, {"wait": float("nan")},
        {"wait": -0.5}, {"wait": 1e300}, {"wait": "10"},
    ],
)  # fmt: skip
def test_a_bogus_events_op_is_refused_with_a_protocol_error(site, header):
    node = site.node
    with pytest.raises(ProtocolError):
        node.client.request(node.address, "events", header, timeout=10)
    still_serves(site)


def test_waiting_readers_are_bounded_and_the_rest_of_the_node_does_not_wait_behind_them(site):
    node = site.node
    assert node.events.wait_for(kind="run-finished", agent_id=AGENT, timeout=10, since=0)  # its last event
    header = {"since": node.events.last_seq, "wait": 25.0, "agent": AGENT}
    readers = [node.client.request_future(node.address, "events", dict(header), timeout=40) for _ in range(40)]
    # Reads and messages go on while they wait...
    assert node.client.health(node.address, timeout=10)["name"] == "alpha"
    still_serves(site)
    # ...and beyond MAX_WAITERS a read is answered at once, marked busy.
    done: set = set()
    deadline = time.monotonic() + 20
    while len(done) < len(readers) - MAX_WAITERS and time.monotonic() < deadline:
        done, _ = wait_futures(readers, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
    assert len(done) == len(readers) - MAX_WAITERS
    assert all(future.result().header["busy"] and not future.result().header["events"] for future in done)
    # The ones waiting get the next event about the paglet, and return.
    node.events.emit("note", AGENT)
    waited = [future.result(timeout=20).header for future in readers if future not in done]
    assert len(waited) == MAX_WAITERS
    assert all(not answer["busy"] and answer["events"][0]["kind"] == "note" for answer in waited)
    still_serves(site)


def test_event_streams_beyond_the_limit_are_refused_and_freed_ones_open_again(make_node, monkeypatch):
    monkeypatch.setattr(http_shim, "MAX_STREAMS", 3)
    monkeypatch.setattr(observe_routes, "KEEPALIVE", 0.2)  # a closed reader is noticed at the next write
    site = start_site(make_node)
    streams = [open_stream(site) for _ in range(3)]
    assert [status for _, status, _ in streams] == [200, 200, 200]
    conn, status, body = open_stream(site)
    conn.close()
    assert status == 503 and b"OverloadedError" in body
    still_serves(site)
    for conn, _, _ in streams:
        conn.close()
    assert site.node.http.streams.wait_open(0, timeout=20), "closed streams were never given back"
    assert open_stream(site)[1] == 200
    still_serves(site)


def test_a_stream_reader_that_never_reads_is_dropped(make_node, monkeypatch):
    monkeypatch.setattr(http_shim, "CONNECTION_TIMEOUT", 1.0)
    site = start_site(make_node)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", site.port))
    try:
        sock.sendall(f"GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n\r\n".encode())
        assert sock.recv(12) == b"HTTP/1.0 200"  # the stream is open; from now on nothing is read
        blob = "x" * 2000
        deadline = time.monotonic() + 60
        while site.node.http.streams.open and time.monotonic() < deadline:
            for _ in range(200):  # the writes fill the socket's buffers, then one waits past the timeout
                site.node.events.emit("noise", blob=blob)
            site.node.http.streams.wait_open(0, timeout=0.5)
        assert site.node.http.streams.open == 0, "the stream of a reader that never reads was never dropped"
    finally:
        sock.close()
    assert open_stream(site)[1] == 200
    still_serves(site)


def test_only_nodes_the_mesh_knows_are_listed_through_a_node(site):
    assert call(site.web, "GET", "/nodes/alpha/agents").body["agents"][0]["agent_id"] == AGENT
    for name, status in [
        ("nowhere", 404), ("tcp:" + quote("//127.0.0.1:1", safe=""), 400), ("..", 400), ("a" * 200, 400),
        (quote("evil.example/agents?x=", safe=""), 400),
    ]:  # fmt: skip
        reply = call(site.web, "GET", f"/nodes/{name}/agents")
        assert reply.status == status, (name, reply)
    still_serves(site)


@pytest.mark.parametrize("last_id", ["-1", "abc", "²", "9" * 40, "1e3", " ", "0x10"])
def test_a_bogus_last_event_id_is_ignored_and_the_stream_starts_with_news(site, last_id):
    assert site.node.events.wait_for(kind="run-finished", agent_id=AGENT, timeout=10, since=0)  # the last one due
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=20)
    try:
        conn.putrequest("GET", "/events/stream")
        conn.putheader("Last-Event-ID", last_id.encode())
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 200 and response.fp.readline().startswith(b"retry:")
        response.fp.readline()  # the rest of the opening comment block
        response.fp.readline()
        event = site.node.events.emit("note", AGENT)
        assert response.fp.readline() == f"id: {event.event_id}\n".encode()  # nothing older came first
    finally:
        conn.close()
    still_serves(site)

"""Watching nodes: the event log over ZeroMQ and HTTP, the event stream, metrics, ``paglets events`` and ``top``.

Nodes run as ``paglets-node`` processes on loopback unless a test needs to
reach inside one (a listener, a keep-alive interval), then in this process.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from paglets.client.host_client import HostClient
from paglets.core.errors import PagletCrashedError, RemoteHostError, TransferError
from paglets.core.messages import Message
from paglets.node.http import observe_routes
from tests.conftest import ROOT, wait_until
from tests.integration.test_http import call
from tests.sample_paglets import BacklogPaglet

pytestmark = pytest.mark.timeout(120)

ECHO = "paglets.examples.echo:EchoPaglet"
WORKER = "tests.sample_paglets:WorkingPaglet"
FUSSY = "tests.sample_paglets:FussyTravellerPaglet"
GOSSIP = ("--gossip-interval", "0.2", "--offline-after", "1")


@pytest.fixture
def client() -> HostClient:
    return HostClient(timeout=30)


def wait_event(
    client: HostClient, address: str, kind: str, agent_id: str | None = None, since: int = 0, match: Any = None
) -> dict:
    """The first event of ``kind`` (about ``agent_id``, for which ``match(event)`` holds) after ``since``:
    the node holds each read until there is news."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = client.events(address, since=since, kind=kind, agent_id=agent_id, limit=1, wait=10)
        if answer["events"] and (match is None or match(answer["events"][0])):
            return answer["events"][0]
        since = answer["next"]
    pytest.fail(f"no {kind} event for {agent_id} on {address}")


def all_events(client: HostClient, address: str, **filters: Any) -> list[dict]:
    return client.events(address, since=0, limit=1000, **filters)["events"]


def steps_of(client: HostClient, address: str, agent_id: str) -> list[dict]:
    """The events about a paglet but run-finished, which its worker reports whenever run() ends."""
    return [e for e in all_events(client, address, agent_id=agent_id) if e["kind"] != "run-finished"]


# -- every step of a paglet's life, with the fields that matter --------------------------------
def test_every_lifecycle_step_is_an_event_with_time_node_agent_class_and_details(node_process, client):
    alpha = node_process("alpha")
    beta = node_process("beta", "--peer", alpha.address)
    started = time.time()
    agent = client.create(alpha.address, ECHO).agent_id
    client.dispatch(alpha.address, agent, beta.address)
    copy = client.clone(beta.address, agent, alpha.address).agent_id
    client.retract(beta.address, agent, alpha.address)
    client.deactivate(alpha.address, agent, reason="night")
    client.activate(alpha.address, agent)
    client.dispose(alpha.address, agent)

    on_alpha = steps_of(client, alpha.address, agent)
    assert [e["kind"] for e in on_alpha] == ["create", "dispatch", "arrival", "deactivate", "activate", "dispose"]
    on_beta = steps_of(client, beta.address, agent)
    assert [e["kind"] for e in on_beta] == ["arrival", "clone", "retract"]
    create, dispatch, back, parked, woken, disposed = on_alpha
    for event in on_alpha:
        assert event["host_name"] == "alpha" and event["class_name"] == ECHO, event
        assert started - 1 <= event["timestamp"] <= time.time() + 1
    assert create["details"]["hook"] == "on_creation"
    assert dispatch["details"]["target"] == beta.address and dispatch["details"]["duration"] > 0
    assert back["details"] == {"source": beta.address, "how": "retract"}
    assert parked["details"]["reason"] == "night" and woken["details"]["reason"] == "activate"
    assert disposed["details"] == {}
    arrival, cloned, retracted = on_beta
    assert arrival["host_name"] == "beta" and arrival["details"] == {"source": alpha.address, "how": "dispatch"}
    assert cloned["details"]["clone_id"] == copy and cloned["details"]["target"] == alpha.address
    assert retracted["details"]["target"] == alpha.address
    landed = wait_event(client, alpha.address, "arrival", copy)
    assert landed["details"]["how"] == "clone" and landed["class_name"] == ECHO
    # The old names still filter: paglet-dispatched covers dispatch and retract.
    old = all_events(client, beta.address, kind="paglet-dispatched")
    assert [event["kind"] for event in old] == ["retract"]


def test_message_failures_crashes_and_transfer_failures_are_events(node_process, client):
    alpha = node_process("alpha")
    beta = node_process("beta")
    echo = client.create(alpha.address, ECHO).agent_id
    with pytest.raises(RemoteHostError, match="on purpose"):
        client.send(alpha.address, echo, Message("fail", arg="on purpose"))
    event = wait_event(client, alpha.address, "message-failed", echo)
    assert event["class_name"] == ECHO and event["message_id"] and event["details"]["count"] == 1
    assert event["error"] == "ValueError: on purpose"

    worker = client.create(alpha.address, WORKER).agent_id
    client.send_oneway(alpha.address, worker, Message("exit"))
    crash = wait_event(client, alpha.address, "crash", worker)
    assert crash["class_name"] == WORKER and "exited with code 3" in crash["error"]
    since = crash["event_id"]
    with pytest.raises(PagletCrashedError):
        client.send(alpha.address, worker, Message("pid"))
    # The exit message its handler held failed too; the next one met a crashed paglet.
    late = wait_event(client, alpha.address, "message-failed", worker, since=since, match=lambda e: e["message_id"])
    assert late["error"].startswith("PagletCrashedError") and late["details"]["count"] == 1

    fussy = client.create(alpha.address, FUSSY).agent_id
    with pytest.raises(TransferError):
        client.dispatch(alpha.address, fussy, beta.address)
    source_side = wait_event(client, alpha.address, "transfer-failed", fussy)
    assert source_side["details"]["target"] == beta.address and "will not land here" in source_side["error"]
    target_side = wait_event(client, beta.address, "transfer-failed", fussy)
    assert target_side["details"]["source"] == alpha.address and target_side["class_name"] == FUSSY


def test_nodes_going_online_and_offline_are_events_and_a_node_starts_with_context_start(node_process, client):
    alpha = node_process("alpha", *GOSSIP)
    beta = node_process("beta", *GOSSIP, "--peer", alpha.address)
    online = wait_event(client, alpha.address, "peer-online")
    assert online["details"]["peer"] == "beta" and online["details"]["url"] == beta.address
    assert all_events(client, beta.address)[0]["kind"] == "context-start"
    assert all_events(client, beta.address)[0]["details"]["address"] == beta.address
    beta.stop()
    offline = wait_event(client, alpha.address, "peer-offline", since=online["event_id"])
    assert offline["details"] == {"peer": "beta", "url": beta.address}


def test_node_stop_listeners_and_the_size_option_in_process(make_node):
    node = make_node("alpha", event_log_size=20, http_port=None)
    seen: list[str] = []
    node.add_listener(lambda event: seen.append(event.kind))

    def broken(event):
        raise RuntimeError("listener bug")

    node.add_listener(broken)
    proxy = node.create(ECHO)
    failed = node.events.wait_for(lambda e: e.details["failed_kind"] == "create", 10, 0, kind="listener-failed")
    assert failed is not None and failed.error == "RuntimeError: listener bug"
    assert failed.agent_id == proxy.agent_id and failed.class_name == ECHO
    assert "create" in seen and "listener-failed" in seen
    assert node.events.wait_for(kind="paglet-created", timeout=1, since=0).kind == "create"  # an old name
    node.remove_listener(broken)
    for index in range(30):
        node.events.emit("noise", n=index)
    assert len(node.list_events(limit=1000)) == 20 and node.events.first_event_id > 1
    before = node.events.last_seq
    node.stop()
    stopped = node.list_events(since=before, kind="context-stop")
    assert len(stopped) == 1 and stopped[0].details == {"deactivate_active": False} and stopped[0].host_name == "alpha"
    assert "context-stop" in seen
    with pytest.raises(ValueError, match="event_log_size"):
        make_node("beta", event_log_size=0)


# -- HTTP: pages of events, the stream, metrics -------------------------------------------------
def read_stream(web: str, path: str, headers: dict | None = None, *, until: Any, timeout: float = 20.0) -> list[str]:
    """Open an event stream and read its lines until ``until(lines)`` holds; the lines read."""
    url = urlsplit(web)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while not until(lines) and time.monotonic() < deadline:
            line = response.fp.readline()
            if not line:
                break
            lines.append(line.decode().rstrip("\n"))
        assert until(lines), lines
        return lines
    finally:
        conn.close()


def stream_events(lines: list[str]) -> list[dict]:
    return [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]


def test_events_over_http_and_the_event_stream_resumes_after_last_event_id(node_process, client):
    alpha = node_process("alpha")
    first = client.create(alpha.address, ECHO).agent_id
    page = call(alpha.http_address, "GET", "/events?since=0&limit=2")
    assert page.status == 200 and next(e["kind"] for e in page.body["events"]) == "context-start"
    assert page.body["next"] == page.body["events"][-1]["event_id"] and page.body["last"] >= page.body["next"]
    mine = call(alpha.http_address, "GET", f"/events?agent={first}&kind=create").body["events"]
    assert [(e["kind"], e["agent_id"], e["class_name"]) for e in mine] == [("create", first, ECHO)]
    assert call(alpha.http_address, "GET", "/events?kind=paglet-created").body["events"][0]["agent_id"] == first

    cursor = page.body["last"]
    second = client.create(alpha.address, ECHO).agent_id
    lines = read_stream(
        alpha.http_address, f"/events/stream?since={cursor}",
        until=lambda got: any(e["agent_id"] == second for e in stream_events(got)),
    )  # fmt: skip
    got = stream_events(lines)
    assert next(e["kind"] for e in got if e["agent_id"] == second) == "create"
    assert got[0]["event_id"] == cursor + 1
    ids = [int(line[len("id: ") :]) for line in lines if line.startswith("id: ")]
    assert ids == [e["event_id"] for e in got]
    # A reader that reconnects with Last-Event-ID gets what came after, and nothing twice.
    third = client.create(alpha.address, ECHO).agent_id
    again = read_stream(
        alpha.http_address, "/events/stream", {"Last-Event-ID": str(ids[0])},
        until=lambda got: any(e["agent_id"] == third for e in stream_events(got)),
    )  # fmt: skip
    resumed = stream_events(again)
    assert resumed[0]["event_id"] == ids[0] + 1
    assert len({e["event_id"] for e in resumed}) == len(resumed)


def test_an_idle_stream_sends_keep_alive_comments_and_ends_when_the_node_stops(make_node, monkeypatch):
    monkeypatch.setattr(observe_routes, "KEEPALIVE", 0.2)
    node = make_node("alpha", http_port=0)
    url = urlsplit(node.http_address)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    conn.request("GET", "/events/stream")
    response = conn.getresponse()
    lines = [response.fp.readline() for _ in range(5)]
    assert b": keep-alive\n" in lines, lines
    node.stop()
    rest = response.read()  # the server ends the stream: read returns
    conn.close()
    assert b"context-stop" in rest


def metric(families: dict, name: str, **labels: str) -> float:
    for sample in families[name].samples:
        if sample.name == name or sample.name == name + "_total":
            if all(sample.labels.get(key) == value for key, value in labels.items()):
                return sample.value
    raise KeyError((name, labels))


def scrape(web: str, **headers: str) -> dict:
    url = urlsplit(web)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    try:
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    finally:
        conn.close()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_count_paglets_messages_moves_and_memory(node_process, client):
    alpha = node_process("alpha")
    beta = node_process("beta")
    echo = client.create(alpha.address, ECHO).agent_id
    mover = client.create(alpha.address, ECHO).agent_id
    for index in range(20):
        assert client.send(alpha.address, echo, Message("echo", arg=index)) == index
    with pytest.raises(RemoteHostError, match="no"):
        client.send(alpha.address, echo, Message("fail", arg="no"))
    client.dispatch(alpha.address, mover, beta.address)
    client.deactivate(beta.address, mover)
    families = scrape(alpha.http_address)
    assert metric(families, "paglets_node_up") == 1
    assert metric(families, "paglets_paglets", state="active") == 1
    assert metric(families, "paglets_messages_delivered") >= 20
    assert metric(families, "paglets_messages_failed") == 1
    rtt = families["paglets_sync_roundtrip_seconds"]
    assert [s.value for s in rtt.samples if s.name.endswith("_count")] == [21.0]
    handling = [s for s in families["paglets_message_handling_seconds"].samples if s.labels.get("le") == "+Inf"]
    assert handling[0].value >= 21
    assert metric(families, "paglets_moves", kind="dispatch") == 1
    durations = families["paglets_move_duration_seconds"].samples
    assert [s.value for s in durations if s.name.endswith("_count") and s.labels["kind"] == "dispatch"] == [1.0]
    assert metric(families, "paglets_events", kind="message-failed") == 1
    assert metric(families, "paglets_worker_rss_bytes", agent_id=echo) > 1_000_000
    assert metric(families, "paglets_node_rss_bytes") > 10_000_000
    assert metric(families, "paglets_worker_processes") >= 1
    assert metric(families, "paglets_peer_links") == 0
    on_beta = scrape(beta.http_address)
    assert metric(on_beta, "paglets_paglets", state="parked") == 1
    assert metric(on_beta, "paglets_moves", kind="arrival") == 1


def test_mailbox_depth_names_the_deepest_mailboxes(make_node):
    node = make_node("alpha", http_port=0)
    gate = node.create(BacklogPaglet)
    held = node.client.send_future(node.address, gate.agent_id, Message("hold"))
    assert node.client.send(node.address, gate.agent_id, Message("until-held", arg=1, priority=0)) is True
    for index in range(5):
        node.client.send_oneway(node.address, gate.agent_id, Message("note", arg=index))
    node.client.flush(node.address)
    families = scrape(node.http_address)
    assert metric(families, "paglets_mailbox_depth", agent_id=gate.agent_id) == 5
    assert metric(families, "paglets_mailbox_queued") == 5
    assert metric(families, "paglets_mailbox_in_flight") == 1
    node.client.send(node.address, gate.agent_id, Message("open", priority=0))
    held.get_reply(10)


# -- the command line ---------------------------------------------------------------------------
def paglets_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "paglets.cli.client", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_paglets_events_prints_filters_and_follows_until_ctrl_c(node_process, client):
    alpha = node_process("alpha")
    agent = client.create(alpha.address, ECHO).agent_id
    done = paglets_cli("events", alpha.address)
    assert done.returncode == 0, done.stderr
    assert "context-start" in done.stdout and f"create  {agent}  EchoPaglet  hook=on_creation" in done.stdout
    listed = json.loads(paglets_cli("--json", "events", "--agent", agent, "--since", "1", alpha.address).stdout)
    assert {e["agent_id"] for e in listed} == {agent} and "create" in [e["kind"] for e in listed]
    assert paglets_cli("events", "--since", "-1", alpha.address).returncode == 2

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    follower = subprocess.Popen(
        [sys.executable, "-m", "paglets.cli.client", "--json", "events", "--follow", "--since",
         str(listed[-1]["event_id"]), "--kind", "create", alpha.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        later = client.create(alpha.address, ECHO).agent_id
        ready, _, _ = select.select([follower.stdout], [], [], 20)
        assert ready, "paglets events --follow printed nothing"
        event = json.loads(follower.stdout.readline())
        assert event["kind"] == "create" and event["agent_id"] == later
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0
        assert "Traceback" not in follower.stderr.read()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(5)


def test_paglets_top_once_shows_the_mesh_and_the_paglet_where_it_moved(node_process, client):
    alpha = node_process("alpha")
    beta = node_process("beta", "--peer", alpha.address)
    agent = client.create(alpha.address, ECHO).agent_id
    client.dispatch(alpha.address, agent, beta.address)
    for _ in range(3):
        client.send(beta.address, agent, Message("echo", arg=1))
    frame = paglets_cli("top", "--once", beta.address)
    assert frame.returncode == 0, frame.stderr
    lines = frame.stdout.splitlines()
    assert lines[0].startswith("paglets top - beta") and "\x1b" not in frame.stdout
    row = next(line for line in lines if line.startswith(agent))
    assert row.split()[1:4] == ["EchoPaglet", "active", "0"] and row.split()[-1] == alpha.address
    assert any(line.startswith("alpha ") and "online" in line for line in lines)
    assert "arrival" in frame.stdout
    assert paglets_cli("top", "--count", "2", "--interval", "0.5", beta.address).stdout.count("paglets top - beta") == 2


def test_every_metric_the_node_serves_is_documented(make_node):
    node = make_node("alpha", http_port=None)
    node.create(ECHO)
    text = node.metrics.render().decode()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert len(names) >= 20
    documented = (ROOT / "docs" / "operations.md").read_text()
    for name in names:
        assert f"`{name}" in documented, name


def test_a_relay_serves_its_nodes_and_their_queue_depths_as_metrics(relay_process, node_process):
    relay = relay_process("relay")
    node_process("natted", "--connect", relay.address)

    def connected() -> dict | None:
        families = scrape(relay.http_address)
        return families if metric(families, "paglets_relay_nodes", connected="true") == 1 else None

    families = wait_until(connected, 20, "the relay to publish its node")  # its snapshot is published per beat
    assert metric(families, "paglets_relay_queue_depth", node="natted") == 0
    assert metric(families, "paglets_relay_info", relay="relay") == 1

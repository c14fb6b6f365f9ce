"""The HTTP shim over real loopback HTTP, in front of real nodes with real workers."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import msgpack
import pytest

from paglets.core.messages import Message
from paglets.examples.echo import EchoState
from paglets.node.http import shim as http_shim
from paglets.remote.proxy import PagletProxy
from paglets.runtime.envelope import PagletEnvelope
from paglets.wire import codec
from tests import sample_paglets as sp
from tests.conftest import wait_until

ECHO = "paglets.examples.echo:EchoPaglet"


class Reply(NamedTuple):
    status: int
    body: Any
    headers: http.client.HTTPMessage


def call(base: str, method: str, path: str, body: Any = None, *, headers: dict | None = None, timeout: float = 10.0):
    """One HTTP request; ``body`` is sent as JSON unless it is already bytes.

    A state-changing request says ``Content-Type: application/json`` unless ``headers`` name another.
    """
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    headers = dict(headers or {})
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        headers.setdefault("Content-Type", "application/json")
    try:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        assert response.headers["Content-Type"] == "application/json"
        return Reply(response.status, json.loads(raw), response.headers)
    finally:
        conn.close()


def raw_exchange(base: str, data: bytes, *, timeout: float = 3.0, close_write: bool = True) -> bytes:
    """Send raw bytes on a fresh TCP connection and read until the server closes it."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        chunks = []
        try:
            sock.sendall(data)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server closed with some of our bytes unread
        return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def assert_healthy(base: str, **headers: str) -> None:
    reply = call(base, "GET", "/health", headers=headers, timeout=10.0)
    assert reply.status == 200 and reply.body["name"]


def create_echo(base: str, **fields: Any) -> str:
    reply = call(base, "POST", "/agents", {"class_name": ECHO, **fields})
    assert reply.status == 201, reply.body
    return reply.body["agent_id"]


@pytest.fixture
def web(make_node) -> str:
    """The HTTP base URL of a running node named alpha."""
    return make_node("alpha", http_port=0).http_address


# -- endpoints -------------------------------------------------------------------
def test_health_reports_name_addresses_counts_and_capabilities(make_node):
    node = make_node("alpha", http_port=0)
    reply = call(node.http_address, "GET", "/health")
    assert reply.status == 200
    assert reply.body["name"] == "alpha"
    assert reply.body["address"] == node.address
    assert reply.body["http_address"] == node.http_address
    assert reply.body["active_count"] == 0
    assert "http" in reply.body["capabilities"]
    assert reply.body["version"]


def test_paglet_created_over_http_is_listed_described_and_shows_its_state(web):
    agent_id = create_echo(web, state={"greeting": "hey", "total": 5}, init=[1, "two"], agent_id="echo-1")
    assert agent_id == "echo-1"

    listed = call(web, "GET", "/agents").body["agents"]
    assert [a["agent_id"] for a in listed] == ["echo-1"]
    assert listed[0]["class_name"] == ECHO and "state" not in listed[0]
    with_state = call(web, "GET", "/agents?state=all&include_state=1").body["agents"]
    assert with_state[0]["state"]["greeting"] == "hey"
    assert call(web, "GET", "/agents?state=inactive").body == {"agents": []}

    info = call(web, "GET", "/agents/echo-1")
    assert info.status == 200 and info.body["active"] is True and info.body["class_name"] == ECHO

    state = call(web, "GET", "/agents/echo-1/state").body
    assert state["agent_id"] == "echo-1" and state["class_name"] == ECHO
    assert state["state"]["total"] == 5 and state["state"]["created_with"] == [1, "two"]


def test_message_over_http_returns_the_handlers_result(web):
    agent_id = create_echo(web)
    path = f"/agents/{agent_id}/messages"
    assert call(web, "POST", path, {"kind": "echo", "arg": {"x": [1, 2.5, None]}}).body == {
        "result": {"x": [1, 2.5, None]}
    }
    assert call(web, "POST", path, {"kind": "echo", "args": {"a": 1}}).body == {"result": {"a": 1}}
    assert call(web, "POST", path, {"kind": "add", "arg": 4, "priority": 10, "timeout": 5}).body == {"result": 4}
    assert call(web, "POST", path, {"kind": "history"}).body == {"result": ["echo", "echo", "add", "history"]}


def test_oneway_message_is_accepted_and_its_effect_shows_in_state(web):
    agent_id = create_echo(web, class_name="tests.sample_paglets:SerialEchoPaglet")
    path = f"/agents/{agent_id}/messages"
    reply = call(web, "POST", path, {"kind": "add", "arg": 7, "oneway": True})
    assert reply.status == 202 and reply.body == {"accepted": True}
    # 202 means queued; with one handler, a message sent next is handled after it.
    assert call(web, "POST", path, {"kind": "add", "arg": 0}).body == {"result": 7}
    assert call(web, "GET", f"/agents/{agent_id}/state").body["state"]["total"] == 7


def test_unhandled_kind_is_422_not_handled(web):
    agent_id = create_echo(web)
    reply = call(web, "POST", f"/agents/{agent_id}/messages", {"kind": "no-such-kind"})
    assert reply.status == 422
    assert reply.body["error"]["type"] == "NotHandledError"


def test_handler_exception_is_500_remote_host_error_naming_its_type(web):
    agent_id = create_echo(web)
    reply = call(web, "POST", f"/agents/{agent_id}/messages", {"kind": "fail", "arg": "boom"})
    assert reply.status == 500
    assert reply.body["error"] == {"type": "RemoteHostError", "remote_type": "ValueError", "message": "boom"}


def test_message_not_answered_within_its_timeout_is_504(web):
    agent_id = create_echo(web)
    reply = call(web, "POST", f"/agents/{agent_id}/messages", {"kind": "sleep", "arg": 0.6, "timeout": 0.1})
    assert reply.status == 504
    assert reply.body["error"]["type"] == "RequestTimeoutError"


def test_disposed_paglet_is_gone_with_404(web):
    agent_id = create_echo(web)
    assert call(web, "DELETE", f"/agents/{agent_id}").body == {"disposed": agent_id}
    for method, path in [("GET", ""), ("GET", "/state"), ("DELETE", "")]:
        reply = call(web, method, f"/agents/{agent_id}{path}")
        assert reply.status == 404 and reply.body["error"]["type"] == "InvalidAgentError", (method, path)
    assert call(web, "GET", "/agents").body == {"agents": []}


def test_unknown_paglet_is_404_and_unknown_route_404_and_wrong_method_405(web):
    reply = call(web, "POST", "/agents/nobody/messages", {"kind": "echo"})
    assert reply.status == 404 and reply.body["error"]["type"] == "InvalidAgentError"
    assert call(web, "GET", "/agents/nobody").status == 404
    assert call(web, "GET", "/no/such/route").status == 404
    wrong = call(web, "PUT", "/agents/nobody", {})
    assert wrong.status == 405 and "DELETE" in wrong.headers["Allow"]


def test_malformed_requests_are_refused_with_400(web):
    agent_id = create_echo(web)
    messages = f"/agents/{agent_id}/messages"
    cases = [
        ("bad JSON", "POST", messages, b"{not json"),
        ("NaN is not JSON", "POST", messages, b'{"kind": "echo", "arg": NaN}'),
        ("non-object body", "POST", messages, [1, 2]),
        ("empty body", "POST", messages, b""),
        ("missing kind", "POST", messages, {"arg": 1}),
        ("kind not a string", "POST", messages, {"kind": 3}),
        ("args not an object", "POST", messages, {"kind": "echo", "args": [1]}),
        ("priority too high", "POST", messages, {"kind": "echo", "priority": 11}),
        ("priority a bool", "POST", messages, {"kind": "echo", "priority": True}),
        ("oneway not a bool", "POST", messages, {"kind": "echo", "oneway": "yes"}),
        ("timeout zero", "POST", messages, {"kind": "echo", "timeout": 0}),
        ("unknown field", "POST", messages, {"kind": "echo", "colour": "red"}),
        ("bad agent id in path", "POST", "/agents/-bad/messages", {"kind": "echo"}),
        ("encoded slash in agent id", "GET", "/agents/a%2Fb", None),
        ("create without class", "POST", "/agents", {"state": {}}),
        ("class without module", "POST", "/agents", {"class_name": "EchoPaglet"}),
        ("state not an object", "POST", "/agents", {"class_name": ECHO, "state": [1]}),
        ("bad agent_id to create", "POST", "/agents", {"class_name": ECHO, "agent_id": "a b"}),
        ("unknown list filter", "GET", "/agents?state=sleeping", None),
    ]
    for label, method, path, body in cases:
        reply = call(web, method, path, body)
        assert reply.status == 400, (label, reply)
        assert reply.body["error"]["type"] in ("ProtocolError", "SerializationError"), (label, reply)
    assert call(web, "GET", f"/agents/{agent_id}").status == 200


def test_post_without_content_length_is_411(web):
    raw = raw_exchange(web, b"POST /agents HTTP/1.1\r\nContent-Type: application/json\r\n\r\n")
    assert status_of(raw) == 411


def test_body_over_the_size_limit_is_413_before_the_body_is_read(make_node):
    web = make_node("alpha", http_port=0, http_max_body=1024).http_address
    # The body never comes: a shim that tried to read it would wait for it instead of answering.
    request = b"POST /agents HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1025\r\n\r\n"
    raw = raw_exchange(web, request, close_write=False)
    assert status_of(raw) == 413
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "ProtocolError"
    assert create_echo(web, state={"greeting": "x" * 100})


def test_api_key_is_required_on_every_request_but_health(make_node):
    web = make_node("secure", http_port=0, api_key="s3cret").http_address
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        reply = call(web, "GET", "/agents", headers=headers)
        assert reply.status == 401, headers
        assert reply.body["error"]["type"] == "AuthenticationError"
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    refused = call(web, "POST", "/agents", {"class_name": ECHO}, headers={"Authorization": "Bearer s3cre"})
    assert refused.status == 401
    assert_healthy(web)  # a load balancer's probe needs no key
    assert_healthy(web, Authorization="Bearer wrong")
    assert call(web, "GET", "/agents", headers={"Authorization": "Bearer s3cret"}).body == {"agents": []}


# -- robustness: after each abuse the node still answers promptly -------------------
def test_garbage_bytes_get_a_400_and_the_node_stays_healthy(web):
    raw = raw_exchange(web, b"\x00\xff\x13garbage \x80\x81 more garbage\r\n\r\n")
    assert status_of(raw) == 400
    raw_exchange(web, bytes(range(256)) * 4)
    assert_healthy(web)


def test_truncated_requests_do_not_hurt_the_node(web):
    head = b"POST /agents HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    raw = raw_exchange(web, head + b'{"class_na')
    assert status_of(raw) == 400
    raw_exchange(web, b"GET /hea")
    raw_exchange(web, b"GET /health HTTP/1.1\r\nHost: local")
    assert_healthy(web)


def test_oversized_request_line_is_refused_and_the_node_stays_healthy(web):
    # One byte over the 65,536 a request line may have, and nothing after it: the server
    # reads every byte we sent, so it closes cleanly and its answer reaches us.
    line = b"GET /" + b"a" * (65_537 - len(b"GET /"))
    assert status_of(raw_exchange(web, line)) == 414
    # Far over, with more behind: the server may reset the connection on our unread bytes.
    raw_exchange(web, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert_healthy(web)


def test_silent_client_ties_up_only_its_own_connection(web):
    url = urlsplit(web)
    with socket.create_connection((url.hostname, url.port), timeout=10.0) as silent:
        assert_healthy(web)
        assert call(web, "GET", "/agents").body == {"agents": []}
        silent.sendall(b"GET /health HTTP/1.1\r\n")  # half a request, then silence
        assert_healthy(web)
        # The silent connection was served alongside, not dropped to serve the others: it still answers.
        silent.sendall(b"Accept: application/json\r\n\r\n")
        answer = b"".join(iter(lambda: silent.recv(65536), b""))
    assert status_of(answer) == 200


def test_silent_or_stalled_client_is_dropped_after_the_connection_timeout(make_node, monkeypatch):
    monkeypatch.setattr(http_shim, "CONNECTION_TIMEOUT", 0.3)
    web = make_node("alpha", http_port=0).http_address
    url = urlsplit(web)
    with socket.create_connection((url.hostname, url.port), timeout=10.0) as silent:
        assert silent.recv(1024) == b""  # the shim hung up on us (long before the 30 s default)
    request = b'POST /agents HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"cla'
    stalled = raw_exchange(web, request, close_write=False)
    assert status_of(stalled) == 408
    assert_healthy(web)


def test_connections_beyond_the_limit_get_503_and_the_node_recovers(make_node, monkeypatch):
    monkeypatch.setattr(http_shim, "MAX_CONNECTIONS", 2)
    web = make_node("alpha", http_port=0).http_address
    url = urlsplit(web)
    silent = [socket.create_connection((url.hostname, url.port), timeout=2.0) for _ in range(2)]
    try:
        reply = call(web, "GET", "/health", timeout=2.0)
        assert reply.status == 503 and reply.body["error"]["type"] == "OverloadedError"
    finally:
        for sock in silent:
            sock.close()
    # The freed slots are released by the shim's own threads; an HTTP client can only ask again.
    wait_until(lambda: call(web, "GET", "/health", timeout=2.0).status == 200, 3.0, "a free connection slot")


# -- movement ---------------------------------------------------------------------
@pytest.fixture
def two(make_node):
    """Nodes alpha and beta, both with HTTP."""
    return make_node("alpha", http_port=0), make_node("beta", http_port=0)


def test_dispatch_over_http_moves_the_paglet_and_answers_its_new_address(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    reply = call(alpha.http_address, "POST", f"/agents/{proxy.agent_id}/dispatch", {"destination": beta.address})
    assert reply.status == 200, reply.body
    assert reply.body == {"agent_id": proxy.agent_id, "address": beta.address}
    assert PagletProxy(beta.address, proxy.agent_id).send("where") == "beta"
    assert alpha.list_agents() == []


def test_dispatch_ticket_terms_are_passed_on(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    ticket = {
        "destination": beta.address,
        "timeout": 5,
        "retries": 1,
        "retry_interval": 0.1,
        "required_capabilities": ["dispatch", "files"],
        "expected_code_version": beta.mesh_version,
        "arrival_mode": "activate",
    }
    reply = call(alpha.http_address, "POST", f"/agents/{proxy.agent_id}/dispatch", ticket)
    assert reply.status == 200, reply.body
    assert proxy.send("where") == "beta"


def test_clone_over_http_to_another_node_and_here(two):
    alpha, beta = two
    original = alpha.create(sp.TravellerPaglet)
    original.send("count")
    path = f"/agents/{original.agent_id}/clone"

    there = call(alpha.http_address, "POST", path, {"destination": beta.address})
    assert there.status == 201, there.body
    assert there.body["address"] == beta.address and there.body["agent_id"] != original.agent_id
    copy = PagletProxy(beta.address, there.body["agent_id"])
    assert copy.send("where") == "beta" and copy.send("count") == 2

    here = call(alpha.http_address, "POST", path, {})
    assert here.status == 201, here.body
    assert here.body["address"] == alpha.address
    assert PagletProxy(alpha.address, here.body["agent_id"]).send("where") == "alpha"
    assert original.send("count") == 2  # the clones counted on their own


def test_retract_over_http_pulls_the_paglet_back_to_this_node(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    alpha.dispatch(proxy.agent_id, beta.address)
    reply = call(alpha.http_address, "POST", f"/agents/{proxy.agent_id}/retract", {"from": beta.address})
    assert reply.status == 200, reply.body
    assert reply.body == {"agent_id": proxy.agent_id, "address": alpha.address}
    assert PagletProxy(alpha.address, proxy.agent_id).send("where") == "alpha"
    assert beta.list_agents() == []


def test_move_the_target_refuses_is_409_and_the_paglet_stays(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    proxy.send("count")
    ticket = {"destination": beta.address, "required_capabilities": ["gpu"]}
    for path in (f"/agents/{proxy.agent_id}/dispatch", f"/agents/{proxy.agent_id}/clone"):
        reply = call(alpha.http_address, "POST", path, ticket)
        assert reply.status == 409, (path, reply)
        assert reply.body["error"]["type"] == "TransferError" and "gpu" in reply.body["error"]["message"]
    assert proxy.send("count") == 2 and proxy.send("where") == "alpha"
    assert beta.list_agents() == []


def test_moving_an_unknown_paglet_is_404(two):
    alpha, beta = two
    reply = call(alpha.http_address, "POST", "/agents/nobody/dispatch", {"destination": beta.address})
    assert reply.status == 404 and reply.body["error"]["type"] == "InvalidAgentError"


def test_malformed_tickets_are_refused_with_400_and_nothing_moves(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    dispatch, clone = f"/agents/{proxy.agent_id}/dispatch", f"/agents/{proxy.agent_id}/clone"
    retract = f"/agents/{proxy.agent_id}/retract"
    to_beta = {"destination": beta.address}
    cases = [
        ("no destination", dispatch, {}),
        ("null destination", dispatch, {"destination": None}),
        ("destination not a string", dispatch, {"destination": 7}),
        ("destination not an address", dispatch, {"destination": "tcp://nowhere"}),
        ("destination with a path", dispatch, {"destination": "http://127.0.0.1:1/x"}),
        ("body not an object", dispatch, [beta.address]),
        ("unknown field", dispatch, {**to_beta, "colour": "red"}),
        ("timeout zero", dispatch, {**to_beta, "timeout": 0}),
        ("timeout a string", dispatch, {**to_beta, "timeout": "5"}),
        ("negative retries", dispatch, {**to_beta, "retries": -1}),
        ("retries a float", dispatch, {**to_beta, "retries": 1.5}),
        ("negative retry interval", dispatch, {**to_beta, "retry_interval": -0.1}),
        ("capabilities a string", dispatch, {**to_beta, "required_capabilities": "gpu"}),
        ("capability not a string", dispatch, {**to_beta, "required_capabilities": [1]}),
        ("empty code version", dispatch, {**to_beta, "expected_code_version": ""}),
        ("unknown arrival mode", dispatch, {**to_beta, "arrival_mode": "asleep"}),
        ("clone terms without destination", clone, {"timeout": 5}),
        ("clone with bad destination", clone, {"destination": "tcp://127.0.0.1:99999"}),
        ("retract without from", retract, {}),
        ("retract from garbage", retract, {"from": "tcp://"}),
        ("retract with a ticket field", retract, {"from": beta.address, "timeout": 5}),
    ]
    for label, path, body in cases:
        reply = call(alpha.http_address, "POST", path, body)
        assert reply.status == 400, (label, reply)
        assert reply.body["error"]["type"] == "ProtocolError", (label, reply)
    assert proxy.send("where") == "alpha"
    assert [a["agent_id"] for a in alpha.list_agents()] == [proxy.agent_id]
    assert beta.list_agents() == []


# -- parking ----------------------------------------------------------------------------
QUEUE_ONLY = {"activate_on_message": False}


def message(base: str, agent_id: str, kind: str, arg: Any = None) -> Reply:
    return call(base, "POST", f"/agents/{agent_id}/messages", {"kind": kind, "arg": arg})


def test_mail_for_a_paglet_parked_over_http_is_queued_listed_and_delivered_on_activation(make_node):
    node = make_node("alpha", http_port=0)
    web, agent_id = node.http_address, node.create(sp.ParkingPaglet).agent_id
    assert message(web, agent_id, "note", "a").body == {"result": 1}

    body = {"reason": "nap", "policy": QUEUE_ONLY, "metadata": {"by": "http"}}
    parked = call(web, "POST", f"/agents/{agent_id}/deactivate", body)
    assert parked.status == 200, parked.body
    assert parked.body == {"agent_id": agent_id, "address": node.address, "active": False, "was_active": True}
    assert call(web, "POST", f"/agents/{agent_id}/deactivate", {}).body["was_active"] is False  # already parked

    queued = message(web, agent_id, "note", "b")
    assert queued.status == 202, queued.body  # accepted, not handled: no result, and why
    assert queued.body["error"]["type"] == "MessageQueuedError" and "parked" in queued.body["error"]["message"]
    assert queued.body["error"]["message_id"] in queued.body["error"]["message"]

    [listed] = call(web, "GET", "/agents?state=inactive").body["agents"]
    assert listed["agent_id"] == agent_id and listed["active"] is False and listed["phase"] == "inactive"
    assert listed["queued_messages"] == 1 and listed["reason"] == "nap"
    assert listed["policy"]["activate_on_message"] is False and listed["deactivated_at"] > 0
    assert call(web, "GET", "/agents").body == {"agents": []}
    [with_state] = call(web, "GET", "/agents?state=all&include_state=1").body["agents"]
    assert with_state["state"]["seen"] == ["a"]  # read from the record: no worker runs

    woken = call(web, "POST", f"/agents/{agent_id}/activate")
    assert woken.status == 200, woken.body
    assert woken.body == {"agent_id": agent_id, "address": node.address, "active": True, "was_active": False}
    assert call(web, "POST", f"/agents/{agent_id}/activate").body["was_active"] is True  # already active
    assert message(web, agent_id, "seen").body == {"result": ["a", "b"]}
    assert call(web, "GET", "/agents?state=inactive").body == {"agents": []}
    [active] = call(web, "GET", "/agents").body["agents"]
    assert active["agent_id"] == agent_id and active["active"] is True


def test_deactivate_and_activate_take_a_request_without_a_body(make_node):
    node = make_node("alpha", http_port=0)
    agent_id = node.create(sp.ParkingPaglet).agent_id
    for action, active in (("deactivate", False), ("activate", True)):
        request = f"POST /agents/{agent_id}/{action} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        raw = raw_exchange(node.http_address, request.encode())
        assert status_of(raw) == 200, raw
        assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["active"] is active
        assert node.agent_info(agent_id)["active"] is active


def test_a_message_the_parked_paglet_refuses_is_409_paglet_inactive(make_node):
    node = make_node("alpha", http_port=0)
    agent_id = node.create(sp.ParkingPaglet).agent_id
    policy = {"activate_on_message": False, "queue_messages_when_inactive": False}
    assert call(node.http_address, "POST", f"/agents/{agent_id}/deactivate", {"policy": policy}).status == 200
    reply = message(node.http_address, agent_id, "note", 1)
    assert reply.status == 409 and reply.body["error"]["type"] == "PagletInactiveError"
    assert node.agent_info(agent_id)["queued_messages"] == 0


def test_parking_an_unknown_paglet_is_404(web):
    for action in ("deactivate", "activate"):
        reply = call(web, "POST", f"/agents/nobody/{action}", {})
        assert reply.status == 404 and reply.body["error"]["type"] == "InvalidAgentError", action


def test_malformed_deactivation_requests_are_refused_with_400_and_nothing_parks(make_node):
    node = make_node("alpha", http_port=0)
    agent_id = node.create(sp.ParkingPaglet).agent_id
    deactivate, activate = f"/agents/{agent_id}/deactivate", f"/agents/{agent_id}/activate"
    cases = [
        ("body not an object", deactivate, [1]),
        ("unknown field", deactivate, {"reason": "x", "colour": "red"}),
        ("reason not a string", deactivate, {"reason": 5}),
        ("metadata not an object", deactivate, {"metadata": ["a"]}),
        ("policy not an object", deactivate, {"policy": True}),
        ("policy flag a string", deactivate, {"policy": {"activate_on_message": "no"}}),
        ("policy flag a number", deactivate, {"policy": {"queue_messages_when_inactive": 0}}),
        ("policy flag null", deactivate, {"policy": {"activate_on_startup": None}}),
        ("activate_at a string", deactivate, {"policy": {"activate_at": "tomorrow"}}),
        ("activate_at negative", deactivate, {"policy": {"activate_at": -1}}),
        ("activate_at a bool", deactivate, {"policy": {"activate_at": True}}),
        ("activate_at past year 9999", deactivate, {"policy": {"activate_at": 1e12}}),
        ("unknown policy field", deactivate, {"policy": {"wake_on_message": True}}),
        ("activate with a field", activate, {"reason": "x"}),
        ("activate with a non-object body", activate, "now"),
    ]
    for label, path, body in cases:
        reply = call(node.http_address, "POST", path, body)
        assert reply.status == 400, (label, reply)
        assert reply.body["error"]["type"] == "ProtocolError", (label, reply)
    assert node.agent_info(agent_id)["active"] is True
    assert [h["hook"] for h in node.get_state(agent_id)["hooks"]] == []


# -- envelopes pushed over HTTP --------------------------------------------------------
def echo_envelope(target, agent_id: str = "pushed-1", **fields: Any) -> PagletEnvelope:
    values: dict[str, Any] = {
        "kind": "dispatch",
        "agent_id": agent_id,
        "agent_class_name": ECHO,
        "state_class_name": "",
        "state": codec.encode(EchoState(greeting="x")),
        "source_host_name": "elsewhere",
        "source_host_address": "tcp://127.0.0.1:9",
        "target_host_name": target.name,
        "target_host_address": target.address,
        "metadata": {},
    }
    values.update(fields)
    return PagletEnvelope(**values)


def post_envelope(base: str, data: bytes, content_type: str = "application/msgpack") -> Reply:
    return call(base, "POST", "/envelopes", data, headers={"Content-Type": content_type})


def test_envelope_posted_as_msgpack_starts_the_paglet_with_its_state(make_node):
    alpha = make_node("alpha", http_port=0)
    reply = post_envelope(alpha.http_address, echo_envelope(alpha).to_bytes())
    assert reply.status == 201, reply.body
    assert reply.body == {"agent_id": "pushed-1", "address": alpha.address}
    assert alpha.agent_info("pushed-1")["phase"] == "ready"
    assert alpha.get_state("pushed-1")["greeting"] == "x"
    assert PagletProxy(alpha.address, "pushed-1").send(Message("echo", arg="hi")) == "hi"

    again = post_envelope(alpha.http_address, echo_envelope(alpha).to_bytes())
    assert again.status == 409 and again.body["error"]["type"] == "TransferError"


def test_envelope_needs_the_msgpack_content_type(make_node):
    alpha = make_node("alpha", http_port=0)
    data = echo_envelope(alpha).to_bytes()
    for content_type in ("application/json", "text/plain", "application/octet-stream"):
        reply = post_envelope(alpha.http_address, data, content_type)
        assert reply.status == 415, (content_type, reply)
    missing = call(alpha.http_address, "POST", "/envelopes", data)
    assert missing.status == 415
    assert alpha.list_agents() == []
    assert post_envelope(alpha.http_address, data, "application/msgpack; charset=binary").status == 201


def test_malformed_envelopes_are_refused_with_400(make_node):
    alpha = make_node("alpha", http_port=0)
    good = echo_envelope(alpha).to_wire()
    cases = [
        ("garbage", b"\xc1\xc1 not msgpack"),
        ("truncated", echo_envelope(alpha).to_bytes()[:-5]),
        ("empty", b""),
        ("not a map", msgpack.packb([1, 2, 3])),
        ("no kind", msgpack.packb({k: v for k, v in good.items() if k != "kind"})),
        ("unknown kind", msgpack.packb({**good, "kind": "teleport"})),
        ("activation is not a move", msgpack.packb({**good, "kind": "activation"})),
        ("bad agent id", msgpack.packb({**good, "agent_id": "../etc"})),
        ("class without module", msgpack.packb({**good, "agent_class_name": "EchoPaglet"})),
        ("state a huge number", msgpack.packb({**good, "state": 2**40})),
        ("state text", msgpack.packb({**good, "state": "x"})),
        ("bad clone_of", msgpack.packb({**good, "kind": "clone", "clone_of": "a b"})),
        ("bad source address", msgpack.packb({**good, "source_host_address": "tcp://"})),
    ]
    for label, data in cases:
        reply = post_envelope(alpha.http_address, data)
        assert reply.status == 400, (label, reply)
        assert reply.body["error"]["type"] in ("ProtocolError", "SerializationError"), (label, reply)
    assert alpha.list_agents() == []
    assert_healthy(alpha.http_address)

"""The HTTP shim over real loopback HTTP, in front of a real node with real workers."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from paglets.runtime import http_shim
from tests.conftest import wait_until

ECHO = "paglets.examples.echo:EchoPaglet"


class Reply(NamedTuple):
    status: int
    body: Any
    headers: http.client.HTTPMessage


def call(base: str, method: str, path: str, body: Any = None, *, headers: dict | None = None, timeout: float = 10.0):
    """One HTTP request; ``body`` is sent as JSON unless it is already bytes."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
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
    started = time.monotonic()
    reply = call(base, "GET", "/health", headers=headers, timeout=2.0)
    assert reply.status == 200
    assert time.monotonic() - started < 1.0


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
    agent_id = create_echo(web)
    reply = call(web, "POST", f"/agents/{agent_id}/messages", {"kind": "add", "arg": 7, "oneway": True})
    assert reply.status == 202 and reply.body == {"accepted": True}
    # An HTTP client has nothing to wait on but the state itself.
    wait_until(
        lambda: call(web, "GET", f"/agents/{agent_id}/state").body["state"]["total"] == 7,
        5.0,
        "the oneway add to show in the paglet's state",
    )


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
    raw = raw_exchange(web, b"POST /agents HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(raw) == 411


def test_body_over_the_size_limit_is_413_before_the_body_is_read(make_node):
    web = make_node("alpha", http_port=0, max_message_size=1024).http_address
    # The body never comes: a shim that tried to read it would wait for it instead of answering.
    raw = raw_exchange(web, b"POST /agents HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", close_write=False)
    assert status_of(raw) == 413
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "ProtocolError"
    assert create_echo(web, state={"greeting": "x" * 100})


def test_api_key_is_required_on_every_request(make_node):
    web = make_node("secure", http_port=0, api_key="s3cret").http_address
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        reply = call(web, "GET", "/health", headers=headers)
        assert reply.status == 401, headers
        assert reply.body["error"]["type"] == "AuthenticationError"
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    refused = call(web, "POST", "/agents", {"class_name": ECHO}, headers={"Authorization": "Bearer s3cre"})
    assert refused.status == 401
    assert_healthy(web, Authorization="Bearer s3cret")
    assert call(web, "GET", "/agents", headers={"Authorization": "Bearer s3cret"}).body == {"agents": []}


# -- robustness: after each abuse the node still answers promptly -------------------
def test_garbage_bytes_get_a_400_and_the_node_stays_healthy(web):
    raw = raw_exchange(web, b"\x00\xff\x13garbage \x80\x81 more garbage\r\n\r\n")
    assert status_of(raw) == 400
    raw_exchange(web, bytes(range(256)) * 4)
    assert_healthy(web)


def test_truncated_requests_do_not_hurt_the_node(web):
    raw = raw_exchange(web, b'POST /agents HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"class_na')
    assert status_of(raw) == 400
    raw_exchange(web, b"GET /hea")
    raw_exchange(web, b"GET /health HTTP/1.1\r\nHost: local")
    assert_healthy(web)


def test_oversized_request_line_is_refused_and_the_node_stays_healthy(web):
    raw = raw_exchange(web, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert raw == b"" or status_of(raw) == 414  # it may reset before we read: our bytes were left unread
    assert_healthy(web)


def test_silent_client_ties_up_only_its_own_connection(web):
    url = urlsplit(web)
    with socket.create_connection((url.hostname, url.port), timeout=2.0) as silent:
        assert_healthy(web)
        call(web, "GET", "/agents", timeout=2.0)
        silent.sendall(b"GET /health HTTP/1.1\r\n")  # half a request, then silence
        assert_healthy(web)


def test_silent_or_stalled_client_is_dropped_after_the_connection_timeout(make_node, monkeypatch):
    monkeypatch.setattr(http_shim, "CONNECTION_TIMEOUT", 0.3)
    web = make_node("alpha", http_port=0).http_address
    url = urlsplit(web)
    with socket.create_connection((url.hostname, url.port), timeout=3.0) as silent:
        started = time.monotonic()
        assert silent.recv(1024) == b""  # the shim hung up on us
        assert time.monotonic() - started < 2.5
    stalled = raw_exchange(web, b'POST /agents HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"cla', close_write=False)
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

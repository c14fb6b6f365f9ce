"""Hostile HTTP: what a web page, a stranger on the network or a broken client can send the shim.

Every case ends with :func:`still_serves`: the node's running echo paglet
answers a normal message over HTTP, from the same worker process (its pid is
unchanged) and the node never reported a paglet crashed.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgpack
import pytest

from paglets.examples.echo import EchoPaglet
from paglets.node.http import bodies
from paglets.node.http import shim as http_shim
from paglets.node.http.routes import ROUTES
from tests.integration.test_http import ECHO, call, raw_exchange, status_of

AGENT = "echo-1"
MAX_BODY = 16 * 1024 * 1024  # the default http_max_body


@dataclass
class Site:
    """A node with HTTP and one running echo paglet, as it was before the attack."""

    node: Any
    web: str
    pid: int

    @property
    def port(self) -> int:
        return int(urlsplit(self.web).port)


def start_site(make_node, name: str = "alpha", **options: Any) -> Site:
    node = make_node(name, http_port=0, **options)
    node.create(EchoPaglet, agent_id=AGENT)
    return Site(node, node.http_address, node.agent_info(AGENT)["pid"])


@pytest.fixture
def site(make_node) -> Site:
    return start_site(make_node)


def still_serves(site: Site, **headers: str) -> None:
    """The paglet answers over HTTP, from the same process, and nothing was reported crashed."""
    reply = call(site.web, "POST", f"/agents/{AGENT}/messages", {"kind": "echo", "arg": "still here"}, headers=headers)
    assert reply.status == 200 and reply.body == {"result": "still here"}, reply
    assert site.node.agent_info(AGENT)["pid"] == site.pid
    assert [e for e in site.node.list_events(limit=10_000) if e.kind == "crash"] == []


def agent_ids(site: Site) -> list[str]:
    return [a["agent_id"] for a in site.node.list_agents(inactive=True)]


def request(site: Site, head: str, body: bytes = b"", *, timeout: float = 10.0) -> tuple[int, dict]:
    """Send ``head`` (request line and headers, no blank line) and ``body``; the status and JSON answer."""
    raw = raw_exchange(site.web, head.encode() + b"\r\n\r\n" + body, timeout=timeout)
    return status_of(raw), json.loads(raw.split(b"\r\n\r\n", 1)[1])


def here(site: Site) -> str:
    return f"127.0.0.1:{site.port}"


def raw_get(site: Site, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET ``path``: its status and body, whatever the Content-Type."""
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- a web page: Content-Type, Origin, Host ---------------------------------------------
def test_a_simple_cross_site_post_creates_nothing(site):
    body = json.dumps({"class_name": ECHO}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        head = f"POST /agents HTTP/1.1\r\nHost: {here(site)}\r\nContent-Type: {content_type}\r\n"
        status, answer = request(site, head + f"Content-Length: {len(body)}", body)
        assert status == 415, (content_type, answer)
        assert "application/json" in answer["error"]["message"]
        # The same from a page on another site (the browser adds Origin): refused before the type is looked at.
        status, answer = request(site, head + f"Origin: http://evil.example\r\nContent-Length: {len(body)}", body)
        assert status == 403 and answer["error"]["type"] == "ForbiddenError", content_type
    assert agent_ids(site) == [AGENT]
    still_serves(site)


def test_every_state_changing_route_needs_its_content_type_even_without_a_body(site):
    for method, path, wanted in [
        ("POST", "/agents", "application/json"),
        ("POST", f"/agents/{AGENT}/messages", "application/json"),
        ("POST", f"/agents/{AGENT}/deactivate", "application/json"),
        ("POST", f"/agents/{AGENT}/activate", "application/json"),
        ("POST", f"/agents/{AGENT}/dispatch", "application/json"),
        ("DELETE", f"/agents/{AGENT}", "application/json"),
        ("POST", "/envelopes", "application/msgpack"),
    ]:
        for content_type in ("", "\r\nContent-Type: text/plain", "\r\nContent-Type: application/jsonx"):
            status, answer = request(site, f"{method} {path} HTTP/1.1\r\nHost: {here(site)}{content_type}")
            assert status == 415, (method, path, content_type, answer)
            assert wanted in answer["error"]["message"]
    reply = call(site.web, "POST", "/envelopes", b"{}", headers={"Content-Type": "application/json"})
    assert reply.status == 415 and "application/msgpack" in reply.body["error"]["message"]
    assert agent_ids(site) == [AGENT] and site.node.agent_info(AGENT)["active"] is True
    still_serves(site)


def test_a_foreign_origin_is_refused_on_every_route_and_the_shims_own_is_not(site):
    create = {"class_name": ECHO}
    for origin in ("http://evil.example", "null", f"https://{here(site)}", f"http://127.0.0.1:{site.port + 1}",
                   f"http://{here(site)}/path", "http://localhost.evil.example"):  # fmt: skip
        for method, path, body in [("GET", "/health", None), ("GET", "/agents", None), ("POST", "/agents", create)]:
            reply = call(site.web, method, path, body, headers={"Origin": origin})
            assert reply.status == 403, (origin, method, path, reply)
            assert reply.body["error"]["type"] == "ForbiddenError"
    for origin in (f"http://{here(site)}", f"http://localhost:{site.port}", f"http://[::1]:{site.port}"):
        assert call(site.web, "GET", "/health", headers={"Origin": origin}).status == 200, origin
    assert agent_ids(site) == [AGENT]
    still_serves(site, Origin=f"http://{here(site)}")


def test_a_rebinding_host_header_is_refused(site):
    port = site.port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", "127.0.0.1", f"127.0.0.1.evil:{port}",
                 f"localhost:{port}@evil", f"[::1]:{port}x", f"::1:{port}", "", f"10.0.0.1:{port}"):  # fmt: skip
        status, answer = request(site, f"GET /health HTTP/1.1\r\nHost: {host}")
        assert status == 400, (host, answer)
        assert "not an address this node serves" in answer["error"]["message"]
        body = json.dumps({"class_name": ECHO}).encode()
        head = f"POST /agents HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        assert request(site, head, body)[0] == 400, host
    status, _ = request(site, f"GET /health HTTP/1.1\r\nHost: {here(site)}\r\nHost: evil.example:{port}")
    assert status == 400  # two Host headers: which one would a proxy have used?
    for host in (here(site), f"localhost:{port}", f"LOCALHOST.:{port}", f"[::1]:{port}"):
        assert request(site, f"GET /health HTTP/1.1\r\nHost: {host}")[0] == 200, host
    assert request(site, "GET /health HTTP/1.0")[0] == 200  # no Host at all: not a browser
    assert agent_ids(site) == [AGENT]
    still_serves(site)


# -- the API key ---------------------------------------------------------------------------
@pytest.fixture
def locked(make_node) -> Site:
    node = make_node("locked", http_port=0, api_key="s3cret")
    node.create(EchoPaglet, agent_id=AGENT)
    return Site(node, node.http_address, node.agent_info(AGENT)["pid"])


def route_paths() -> list[tuple[str, str, str]]:
    """(method, a concrete path, body type) of every route."""
    paths = []
    for route in ROUTES:
        path = route.pattern.pattern.replace("(?P<agent_id>[^/]+)", AGENT).replace("(?P<node>[^/]+)", "locked")
        path = path.replace("(?P<artifact_id>[^/]+)", "0" * 64)
        paths.append((route.method, path.replace("\\", ""), route.body_type))
    return paths


def test_every_route_but_health_and_the_dashboard_files_needs_the_key(locked):
    envelope = msgpack.packb({"kind": "dispatch", "agent_id": "x", "agent_class_name": ECHO, "state": b""})
    routes = route_paths()
    assert len(routes) == 26  # GET /services and the artifact routes too
    public = {"/", "/dashboard/app.js", "/dashboard/app.css"}
    for method, path, body_type in routes:
        body = envelope if body_type else b"{}"
        headers_for = {"Content-Type": body_type or "application/json"}
        for key in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Bearer s3cret2"},
            {"Authorization": "s3cret"},
        ):
            if path in public:  # the page and its files hold no data: they load without the key
                status, raw = raw_get(locked, path, key)
                assert status == 200 and b"paglets" in raw, path
                assert AGENT.encode() not in raw and b"locked" not in raw
                continue
            reply = call(locked.web, method, path, body if method == "POST" else None, headers={**headers_for, **key})
            if (method, path) == ("GET", "/health"):
                assert reply.status == 200 and reply.body["name"] == "locked"
            else:
                assert reply.status == 401, (method, path, key, reply)
                assert reply.body["error"]["type"] == "AuthenticationError"
    # Unknown routes too: without the key nothing tells what exists.
    assert call(locked.web, "GET", "/no/such/route").status == 401
    assert agent_ids(locked) == [AGENT] and locked.node.agent_info(AGENT)["active"] is True
    still_serves(locked, Authorization="Bearer s3cret")


# -- sizes --------------------------------------------------------------------------------
def test_an_oversized_declared_body_is_refused_unread(make_node):
    node = make_node("alpha", http_port=0, http_max_body=4096)
    node.create(EchoPaglet, agent_id=AGENT)
    site = Site(node, node.http_address, node.agent_info(AGENT)["pid"])
    for length in (4097, MAX_BODY, 10**18):
        head = f"POST /agents HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        # The body never comes: a shim that tried to read it would wait for it instead of answering.
        raw = raw_exchange(site.web, head.encode(), close_write=False)
        assert status_of(raw) == 413, length
        assert "4096" in json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]["message"]
    for length in ("10" * 10, "-1", "1e3", "0x10", "5, 6"):
        head = f"POST /agents HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {length}"
        assert request(site, head)[0] == 400, length
    head = "POST /agents HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
    assert request(site, head, b"4\r\n{}{}\r\n0\r\n\r\n")[0] == 411
    still_serves(site)


def test_a_body_longer_than_declared_is_cut_at_its_length(site):
    body = json.dumps({"kind": "echo", "arg": "short"}).encode()
    extra = b'{"class_name": "' + ECHO.encode() + b'"}' + b"x" * 1_000_000
    head = f"POST /agents/{AGENT}/messages HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    raw = raw_exchange(site.web, head.encode() + b"\r\n\r\n" + body + extra, timeout=10.0)
    if raw:  # the shim closes on our unread megabyte, which may reset the connection before we read
        assert status_of(raw) == 200 and json.loads(raw.split(b"\r\n\r\n", 1)[1]) == {"result": "short"}
    assert agent_ids(site) == [AGENT]  # the bytes after the body were never a request
    still_serves(site)


def test_a_body_of_too_many_json_values_is_413_and_one_long_text_is_not(site):
    path = f"/agents/{AGENT}/messages"
    many = {"kind": "echo", "arg": [0] * (bodies.MAX_JSON_VALUES + 1)}
    reply = call(site.web, "POST", path, many)
    assert reply.status == 413 and "JSON values" in reply.body["error"]["message"]
    keys = {"kind": "echo", "arg": {str(i): 0 for i in range(bodies.MAX_JSON_VALUES // 2 + 1)}}
    assert call(site.web, "POST", path, keys).status == 413
    text = "a, b: [c], {d}" * 100_000  # far more separators than the limit, all inside one string
    assert call(site.web, "POST", path, {"kind": "echo", "arg": text}).body == {"result": text}
    assert call(site.web, "POST", path, {"kind": "echo", "arg": [0] * 1000}).body == {"result": [0] * 1000}
    for bad in (b'{"kind": "echo", "arg": 1e999}', b'{"kind": "echo", "arg": NaN}', b"\xff\xfe{}"):
        assert call(site.web, "POST", path, bad).status == 400, bad
    still_serves(site)


# -- ten max-size bodies at once ----------------------------------------------------------
def padded_json(prefix: bytes, item: bytes, suffix: bytes, size: int) -> bytes:
    """``prefix item,item,... suffix`` padded with spaces to exactly ``size`` bytes (still valid JSON)."""
    count = (size - len(prefix) - len(suffix)) // (len(item) + 1)
    body = prefix + b",".join([item] * count) + suffix
    return body + b" " * (size - len(body))


def many_keys(size: int) -> bytes:
    body = bytearray(b'{"kind": "echo", "args": {')
    index = 0
    while len(body) < size - 32:
        body += b'"%d":0,' % index
        index += 1
    body[-1:] = b"}}"
    return bytes(body) + b" " * (size - len(body))


def hostile_envelope(size: int) -> bytes:
    """An envelope of exactly ``size`` bytes whose metadata is a list of lists of 255 zeros (and some padding)."""
    packer = msgpack.Packer()
    fields = {"kind": "dispatch", "agent_id": "big", "agent_class_name": ECHO, "state": b""}
    head = packer.pack_map_header(len(fields) + 1) + b"".join(
        packer.pack(k) + packer.pack(v) for k, v in fields.items()
    )
    head += packer.pack("metadata")
    inner = packer.pack([0] * 255)
    count = (size - len(head) - 5 - 2) // len(inner)  # room for the array header and the padding's header
    array = packer.pack_array_header(count + 1)
    padding = size - len(head) - len(array) - count * len(inner) - 2
    body = head + array + inner * count + packer.pack(b"p" * padding)
    assert len(body) == size and padding < 256
    return body


def send(site: Site, method: str, path: str, body: bytes, content_type: str, results: list, index: int) -> None:
    url = urlsplit(site.web)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        answer = response.read()
        results[index] = (response.status, json.loads(answer))
    except OSError as exc:
        results[index] = ("failed", repr(exc))
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ten_concurrent_max_size_bodies_cost_no_paglet_its_life(make_node, monkeypatch):
    # Bodies wait for their turn as long as it takes here, so each is answered for what it is.
    monkeypatch.setattr(http_shim, "BODY_WAIT", 120.0)
    site = start_site(make_node)
    messages = f"/agents/{AGENT}/messages"
    text = b'{"kind": "echo", "arg": "' + b"x" * (MAX_BODY - 27) + b'"}'
    assert len(text) == MAX_BODY
    cases = [
        ("POST", "/agents", many_keys(MAX_BODY), "application/json", 413),
        ("POST", messages, many_keys(MAX_BODY), "application/json", 413),
        ("POST", messages, padded_json(b'{"kind": "echo", "arg": [', b"0", b"]}", MAX_BODY), "application/json", 413),
        ("POST", messages, padded_json(b'{"kind": "echo", "arg": [', b"1.5", b"]}", MAX_BODY), "application/json", 413),
        ("POST", messages, padded_json(b'{"kind": "echo", "arg": [', b"{}", b"]}", MAX_BODY), "application/json", 413),
        ("POST", messages, padded_json(b"[", b'"a"', b"]", MAX_BODY), "application/json", 413),
        ("POST", messages, text, "application/json", 200),
        ("POST", messages, text, "application/json", 200),
        ("POST", "/envelopes", hostile_envelope(MAX_BODY), "application/msgpack", 400),
        ("POST", "/envelopes", hostile_envelope(MAX_BODY), "application/msgpack", 400),
    ]
    assert all(len(body) == MAX_BODY for _method, _path, body, _type, _status in cases)
    results: list[Any] = [None] * len(cases)
    threads = [
        threading.Thread(target=send, args=(site, method, path, body, content_type, results, index))
        for index, (method, path, body, content_type, _status) in enumerate(cases)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not any(thread.is_alive() for thread in threads)
    assert [result[0] for result in results] == [status for *_rest, status in cases], results
    assert results[6][1] == {"result": "x" * (MAX_BODY - 27)}
    assert agent_ids(site) == [AGENT]
    still_serves(site)


def test_large_bodies_beyond_the_budget_get_503_and_small_ones_go_on(make_node, monkeypatch):
    monkeypatch.setattr(http_shim, "BODY_WAIT", 0.3)
    site = start_site(make_node)
    path = f"/agents/{AGENT}/messages"
    large = {"kind": "echo", "arg": "x" * (bodies.SMALL_BODY + 1)}
    budget = site.node.http.budget
    with budget.reserve(budget.capacity):  # as if large bodies were arriving slowly
        refused = call(site.web, "POST", path, large)
        assert refused.status == 503 and refused.body["error"]["type"] == "OverloadedError"
        assert refused.headers["Retry-After"] == "1"
        assert call(site.web, "POST", path, {"kind": "echo", "arg": "small"}).body == {"result": "small"}
        assert call(site.web, "GET", f"/agents/{AGENT}").status == 200
    assert call(site.web, "POST", path, large).body == {"result": large["arg"]}
    still_serves(site)


def test_slow_large_bodies_hold_no_small_request_up(make_node):
    site = start_site(make_node, http_max_body=1_000_000)
    url = urlsplit(site.web)
    head = (
        f"POST /agents/{AGENT}/messages HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    slow = [socket.create_connection((url.hostname, url.port), timeout=10.0) for _ in range(4)]
    try:
        for sock in slow:  # each declares a large body and sends a little of it: the shim waits for the rest
            sock.sendall(head.encode() + b'{"kind": "echo", "arg": "')
        still_serves(site)
    finally:
        for sock in slow:
            sock.close()


# -- garbage -------------------------------------------------------------------------------
GARBAGE = [
    b"\x00\xff\x13garbage \x80\x81\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /health HTTP/1.1 extra\r\n\r\n",
    b"POST /agents HTTP/1.1\r\n" + b"X-Pad: y\r\n" * 200 + b"\r\n",
    b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    b"GET /agents/%00%ff HTTP/1.1\r\n\r\n",
    b"GET /agents/" + "é".encode() * 10 + b" HTTP/1.1\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n\r\n",
    b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n",
    b"\r\n\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
    b"GET /health HTTP/1.1\r\nOrigin: \x00\r\n\r\n",
    b"POST /agents HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n",
    bytes(range(256)) * 64,
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_requests_are_answered_with_an_error_or_dropped(site, data):
    raw = raw_exchange(site.web, data, timeout=10.0)
    if raw:  # a reply, when the shim sends one, is a JSON error
        assert 400 <= status_of(raw) < 600, raw[:200]
        assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]["type"]
    assert agent_ids(site) == [AGENT]
    still_serves(site)

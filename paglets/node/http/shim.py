"""HTTP shim: a thin stdlib HTTP server in front of a node's :class:`~paglets.node.host.Host`.

It owns no paglet state: every handler validates its request (the checks live
in :mod:`paglets.node.http.requests`) and calls the host facade. It owns
only its listening socket and serving thread; each connection gets its own
daemon thread and socket timeout, so a slow or silent client ties up nothing
but that thread.

=======  ==========================  ==============================================
method   path                        host call
=======  ==========================  ==============================================
GET      /health                     ``health()``
GET      /agents?state=&include_...  ``list_agents(...)`` (state: active|inactive|all)
POST     /agents                     ``create(class_name, state, init, agent_id)`` -> 201
GET      /agents/{id}                ``agent_info(id)``
DELETE   /agents/{id}                ``dispose(id)``
GET      /agents/{id}/state          ``get_state(id)`` (plain data)
POST     /agents/{id}/messages       ``deliver_message(id, Message(...))`` (202 if oneway)
POST     /agents/{id}/dispatch       ``dispatch(id, ticket)`` (ticket: destination, timeout, ...)
POST     /agents/{id}/clone          ``clone(id, ticket or None)`` -> 201 (no destination: here)
POST     /agents/{id}/retract        ``retract(from, id)``: pull it here from node ``from``
POST     /agents/{id}/deactivate     ``deactivate(id, request)`` (body optional: reason, policy, metadata)
POST     /agents/{id}/activate       ``activate(id)`` (no body)
POST     /envelopes                  ``arrivals.receive_envelope(body)`` -> 201 (msgpack body)
=======  ==========================  ==============================================

Bodies are JSON, except ``/envelopes``: a msgpack ``PagletEnvelope`` sent as
``Content-Type: application/msgpack`` (for networks where only HTTP passes).
The movement endpoints answer ``{"agent_id", "address"}`` with the paglet's
(or clone's) node address; a refused or failed move is 409 ``TransferError``
and the paglet stays where it was.

Parking: ``deactivate`` and ``activate`` answer ``{"agent_id", "address",
"active"}``; their body is optional (no Content-Length means none). A message
to a parked paglet whose policy queues mail answers ``{"result": {"queued":
true, "message_id": ...}}`` once it is on disk; one it refuses is 409
``PagletInactiveError``. ``GET /agents?state=inactive`` lists parked paglets
with ``queued_messages``, ``policy``, ``reason`` and ``deactivated_at``.

Every response is JSON; an error is ``{"error": {"type": name, "message": text}}``
where ``type`` is a :mod:`paglets.core.errors` class name (see ``ERROR_STATUS``).
When the host has an ``api_key``, every request needs ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from paglets.core import errors
from paglets.core.messages import NORMAL_PRIORITY, Message
from paglets.node.http.requests import HttpRefusal, Request, envelope_from_body, is_agent_id
from paglets.wire import codec
from paglets.wire.errors import error_to_wire

log = logging.getLogger("paglets.http")

CONNECTION_TIMEOUT = 30.0  # seconds a connection may sit idle mid-request
DRAIN_LIMIT = 64 * 1024  # an unread body up to this size is read and dropped, so the close is not a reset
MAX_CONNECTIONS = 128  # connections served at once; one more is told 503 and closed
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.05  # how soon the serving loop notices stop(); node teardown waits up to this long
MSGPACK = "application/msgpack"
_LENGTH = re.compile(r"^[0-9]{1,19}$")

ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (errors.InvalidAgentError, 404),
    (errors.NotHandledError, 422),
    (errors.AuthenticationError, 401),
    (errors.ForbiddenError, 403),
    (errors.PagletCrashedError, 409),
    (errors.PagletInactiveError, 409),
    (errors.TransferError, 409),  # the move did not happen; the paglet stayed where it was
    (errors.NodeUnreachableError, 504),  # RequestTimeoutError too
    (errors.OverloadedError, 503),
    (errors.SerializationError, 400),
    (errors.ProtocolError, 400),
    (TimeoutError, 504),  # a facade Future that did not complete
)

Reply = tuple[int, Any]


# -- handlers: each one validates, then calls the host facade --------------------------
def get_health(host: Any, req: Request) -> Reply:
    return 200, host.health()


def list_agents(host: Any, req: Request) -> Reply:
    state = req.query.get("state", ["active"])[-1]
    if state not in ("active", "inactive", "all"):
        raise HttpRefusal(400, f"state must be active, inactive or all, got {state!r:.40}")
    agents = host.list_agents(
        active=state != "inactive", inactive=state != "active", include_state=req.flag("include_state")
    )
    return 200, {"agents": agents}


def create_agent(host: Any, req: Request) -> Reply:
    body = req.fields("class_name", "state", "init", "agent_id")
    proxy = host.create(body["class_name"], state=body["state"], init=body["init"], agent_id=body["agent_id"])
    return 201, {"agent_id": proxy.agent_id, "address": host.address}


def get_agent(host: Any, req: Request) -> Reply:
    return 200, host.agent_info(req.params["agent_id"], include_state=req.flag("include_state"))


def get_agent_state(host: Any, req: Request) -> Reply:
    agent_id = req.params["agent_id"]
    info = host.agent_info(agent_id)
    return 200, {"agent_id": agent_id, "class_name": info["class_name"], "state": host.get_state(agent_id)}


def post_message(host: Any, req: Request) -> Reply:
    body = req.fields("kind", "args", "arg", "priority", "oneway", "timeout", priority=NORMAL_PRIORITY, oneway=False)
    try:
        message = Message(body["kind"], body["args"], body["arg"], priority=body["priority"])
    except (TypeError, ValueError) as exc:
        raise HttpRefusal(400, f"invalid message: {exc}") from None
    agent_id, oneway = req.params["agent_id"], body["oneway"]
    result = host.deliver_message(agent_id, message, oneway=oneway, timeout=body["timeout"])
    if oneway:
        return 202, {"accepted": True}
    return 200, {"result": codec.decode_plain(codec.encode(result, root="result"))}


def dispose_agent(host: Any, req: Request) -> Reply:
    host.dispose(req.params["agent_id"])
    return 200, {"disposed": req.params["agent_id"]}


def dispatch_agent(host: Any, req: Request) -> Reply:
    proxy = host.dispatch(req.params["agent_id"], req.ticket())
    return 200, {"agent_id": proxy.agent_id, "address": proxy.host_url}


def clone_agent(host: Any, req: Request) -> Reply:
    proxy = host.clone(req.params["agent_id"], req.ticket(destination_required=False))
    return 201, {"agent_id": proxy.agent_id, "address": proxy.host_url}


def retract_agent(host: Any, req: Request) -> Reply:
    proxy = host.retract(req.fields("from")["from"], req.params["agent_id"])
    return 200, {"agent_id": proxy.agent_id, "address": proxy.host_url}


def deactivate_agent(host: Any, req: Request) -> Reply:
    proxy = host.deactivate(req.params["agent_id"], req.deactivation())
    return 200, {"agent_id": proxy.agent_id, "address": proxy.host_url, "active": False}


def activate_agent(host: Any, req: Request) -> Reply:
    req.no_fields()
    proxy = host.activate(req.params["agent_id"])
    return 200, {"agent_id": proxy.agent_id, "address": proxy.host_url, "active": True}


def post_envelope(host: Any, req: Request) -> Reply:
    envelope_from_body(req.body)  # refuse a malformed one before the node prepares anything
    arrived = host.arrivals.receive_envelope(req.body)
    return 201, {"agent_id": arrived["agent"], "address": arrived["address"]}


class Route(NamedTuple):
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[Any, Request], Reply]
    body_type: str  # the Content-Type a POST body must have; "" for JSON, which is not checked
    body_optional: bool  # a POST without Content-Length has no body (else it is 411)


def _route(
    method: str,
    template: str,
    handler: Callable[[Any, Request], Reply],
    body_type: str = "",
    *,
    body_optional: bool = False,
) -> Route:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return Route(method, re.compile(pattern), handler, body_type, body_optional)


# One line per endpoint; every {param} in a path is an agent id, checked before the handler runs.
ROUTES = [
    _route("GET", "/health", get_health),
    _route("GET", "/agents", list_agents),
    _route("POST", "/agents", create_agent),
    _route("GET", "/agents/{agent_id}", get_agent),
    _route("DELETE", "/agents/{agent_id}", dispose_agent),
    _route("GET", "/agents/{agent_id}/state", get_agent_state),
    _route("POST", "/agents/{agent_id}/messages", post_message),
    _route("POST", "/agents/{agent_id}/dispatch", dispatch_agent),
    _route("POST", "/agents/{agent_id}/clone", clone_agent),
    _route("POST", "/agents/{agent_id}/retract", retract_agent),
    _route("POST", "/agents/{agent_id}/deactivate", deactivate_agent, body_optional=True),
    _route("POST", "/agents/{agent_id}/activate", activate_agent, body_optional=True),
    _route("POST", "/envelopes", post_envelope, MSGPACK),
]


def find_route(method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
    """The route for ``method raw_path`` and its (checked) path parameters, or a 404/405/400 refusal."""
    path = raw_path.rstrip("/") or "/"
    allowed = []
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match and route.method == method:
            params = {name: unquote(value) for name, value in match.groupdict().items()}
            for value in params.values():
                if not is_agent_id(value):
                    raise HttpRefusal(400, f"invalid agent id {value!r:.80} in path")
            return route, params
        if match:
            allowed.append(route.method)
    if allowed:
        raise HttpRefusal(405, f"{method} not allowed on {path:.200}", headers={"Allow": ", ".join(allowed)})
    raise HttpRefusal(404, f"no route {method} {path:.200}")


def error_reply(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The status and ``{"error": ...}`` body for an exception a handler raised."""
    if isinstance(exc, HttpRefusal):
        return exc.status, {"error": {"type": exc.error_type, "message": str(exc)}}
    status = next((code for cls, code in ERROR_STATUS if isinstance(exc, cls)), 500)
    if type(exc) is errors.HostError and "not running" in str(exc):
        status = 503
    if isinstance(exc, errors.PagletError):
        return status, {"error": error_to_wire(exc)}
    if isinstance(exc, TimeoutError):
        return status, {"error": {"type": "RequestTimeoutError", "message": f"no answer in time: {exc}"}}
    return 500, {"error": {"type": "HostError", "message": f"internal error: {type(exc).__name__}: {exc}"[:500]}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    default_request_version = "HTTP/1.0"  # so even a garbled request line gets a status line back
    server_version = "paglets-http"

    def setup(self) -> None:
        self.timeout = self.server.connection_timeout
        self._unread = 0
        super().setup()

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def _dispatch(self) -> None:
        self.close_connection = True
        declared = self.headers.get("Content-Length") or ""
        self._unread = int(declared) if _LENGTH.match(declared) else 0  # drained after the reply
        headers: dict[str, str] = {}
        try:
            status, body = self._answer()
        except HttpRefusal as exc:
            (status, body), headers = error_reply(exc), exc.headers
        except Exception as exc:
            status, body = error_reply(exc)
            if status == 500 and not isinstance(exc, errors.PagletError):
                log.error("http %s %s failed", self.command, self.path[:200], exc_info=True)
        self._send_json(status, body, headers)
        self._drain()

    def _answer(self) -> Reply:
        host = self.server.host
        self._check_auth(host.api_key)
        url = urlsplit(self.path)
        route, params = find_route(self.command, url.path)
        request = Request(params, parse_qs(url.query, keep_blank_values=True))
        if self.command == "POST" and not (route.body_optional and self._no_body_sent()):
            request.body = self._read_body(route.body_type, host.max_message_size)
        return route.handler(host, request)

    def _check_auth(self, api_key: str | None) -> None:
        if not api_key:
            return
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        offered = token.strip().encode("latin-1", "replace") if scheme.lower() == "bearer" else b""
        if not hmac.compare_digest(offered, api_key.encode("utf-8")):
            raise HttpRefusal(
                401, "missing or wrong API key", "AuthenticationError", headers={"WWW-Authenticate": "Bearer"}
            )

    def _no_body_sent(self) -> bool:
        """True for a request with neither Content-Length nor Transfer-Encoding (which has no body)."""
        return "Content-Length" not in self.headers and "Transfer-Encoding" not in self.headers

    def _read_body(self, body_type: str, limit: int) -> Any:
        """The request body: raw bytes for a route that names its Content-Type, else decoded JSON."""
        if body_type and self.headers.get_content_type() != body_type:
            declared = self.headers.get("Content-Type") or "none"
            raise HttpRefusal(415, f"this endpoint takes Content-Type {body_type}, got {declared:.80}")
        data = self._read_raw(limit)
        if body_type:
            return data
        if not data:
            return None
        try:
            return json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise HttpRefusal(400, f"body is not valid JSON: {exc}"[:300]) from None

    def _read_raw(self, limit: int) -> bytes:
        lengths = set(self.headers.get_all("Content-Length") or ())
        if "Transfer-Encoding" in self.headers or not lengths:
            raise HttpRefusal(411, "a request body needs a Content-Length header (chunked is not supported)")
        raw = lengths.pop()
        if lengths or not _LENGTH.match(raw):
            raise HttpRefusal(400, f"bad Content-Length {raw!r:.40}")
        length = int(raw)
        if length > limit:
            self._unread = 0  # and it never will be: the point is not to take it in
            raise HttpRefusal(413, f"body of {length} bytes exceeds the limit of {limit} bytes")
        self._unread = 0  # read now, or never
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            raise HttpRefusal(408, "timed out reading the request body") from None
        except OSError as exc:
            raise HttpRefusal(400, f"could not read the request body: {exc}") from None
        if len(data) < length:
            raise HttpRefusal(400, f"body truncated: got {len(data)} of {length} bytes")
        return data

    def _send_json(self, status: int, body: Any, headers: dict[str, str]) -> None:
        try:
            data = json.dumps(body, allow_nan=False, default=str, separators=(",", ":")).encode()
        except (ValueError, RecursionError) as exc:
            log.error("http %s: reply is not JSON-encodable: %s", getattr(self, "path", "?")[:200], exc)
            status, data = 500, b'{"error":{"type":"SerializationError","message":"reply is not JSON-encodable"}}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _drain(self) -> None:
        """Read a small unread body so closing the socket does not reset the client's read."""
        if 0 < self._unread <= DRAIN_LIMIT:
            with contextlib.suppress(OSError, ValueError):
                self.wfile.flush()
                self.connection.settimeout(1.0)
                self.rfile.read(self._unread)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (bad request line, oversized headers...): answer in JSON too."""
        self.close_connection = True
        self.log_error("code %d, message %s", code, message)
        text = message or self.responses.get(code, ("error",))[0]
        self._send_json(code, {"error": {"type": "ProtocolError", "message": text}}, {})

    def version_string(self) -> str:
        return self.server_version  # not the Python version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_BUSY_BODY = b'{"error":{"type":"OverloadedError","message":"too many open HTTP connections; retry later"}}'
_BUSY_REPLY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
_BUSY_REPLY += b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], host: Any, connection_timeout: float):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.host = host
        self.connection_timeout = connection_timeout
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):  # a fresh socket's send buffer is empty: this cannot block
                request.sendall(_BUSY_REPLY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the fqdn, which can stall on a host without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("http connection from %s ended badly", client_address, exc_info=True)


class HttpShim:
    """The node's HTTP endpoint. Owns its listening socket and serving thread, nothing else."""

    def __init__(self, host: Any, bind_host: str, port: int):
        self.host = host
        bind = "" if bind_host == "*" else bind_host
        self._server = _Server((bind, int(port)), host, CONNECTION_TIMEOUT)
        self._thread: threading.Thread | None = None
        public = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(bind_host, bind_host)
        self.port = int(self._server.server_address[1])
        self._public_host = f"[{public}]" if ":" in public else public

    @property
    def address(self) -> str:
        return f"http://{self._public_host}:{self.port}"

    def start(self) -> None:
        if self._thread is not None:
            return
        name = f"paglets-http-{self.host.name}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL,), name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._server.shutdown()  # returns once serve_forever notices, within a poll interval
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                log.warning("http shim thread %s did not stop within %g s", thread.name, STOP_TIMEOUT)
        self._server.server_close()


__all__ = ["CONNECTION_TIMEOUT", "ROUTES", "HttpShim", "Request", "Route", "error_reply"]

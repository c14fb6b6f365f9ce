"""HTTP connections of the shim: one request per connection, read, routed and answered in JSON.

:class:`ShimServer` is the listening socket: each connection gets its own
daemon thread and socket timeout, so a slow or silent client ties up nothing
but that thread, and at most ``max_connections`` are served at once (one more
is told 503 and closed). :class:`_Handler` checks Host, Origin, the API key
and Content-Type (:mod:`paglets.node.http.guard`), finds the route
(:mod:`paglets.node.http.routes`), reads a body of at most ``max_body`` bytes
within the body budget (:mod:`paglets.node.http.bodies`) and writes the JSON
reply.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import socketserver
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from paglets.core import errors
from paglets.node.http import guard
from paglets.node.http.artifact_routes import OCTET_STREAM, STREAM_CHUNK, FileBody, StreamedBody
from paglets.node.http.bodies import BodyBudget, check_envelope_shape, decode_json
from paglets.node.http.guard import ServedNames
from paglets.node.http.observe_routes import MAX_STREAMS, RawReply, StreamReply
from paglets.node.http.requests import HttpRefusal, Request
from paglets.node.http.routes import MSGPACK, Reply, error_reply, find_route, route_path

log = logging.getLogger("paglets.http")

NO_CONTENT_POLICY = "default-src 'none'; frame-ancestors 'none'"
DRAIN_LIMIT = 64 * 1024  # an unread body up to this size is read and dropped, so the close is not a reset
_LENGTH = re.compile(r"^[0-9]{1,19}$")


@dataclass(frozen=True)
class ShimLimits:
    """How much the shim takes on at once (see :mod:`paglets.node.http.bodies` for the body budget)."""

    connection_timeout: float  # seconds a connection may sit idle mid-request
    max_connections: int  # served at once; one more is told 503 and closed
    max_body: int  # bytes of one request body (http_max_body); more is 413, unread
    body_budget: int  # bytes of bodies read and decoded at once
    body_wait: float  # seconds a body waits for its share of the budget before 503
    max_streams: int = MAX_STREAMS  # event streams served at once; one more is 503


class _Handler(BaseHTTPRequestHandler):
    """One connection: one request, checked, routed and answered in JSON, then closed."""

    server: ShimServer
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
            reply = self._answer()
        except HttpRefusal as exc:
            reply, headers = error_reply(exc), exc.headers
        except Exception as exc:
            reply = error_reply(exc)
            if reply[0] == 500 and not isinstance(exc, errors.PagletError):
                log.error("http %s %s failed", self.command, self.path[:200], exc_info=True)
        if isinstance(reply, RawReply):
            self._send(reply.status, reply.content_type, reply.body, reply.headers)
        elif isinstance(reply, StreamReply):
            self._stream(reply)
        elif isinstance(reply[1], FileBody):
            self._send_file(reply[0], reply[1])
            return
        else:
            self._send_json(reply[0], reply[1], headers)
        self._drain()

    def _answer(self) -> Reply:
        server, host = self.server, self.server.host
        url = urlsplit(self.path)
        guard.check_request(server.names, host.api_key, self.command, url.path, self.headers)
        route, params = find_route(self.command, url.path)
        guard.check_content_type(self.command, route.body_type, self.headers)
        request = Request(params, parse_qs(url.query, keep_blank_values=True), path=route_path(url.path))
        request.headers = self.headers
        if route.stream:
            return self._answer_streamed(route, host, request)
        if self.command == "POST" and not (route.body_optional and self._no_body_sent()):
            request.body = self._read_body(route.body_type)
        return route.handler(host, request)

    def _answer_streamed(self, route: Any, host: Any, request: Request) -> Reply:
        """A body the handler reads in chunks: Content-Length required, capped by the handler (not max_body)."""
        body = request.body = StreamedBody(self.rfile, self._declared_length(limit=None), self._continue)
        try:
            return route.handler(host, request)
        finally:
            self._unread = body.remaining  # drained after the reply if small, as any unread body

    def _continue(self) -> None:
        """Tell a client that sent ``Expect: 100-continue`` to send its body now (curl waits a second otherwise)."""
        if self.headers.get("Expect", "").lower() == "100-continue" and self.request_version != "HTTP/1.0":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()

    def _no_body_sent(self) -> bool:
        """True for a request with neither Content-Length nor Transfer-Encoding (which has no body)."""
        return "Content-Length" not in self.headers and "Transfer-Encoding" not in self.headers

    def _read_body(self, body_type: str) -> Any:
        """The request body: raw msgpack bytes, else decoded JSON; a large one within the budget."""
        length = self._declared_length()
        budget = self.server.budget
        with budget.reserve(length):
            data = self._read_raw(length)
            with budget.decoding(length):
                if body_type == MSGPACK:
                    check_envelope_shape(data)
                    return data
                return decode_json(data)

    def _declared_length(self, limit: int | None = -1) -> int:
        """The Content-Length, refused (411/400/413) before a byte of the body is read.

        ``limit``: the most it may be (default: ``http_max_body``; None: no cap here).
        """
        lengths = set(self.headers.get_all("Content-Length") or ())
        if "Transfer-Encoding" in self.headers or not lengths:
            raise HttpRefusal(411, "a request body needs a Content-Length header (chunked is not supported)")
        raw = lengths.pop()
        if lengths or not _LENGTH.match(raw):
            raise HttpRefusal(400, f"bad Content-Length {raw!r:.40}")
        length = int(raw)
        limit = self.server.max_body if limit == -1 else limit
        if limit is not None and length > limit:
            self._unread = 0  # and it never will be: the point is not to take it in
            raise HttpRefusal(413, f"body of {length} bytes exceeds the limit of {limit} bytes (http_max_body)")
        return length

    def _read_raw(self, length: int) -> bytes:
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
        self._send(status, "application/json", data, headers)

    def _send(self, status: int, content_type: str, data: bytes, headers: dict[str, str]) -> None:
        self._head(status, content_type, headers, len(data))
        if self.command != "HEAD":
            self.wfile.write(data)

    def _head(self, status: int, content_type: str, headers: dict[str, str], length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.send_header("X-Content-Type-Options", "nosniff")  # a browser must never run a reply as a page
        self.send_header("Cache-Control", "no-store")
        if "Content-Security-Policy" not in headers:  # data, never a page: it may load and run nothing
            self.send_header("Content-Security-Policy", NO_CONTENT_POLICY)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _stream(self, reply: StreamReply) -> None:
        """Write a streaming reply (server-sent events) until it ends, the client goes or the shim stops."""
        server = self.server
        if not server.streams.take():
            body = {"error": {"type": "OverloadedError", "message": f"too many open event streams (at most "
                              f"{server.streams.limit}); retry later"}}  # fmt: skip
            self._send_json(503, body, {"Retry-After": "5"})
            return
        try:
            self._head(200, reply.content_type, {"X-Accel-Buffering": "no"}, None)
            self.wfile.flush()

            def write(data: bytes) -> None:
                self.wfile.write(data)
                self.wfile.flush()

            reply.run(write, server.stopping.is_set)
        except (OSError, ValueError) as exc:  # the reader went away or stopped reading (a write timed out)
            log.debug("http event stream to %s ended: %s", self.address_string(), exc)
        finally:
            server.streams.give_back()

    def _send_file(self, status: int, body: FileBody) -> None:
        """Stream an open file out as the reply body, in chunks; the file is closed whatever happens."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", OCTET_STREAM)
            self.send_header("Content-Length", str(body.size))
            self.send_header("Connection", "close")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            for name, value in body.headers.items():
                self.send_header(name, value)
            self.end_headers()
            left = body.size
            while left > 0 and self.command != "HEAD":
                chunk = body.file.read(min(STREAM_CHUNK, left))
                if not chunk:
                    break  # the connection closes short of Content-Length: the client sees a truncated body
                self.wfile.write(chunk)
                left -= len(chunk)
        finally:
            body.file.close()

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


class StreamSlots:
    """How many event streams are open, at most ``limit``; anyone may wait for that number to fall."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0
        self._cond = threading.Condition()

    def take(self) -> bool:
        with self._cond:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._cond:
            self.open -= 1
            self._cond.notify_all()

    def wait_open(self, at_most: int, timeout: float) -> bool:
        """Wait until at most ``at_most`` streams are open; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.open <= at_most, timeout)


_BUSY_BODY = b'{"error":{"type":"OverloadedError","message":"too many open HTTP connections; retry later"}}'
_BUSY_REPLY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
_BUSY_REPLY += b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)


class ShimServer(ThreadingHTTPServer):
    """The shim's listening socket: a daemon thread per connection, at most ``max_connections`` at once."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], host: Any, limits: ShimLimits):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.host = host
        self.connection_timeout = limits.connection_timeout
        self.max_body = limits.max_body
        self.budget = BodyBudget(limits.body_budget, limits.body_wait)
        self.names = ServedNames(frozenset(), 0)  # set by the shim once the port is known
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self.streams = StreamSlots(limits.max_streams)
        self.stopping = threading.Event()  # set when the shim stops: streams end
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


__all__ = ["DRAIN_LIMIT", "ShimLimits", "ShimServer", "StreamSlots"]

"""HTTP shim: a thin stdlib HTTP server in front of a node's :class:`~paglets.node.host.Host`.

It owns no paglet state, only its listening socket and serving thread
(:class:`HttpShim`, here). The work is split this way:

* :mod:`paglets.node.http.server` — connections: threads, timeouts, the
  connection limit, reading bodies, writing JSON replies;
* :mod:`paglets.node.http.guard` — what every request must show first:
  Host, Origin, the API key, Content-Type;
* :mod:`paglets.node.http.bodies` — the body budget and bounded decoding;
* :mod:`paglets.node.http.routes` — the endpoint table (in its docstring),
  one handler per endpoint, and which error becomes which status;
* :mod:`paglets.node.http.requests` — what a well-formed request body is.

A web page is a client too. Browsers reach loopback, and a page on another
site can make a browser send requests to the shim, so:

* **Content-Type**: POST, PUT, PATCH and DELETE must declare
  ``application/json`` (``application/msgpack`` for ``/envelopes``), else
  415. A form or a ``fetch`` without a CORS preflight cannot send those
  types, and the shim answers no preflight.
* **Origin**: a request with an ``Origin`` header must come from the shim's
  own origin, ``http://`` plus one of its served ``host:port`` (below), else
  403. The only page that origin holds is the shim's own read-only dashboard
  (``GET /``), served with a Content-Security-Policy that lets it run its own
  script only and talk to this node only.
* **Host** (DNS rebinding: a page whose name is made to resolve to
  127.0.0.1 is same-origin with itself, yet its ``Host`` is its own name):
  ``Host`` must be a served ``host:port``, else 400. The served hosts are
  the bind host; the node's advertised host (its LAN address for ``auto``,
  ``0.0.0.0`` and ``bind_public``); the host of ``public_url``; when the shim
  listens on loopback, ``localhost``, ``127.0.0.1`` and ``[::1]``; when it
  listens on every interface, those plus this machine's LAN addresses and
  its host name. The port must be the shim's own port (80 when ``Host``
  names none). A request with no ``Host`` at all (HTTP/1.0 tools) passes; a
  browser always sends one. A port forward that changes the port, or a
  proxy that rewrites the name, must pass the original ``Host`` on.
* **API key**: a node with one requires ``Authorization: Bearer KEY`` on
  every route but ``GET /health`` and the dashboard's page and files (which
  hold no data: the page asks for the key and sends it with every request).
* **Event streams** (``GET /events/stream``): at most
  :data:`~paglets.node.http.observe_routes.MAX_STREAMS` at once, each
  holding one connection thread; a reader that stops reading is dropped
  once a write has waited ``CONNECTION_TIMEOUT``.
* **CurveZMQ without an API key**: the shim listens on loopback only (the
  bind host's loopback), whatever the node's bind host: encryption on
  ZeroMQ must not be bypassed over plain HTTP (set an API key to serve HTTP
  on the node's address).
* **Bodies**: at most ``http_max_body`` bytes (413 before reading more);
  large bodies share a budget of bytes read and decoded at once and decode
  one at a time, and a JSON body holds at most
  :data:`~paglets.node.http.bodies.MAX_JSON_VALUES` values, so no request
  can starve the broker loop of the GIL and stop the heartbeats that keep
  workers alive (see :mod:`paglets.node.http.bodies`).

The limits are read from this module when a shim is built
(``CONNECTION_TIMEOUT``, ``MAX_CONNECTIONS``, ``BODY_BUDGET_FACTOR``,
``BODY_WAIT``, ``MAX_STREAMS``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from paglets.node.http.bodies import BodyBudget
from paglets.node.http.guard import ServedNames
from paglets.node.http.observe_routes import MAX_STREAMS
from paglets.node.http.requests import Request
from paglets.node.http.routes import ERROR_STATUS, ROUTES, Route, error_reply, find_route
from paglets.node.http.server import ShimLimits, ShimServer, StreamSlots

log = logging.getLogger("paglets.http")

CONNECTION_TIMEOUT = 30.0  # seconds a connection may sit idle mid-request
MAX_CONNECTIONS = 128  # connections served at once; one more is told 503 and closed
DEFAULT_MAX_BODY = 16 * 1024 * 1024  # bytes of one request body (the node's http_max_body)
BODY_BUDGET_FACTOR = 2  # bodies read and decoded at once: this many max-size ones...
BODY_BUDGET_FLOOR = 1024 * 1024  # ...but never less than this many bytes in all
BODY_WAIT = 5.0  # seconds a body waits for its share of the budget (or its turn to decode) before 503
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.05  # how soon the serving loop notices stop(); node teardown waits up to this long
_LOOPBACK_OF = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


class HttpShim:
    """The node's HTTP endpoint. Owns its listening socket and serving thread, nothing else."""

    def __init__(
        self,
        host: Any,
        bind_host: str,
        port: int,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        advertised_host: str | None = None,
        public_host: str | None = None,
    ):
        """Listen on ``bind_host:port``; ``advertised_host`` goes into :attr:`address` (the
        node's own advertised host; a wildcard bind shows its loopback otherwise) and, with
        ``public_host`` (a public URL's host), into the served names checked against Host and Origin."""
        self.host = host
        bind = "" if bind_host == "*" else bind_host
        limits = ShimLimits(
            connection_timeout=CONNECTION_TIMEOUT,
            max_connections=MAX_CONNECTIONS,
            max_body=max_body,
            body_budget=max(BODY_BUDGET_FACTOR * max_body, BODY_BUDGET_FLOOR),
            body_wait=BODY_WAIT,
            max_streams=MAX_STREAMS,
        )
        self._server = ShimServer((bind, int(port)), host, limits)
        self._thread: threading.Thread | None = None
        self.port = int(self._server.server_address[1])
        shown = advertised_host or _LOOPBACK_OF.get(bind_host, bind_host)
        self._public_host = f"[{shown}]" if ":" in shown else shown
        extra = [name for name in (advertised_host, public_host) if name]
        self._server.names = ServedNames.for_shim(bind_host, self.port, extra)

    @property
    def budget(self) -> BodyBudget:
        """The bytes of large bodies being read and decoded at once (see :mod:`paglets.node.http.bodies`)."""
        return self._server.budget

    @property
    def streams(self) -> StreamSlots:
        """The event streams open now (``GET /events/stream``), at most ``MAX_STREAMS``."""
        return self._server.streams

    @property
    def names(self) -> ServedNames:
        """The ``host:port`` names a request's Host and Origin may carry."""
        return self._server.names

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
        self._server.stopping.set()  # event streams end...
        self.host.events.wake()  # ...now, not at their next keep-alive
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._server.shutdown()  # returns once serve_forever notices, within a poll interval
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                log.warning("http shim thread %s did not stop within %g s", thread.name, STOP_TIMEOUT)
        self._server.server_close()


__all__ = [
    "BODY_BUDGET_FACTOR",
    "BODY_WAIT",
    "CONNECTION_TIMEOUT",
    "DEFAULT_MAX_BODY",
    "ERROR_STATUS",
    "MAX_CONNECTIONS",
    "ROUTES",
    "HttpShim",
    "Request",
    "Route",
    "error_reply",
    "find_route",
]

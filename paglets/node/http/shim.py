"""HTTP shim: a thin stdlib HTTP server in front of a node's :class:`~paglets.node.host.Host`.

It owns no paglet state, only its listening socket and serving thread
(:class:`HttpShim`, here). The work is split three ways:

* :mod:`paglets.node.http.server` — connections: threads, timeouts, the
  connection limit, reading bodies, writing JSON replies, the API key;
* :mod:`paglets.node.http.routes` — the endpoint table (in its docstring),
  one handler per endpoint, and which error becomes which status;
* :mod:`paglets.node.http.requests` — what a well-formed request body is.

The limits are read from this module when a shim is built
(``CONNECTION_TIMEOUT``, ``MAX_CONNECTIONS``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from paglets.node.http.requests import Request
from paglets.node.http.routes import ERROR_STATUS, ROUTES, Route, error_reply, find_route
from paglets.node.http.server import ShimServer

log = logging.getLogger("paglets.http")

CONNECTION_TIMEOUT = 30.0  # seconds a connection may sit idle mid-request
MAX_CONNECTIONS = 128  # connections served at once; one more is told 503 and closed
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.05  # how soon the serving loop notices stop(); node teardown waits up to this long


class HttpShim:
    """The node's HTTP endpoint. Owns its listening socket and serving thread, nothing else."""

    def __init__(self, host: Any, bind_host: str, port: int):
        self.host = host
        bind = "" if bind_host == "*" else bind_host
        self._server = ShimServer((bind, int(port)), host, CONNECTION_TIMEOUT, MAX_CONNECTIONS)
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


__all__ = [
    "CONNECTION_TIMEOUT",
    "ERROR_STATUS",
    "MAX_CONNECTIONS",
    "ROUTES",
    "HttpShim",
    "Request",
    "Route",
    "error_reply",
    "find_route",
]

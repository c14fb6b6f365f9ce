"""The shim's read-only views for operators: events, the event stream, metrics, the mesh, the dashboard.

=======  ==========================  ==============================================
method   path                        what
=======  ==========================  ==============================================
GET      /events?since=&limit=&...   a page of the event log (also ``agent``, ``kind``, ``wait``)
GET      /events/stream?agent=&kind=  server-sent events: one per event, ``id:`` = event id
GET      /metrics                    Prometheus text format (``prometheus-client``)
GET      /hosts                      the nodes of the mesh this node knows, itself included
GET      /nodes/{name}/agents        the paglets of node ``name`` (this one, or one the mesh knows)
GET      /                           the dashboard page (no API key needed: it holds no data)
GET      /dashboard/app.js, .css     its script and style
=======  ==========================  ==============================================

``GET /events`` answers ``{"events": [...], "next", "last", "first",
"busy"}`` (see :mod:`paglets.node.observe.feed`; a bad parameter is 400).
The stream starts after ``Last-Event-ID`` (what a reconnecting reader sends)
or ``?since=``, else with the newest event; it sends a comment line every
:data:`KEEPALIVE` seconds while nothing happens and ends when the node stops.
At most :data:`MAX_STREAMS` streams run at once (one more is 503); a reader
that stops reading is dropped once a write has waited the shim's connection
timeout. The dashboard's files ship in ``paglets/node/http/static/`` and are
served with a Content-Security-Policy that lets them load nothing but
themselves and talk to nothing but this node.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any, NamedTuple

from paglets.core.errors import ProtocolError
from paglets.node.http.requests import HttpRefusal, Request
from paglets.node.observe.feed import DEFAULT_LIMIT, check_query

KEEPALIVE = 15.0  # seconds between comment lines on an idle event stream
MAX_STREAMS = 8  # event streams served at once
STREAM_BATCH = 100  # events one wake of a stream writes at most
REMOTE_LIST_TIMEOUT = 5.0  # seconds /nodes/{name}/agents waits for that node
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC_FILES = {  # path -> (file in static/, Content-Type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/dashboard/app.css": ("app.css", "text/css; charset=utf-8"),
}
_NUMBER = re.compile(r"^[0-9]{1,19}(\.[0-9]{1,9})?\Z")
_EVENT_ID = re.compile(r"^[0-9]{1,18}\Z")


class RawReply(NamedTuple):
    """A reply that is not JSON: its status, Content-Type, bytes and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


class StreamReply(NamedTuple):
    """A reply written as it goes: ``run(write, stopping)`` writes until it ends or ``stopping()``."""

    content_type: str
    run: Callable[[Callable[[bytes], None], Callable[[], bool]], None]


# -- events ---------------------------------------------------------------------------
def _number(req: Request, name: str, default: Any, *, integer: bool = True) -> Any:
    raw = req.query.get(name)
    if raw is None:
        return default
    text = raw[-1]
    if not _NUMBER.match(text) or (integer and "." in text):
        kind = "a whole number" if integer else "a number"
        raise HttpRefusal(400, f"query parameter {name!r} must be {kind}, got {text!r:.40}")
    return int(text) if integer else float(text)


def _text(req: Request, name: str) -> str | None:
    raw = req.query.get(name)
    return None if raw is None else raw[-1]


def get_events(host: Any, req: Request) -> tuple[int, Any]:
    try:
        query = check_query(
            _number(req, "since", 0), _number(req, "limit", DEFAULT_LIMIT), _text(req, "agent"), _text(req, "kind"),
            _number(req, "wait", 0.0, integer=False),
        )  # fmt: skip
    except ProtocolError as exc:
        raise HttpRefusal(400, str(exc)) from None
    return 200, host.feed.read(query, stop=lambda: not host.running)


def stream_events(host: Any, req: Request) -> StreamReply:
    """Server-sent events from the node's log (see the module docstring)."""
    last_id = (req.header("Last-Event-ID") or "").strip()
    try:
        start = int(last_id) if _EVENT_ID.match(last_id) else None  # anything else: as if none was sent
        if start is None:
            start = _number(req, "since", None)
        query = check_query(start or 0, STREAM_BATCH, _text(req, "agent"), _text(req, "kind"))
    except ProtocolError as exc:
        raise HttpRefusal(400, str(exc)) from None
    events = host.events
    cursor = events.last_seq if start is None else events.resume_point(start)

    def run(write: Callable[[bytes], None], stopping: Callable[[], bool]) -> None:
        nonlocal cursor
        write(b"retry: 2000\n: paglets events of node " + host.name.encode() + b"\n\n")
        while not stopping():
            found, cursor = events.read(
                cursor, STREAM_BATCH, timeout=KEEPALIVE, kind=query.kind, agent_id=query.agent_id, stop=stopping
            )
            if found:
                write(b"".join(_sse(event.event_id, event.to_wire()) for event in found))
            elif not stopping():
                write(b": keep-alive\n\n")

    return StreamReply("text/event-stream; charset=utf-8", run)


def _sse(event_id: int, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, allow_nan=False, default=str, separators=(",", ":"))
    return f"id: {event_id}\ndata: {data}\n\n".encode()


# -- metrics and the mesh --------------------------------------------------------------
def get_metrics(host: Any, req: Request) -> RawReply:
    return RawReply(200, "text/plain; version=0.0.4; charset=utf-8", host.metrics.render(), {})


def get_hosts(host: Any, req: Request) -> tuple[int, Any]:
    hosts = [{**ref.to_wire(), "self": ref.name == host.name} for ref in host.list_hosts()]
    return 200, {"self": host.name, "hosts": hosts}


def get_node_agents(host: Any, req: Request) -> tuple[int, Any]:
    name = req.params["node"]  # a node name: checked like an agent id by the router
    agents = host.node_agents(name, timeout=REMOTE_LIST_TIMEOUT)
    if agents is None:
        raise HttpRefusal(404, f"no node named {name!r} in the mesh of node {host.name}")
    return 200, {"node": name, "agents": agents}


# -- the dashboard -------------------------------------------------------------------------
def get_static(host: Any, req: Request) -> RawReply:
    name, content_type = STATIC_FILES[req.path]
    body = resources.files("paglets.node.http").joinpath("static", name).read_bytes()
    headers = {"Content-Security-Policy": PAGE_POLICY, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
    return RawReply(200, content_type, body, headers)


# (method, template, handler); a {param} is checked like an agent id (node names are alike).
OBSERVE_ROUTES: list[tuple[str, str, Callable[[Any, Request], Any]]] = [
    ("GET", "/events", get_events),
    ("GET", "/events/stream", stream_events),
    ("GET", "/metrics", get_metrics),
    ("GET", "/hosts", get_hosts),
    ("GET", "/nodes/{node}/agents", get_node_agents),
    *(("GET", path, get_static) for path in STATIC_FILES),
]
__all__ = [
    "KEEPALIVE",
    "MAX_STREAMS",
    "OBSERVE_ROUTES",
    "PAGE_POLICY",
    "STATIC_FILES",
    "RawReply",
    "StreamReply",
]

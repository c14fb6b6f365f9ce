"""What each HTTP endpoint does: the route table, its handlers and the error-to-status mapping.

Each handler validates its request (the checks live in
:mod:`paglets.node.http.requests`) and calls the host facade; it owns no
paglet state. :mod:`paglets.node.http.server` reads requests off connections
and answers what these return.

=======  ==========================  ==============================================
method   path                        host call
=======  ==========================  ==============================================
GET      /health                     ``health()``
GET      /agents?state=&include_...  ``list_agents(...)`` (state: active|inactive|all)
POST     /agents                     ``create(class_name, state, init, agent_id)`` -> 201
GET      /agents/{id}                ``agent_info(id)``
DELETE   /agents/{id}                ``dispose(id)``
GET      /agents/{id}/state          ``get_state(id)`` (plain data)
POST     /agents/{id}/messages       ``deliver_message(id, Message(...))`` (202 if oneway or queued)
POST     /agents/{id}/dispatch       ``dispatch(id, ticket)`` (ticket: destination, timeout, ...)
POST     /agents/{id}/clone          ``clone(id, ticket or None)`` -> 201 (no destination: here)
POST     /agents/{id}/retract        ``retract(from, id)``: pull it here from node ``from``
POST     /agents/{id}/deactivate     ``deactivate(id, request)`` (body optional: reason, policy, metadata)
POST     /agents/{id}/activate       ``activate(id)`` (no body)
POST     /envelopes                  ``arrivals.receive_envelope(body)`` -> 201 (msgpack body)
GET      /services?name=&capabil...  ``lookup_services(name, capability, scope)`` (scope: local|mesh)
GET      /artifacts                  the artifact store (:mod:`paglets.node.http.artifact_routes`):
GET      /artifacts/{id}             list, stream out, stream in (``application/octet-stream``),
PUT      /artifacts/{id}             delete
DELETE   /artifacts/{id}
=======  ==========================  ==============================================

The read-only views for operators (``/events``, ``/events/stream``,
``/metrics``, ``/hosts``, ``/nodes/{name}/agents`` and the dashboard at
``/``) are listed in :mod:`paglets.node.http.observe_routes`.

Bodies are JSON sent as ``Content-Type: application/json``, except
``/envelopes``: a msgpack ``PagletEnvelope`` sent as ``Content-Type:
application/msgpack`` (for networks where only HTTP passes). A POST or
DELETE says its type even without a body (:mod:`paglets.node.http.guard`).
The movement endpoints answer ``{"agent_id", "address"}`` with the paglet's
(or clone's) node address; a refused or failed move is 409 ``TransferError``
and the paglet stays where it was.

Parking: ``deactivate`` and ``activate`` answer ``{"agent_id", "address",
"active"}``; their body is optional (no Content-Length means none). A message
to a parked paglet whose policy queues mail (and does not wake it) is
accepted but not handled: once it is on disk the answer is 202 with
``{"error": {"type": "MessageQueuedError", "message": ..., "message_id":
...}}`` - there is no ``result``, as no handler ran (a oneway message is 202
``{"accepted": true}`` as ever). One it refuses is 409
``PagletInactiveError``. ``GET /agents?state=inactive`` lists parked paglets
with ``queued_messages``, ``policy``, ``reason`` and ``deactivated_at``.

Every response is JSON; an error is ``{"error": {"type": name, "message": text}}``
where ``type`` is a :mod:`paglets.core.errors` class name (see ``ERROR_STATUS``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote

from paglets.core import errors
from paglets.core.artifacts import check_artifact_id
from paglets.core.messages import NORMAL_PRIORITY, Message
from paglets.node.http import artifact_routes
from paglets.node.http.artifact_routes import OCTET_STREAM
from paglets.node.http.observe_routes import OBSERVE_ROUTES, RawReply, StreamReply
from paglets.node.http.requests import HttpRefusal, Request, envelope_from_body, is_agent_id
from paglets.wire import codec
from paglets.wire.errors import error_to_wire

MSGPACK = "application/msgpack"

ERROR_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (errors.ArtifactNotFoundError, 404),
    (errors.ArtifactQuotaError, 413),  # over artifact_max_bytes or the quota: nothing stored
    (errors.ArtifactError, 400),  # a bad id or name, or bytes whose size or sha256 do not match
    (errors.MessageQueuedError, 202),  # accepted for later, not handled: no result to give
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

Reply = tuple[int, Any] | RawReply | StreamReply


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
    info = host.agent_info(agent_id, resources=False)
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
    was_active = req.params["agent_id"] not in host.parked  # "already parked" when False (as the ZeroMQ op)
    proxy = host.deactivate(req.params["agent_id"], req.deactivation())
    return 200, {"agent_id": proxy.agent_id, "address": proxy.host_url, "active": False, "was_active": was_active}


def activate_agent(host: Any, req: Request) -> Reply:
    req.no_fields()
    was_active = req.params["agent_id"] not in host.parked
    proxy = host.activate(req.params["agent_id"])
    return 200, {"agent_id": proxy.agent_id, "address": proxy.host_url, "active": True, "was_active": was_active}


def list_services(host: Any, req: Request) -> Reply:
    """``{"services": [record, ...]}``: this node's records, or (``scope=mesh``) the mesh's MESH records too."""
    scope = req.query.get("scope", ["local"])[-1]
    if scope not in ("local", "mesh"):
        raise HttpRefusal(400, f"scope must be local or mesh, got {scope!r:.40}")
    name = req.query.get("name", [None])[-1]
    capability = req.query.get("capability", [None])[-1]
    try:
        records = host.lookup_services(name, capability=capability, scope=scope)
    except ValueError as exc:
        raise HttpRefusal(400, str(exc)) from None
    return 200, {"services": [record.to_wire() for record in records]}


def post_envelope(host: Any, req: Request) -> Reply:
    envelope_from_body(req.body)  # refuse a malformed one before the node prepares anything
    arrived = host.arrivals.receive_envelope(req.body)
    return 201, {"agent_id": arrived["agent"], "address": arrived["address"]}


class Route(NamedTuple):
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[Any, Request], Reply]
    body_type: str  # the Content-Type a state-changing request must declare; "" for application/json
    body_optional: bool  # a POST without Content-Length has no body (else it is 411)
    stream: bool = False  # a PUT body the handler reads in chunks (artifact_routes.StreamedBody), not capped here


def _route(
    method: str,
    template: str,
    handler: Callable[[Any, Request], Reply],
    body_type: str = "",
    *,
    body_optional: bool = False,
    stream: bool = False,
) -> Route:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return Route(method, re.compile(pattern), handler, body_type, body_optional, stream)


# One line per endpoint; every {param} in a path is an agent id (an artifact id for
# {artifact_id}), checked before the handler runs.
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
    _route("GET", "/services", list_services),
    *(_route(method, template, handler) for method, template, handler in OBSERVE_ROUTES),
    _route("GET", "/artifacts", artifact_routes.list_artifacts),
    _route("PUT", "/artifacts/{artifact_id}", artifact_routes.put_artifact, OCTET_STREAM, stream=True),
    _route("GET", "/artifacts/{artifact_id}", artifact_routes.get_artifact),
    _route("DELETE", "/artifacts/{artifact_id}", artifact_routes.delete_artifact),
]


def route_path(raw_path: str) -> str:
    """The path routes are matched against: without a trailing slash (``/`` stays)."""
    return raw_path.rstrip("/") or "/"


def find_route(method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
    """The route for ``method raw_path`` and its (checked) path parameters, or a 404/405/400 refusal."""
    path = route_path(raw_path)
    allowed = []
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match and route.method == method:
            params = {name: unquote(value) for name, value in match.groupdict().items()}
            for name, value in params.items():
                if name == "artifact_id":
                    check_artifact_id(value)  # ArtifactError: 400, saying what an id is
                elif not is_agent_id(value):
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


__all__ = ["ERROR_STATUS", "MSGPACK", "ROUTES", "Reply", "Route", "error_reply", "find_route", "route_path"]

"""What the HTTP shim accepts: request bodies checked field by field before the host sees them.

The shim (:mod:`paglets.node.http.shim`) routes; this module says what a
well-formed body is and refuses anything else with an :class:`HttpRefusal`
(400 unless said otherwise) whose message names the field and what it must be.

JSON fields, wherever they appear (a field not listed may hold anything):

=====================  ============================================================
field                  must be
=====================  ============================================================
kind                   a non-empty string (a message kind)
args, state            a JSON object or null
priority               an integer 0..10
oneway                 true or false
timeout                a number of seconds, 0 < t <= 3600 (null: the default)
class_name             ``package.module:ClassName``
agent_id               an agent id (1-128 of ``A-Z a-z 0-9 . _ -``) or null
destination, from      a node address ``tcp://HOST:PORT`` or a node name
retries                an integer 0..100
retry_interval         a number of seconds, 0 <= t <= 60
required_capabilities  a list of capability names (non-empty strings)
expected_code_version  a non-empty string or null
arrival_mode           ``activate`` or ``inactive``
reason                 a string (why a paglet is parked)
policy                 a JSON object of DeactivationPolicy fields (below) or null
metadata               a JSON object or null
=====================  ============================================================

A ``policy`` object may hold only these keys; a key left out takes the
:class:`~paglets.persistence.persistency.DeactivationPolicy` default:

============================  ================================================
key                           must be
============================  ================================================
activate_on_message           true or false (default true)
queue_messages_when_inactive  true or false (default true)
activate_on_startup           true or false (default false)
activate_at                   a UNIX time in seconds (0 to the end of year 9999) or null
============================  ================================================

An envelope (``POST /envelopes``) is a msgpack :class:`~paglets.wire.envelope.PagletEnvelope`
map; its kind, agent id, class name, state and source address are checked here too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from paglets.client.transfer import TransferTicket
from paglets.client.transport import check_address
from paglets.core.messages import MAX_PRIORITY, UNQUEUED_PRIORITY
from paglets.core.runtime_values import ArrivalMode, EnvelopeKind
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.wire import protocol
from paglets.wire.envelope import PagletEnvelope

MAX_TIMEOUT = 3600.0  # the longest a request may ask the shim (or a move) to wait
MAX_RETRIES = 100
MAX_RETRY_INTERVAL = 60.0
MAX_CAPABILITIES = 64
MAX_UNIX_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can name
_CLASS_NAME = re.compile(r"^[A-Za-z_][\w.]{0,255}:[A-Za-z_][\w.]{0,255}$")
_CAPABILITY = re.compile(r"^[\w.:-]{1,64}$")
TICKET_FIELDS = (
    "destination",
    "timeout",
    "retries",
    "retry_interval",
    "required_capabilities",
    "expected_code_version",
    "arrival_mode",
)
DEACTIVATION_FIELDS = ("reason", "policy", "metadata")
# Kinds that carry a paglet from one node to another (activation belongs to persistence).
ARRIVING_KINDS = (EnvelopeKind.DISPATCH, EnvelopeKind.CLONE, EnvelopeKind.RETRACT)


class HttpRefusal(Exception):
    """A request the shim answers with ``status`` before (or instead of) calling the host."""

    def __init__(self, status: int, message: str, error_type: str = "ProtocolError", headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.headers = headers or {}


def is_agent_id(v: Any) -> bool:
    return isinstance(v, str) and protocol.AGENT_ID_PATTERN.match(v) is not None


def _is_seconds(v: Any) -> bool:
    return type(v) in (int, float) and 0 < v <= MAX_TIMEOUT


def _is_destination(v: Any) -> bool:
    """A node address that parses, or something that may be a node's name."""
    if not isinstance(v, str):
        return False
    if not v.startswith("tcp://"):
        return is_agent_id(v)
    try:
        check_address(v)
    except ValueError:
        return False
    return True


def _is_capabilities(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) <= MAX_CAPABILITIES
        and all(isinstance(c, str) and _CAPABILITY.match(c) for c in v)
    )


def _is_unix_time(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and 0 <= v <= MAX_UNIX_TIME


_DESTINATION = "a node address tcp://HOST:PORT or a node name"
_BOOL = (lambda v: isinstance(v, bool), "true or false")

# How each key of a ``policy`` object is checked: name -> (valid, what it must be).
POLICY_CHECKS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "activate_on_message": _BOOL,
    "queue_messages_when_inactive": _BOOL,
    "activate_on_startup": _BOOL,
    "activate_at": (
        lambda v: v is None or _is_unix_time(v),
        "a UNIX time in seconds (0 up to the end of year 9999) or null",
    ),
}

# How each JSON body field is checked: name -> (valid, what it must be).
FIELD_CHECKS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "kind": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "args": (lambda v: v is None or isinstance(v, dict), "a JSON object"),
    "state": (lambda v: v is None or isinstance(v, dict), "a JSON object"),
    "priority": (lambda v: type(v) is int and UNQUEUED_PRIORITY <= v <= MAX_PRIORITY, "an integer 0..10"),
    "oneway": _BOOL,
    "timeout": (lambda v: v is None or _is_seconds(v), f"a number of seconds, 0 < t <= {MAX_TIMEOUT:g}"),
    "class_name": (lambda v: isinstance(v, str) and _CLASS_NAME.match(v), "like 'package.module:ClassName'"),
    "agent_id": (lambda v: v is None or is_agent_id(v), "1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)"),
    "destination": (lambda v: v is None or _is_destination(v), _DESTINATION),
    "from": (_is_destination, _DESTINATION),
    "retries": (lambda v: v is None or (type(v) is int and 0 <= v <= MAX_RETRIES), f"an integer 0..{MAX_RETRIES}"),
    "retry_interval": (
        lambda v: v is None or (type(v) in (int, float) and 0 <= v <= MAX_RETRY_INTERVAL),
        f"a number of seconds, 0 <= t <= {MAX_RETRY_INTERVAL:g}",
    ),
    "required_capabilities": (
        lambda v: v is None or _is_capabilities(v),
        f"a list of at most {MAX_CAPABILITIES} capability names (1-64 of A-Z a-z 0-9 _ . : -)",
    ),
    "expected_code_version": (lambda v: v is None or (isinstance(v, str) and v != ""), "a non-empty string"),
    "arrival_mode": (lambda v: v is None or v in {m.value for m in ArrivalMode}, "'activate' or 'inactive'"),
    "reason": (lambda v: v is None or isinstance(v, str), "a string"),
    "policy": (lambda v: v is None or isinstance(v, dict), "a JSON object of DeactivationPolicy fields"),
    "metadata": (lambda v: v is None or isinstance(v, dict), "a JSON object"),
}


@dataclass
class Request:
    """What a route handler sees: path parameters, query and the decoded body (JSON, or raw bytes)."""

    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any = None
    path: str = ""
    headers: Any = None  # the request's headers (an email.message.Message), when the handler needs one

    def header(self, name: str) -> str | None:
        """One request header's value, or None."""
        return None if self.headers is None else self.headers.get(name)

    def flag(self, name: str) -> bool:
        value = self.query.get(name, ["0"])[-1].lower()
        if value not in ("1", "true", "yes", "0", "false", "no", ""):
            raise HttpRefusal(400, f"query parameter {name!r} must be 1/0 or true/false, got {value!r:.40}")
        return value in ("1", "true", "yes")

    def fields(self, *names: str, **defaults: Any) -> dict[str, Any]:
        """The body's fields ``names`` (absent ones from ``defaults`` or None), each checked by FIELD_CHECKS."""
        if not isinstance(self.body, dict):
            raise HttpRefusal(400, f"request body must be a JSON object, got {type(self.body).__name__}")
        unknown = sorted(set(self.body) - set(names))
        if unknown:
            raise HttpRefusal(400, f"unknown field(s) {unknown} (allowed: {sorted(names)})")
        values = {name: self.body.get(name, defaults.get(name)) for name in names}
        for name, value in values.items():
            valid, what = FIELD_CHECKS.get(name, (None, ""))
            if valid is not None and not valid(value):
                raise HttpRefusal(400, f"{name} must be {what}, got {value!r:.80}")
        return values

    def ticket(self, *, destination_required: bool = True) -> TransferTicket | None:
        """The body as a :class:`TransferTicket`; None when a destination is optional and absent."""
        body = self.fields(*TICKET_FIELDS)
        if body["destination"] is None:
            if destination_required:
                raise HttpRefusal(400, f"destination is required: {_DESTINATION}")
            extra = sorted(name for name, value in body.items() if value is not None)
            if extra:
                raise HttpRefusal(400, f"{', '.join(extra)} only apply to a move: give a destination too")
            return None
        # A null field means "the default", as if it were absent.
        return TransferTicket.from_wire({name: value for name, value in body.items() if value is not None})

    def deactivation(self) -> DeactivationRequest:
        """The (optional) body as a :class:`DeactivationRequest` from ``source="http"``."""
        body = self.fields(*DEACTIVATION_FIELDS) if self.body is not None else dict.fromkeys(DEACTIVATION_FIELDS)
        policy = None if body["policy"] is None else policy_from_body(body["policy"])
        return DeactivationRequest(
            reason=body["reason"] or "", source="http", policy=policy, metadata=body["metadata"] or {}
        )

    def no_fields(self) -> None:
        """Refuse any body but none, ``{}`` or ``null``."""
        if self.body is not None:
            self.fields()


def policy_from_body(policy: dict[str, Any]) -> DeactivationPolicy:
    """A ``policy`` object as a :class:`DeactivationPolicy`, each key checked by POLICY_CHECKS."""
    unknown = sorted(set(policy) - set(POLICY_CHECKS))
    if unknown:
        raise HttpRefusal(400, f"unknown policy field(s) {unknown} (allowed: {sorted(POLICY_CHECKS)})")
    for name, value in policy.items():
        valid, what = POLICY_CHECKS[name]
        if not valid(value):
            raise HttpRefusal(400, f"policy.{name} must be {what}, got {value!r:.80}")
    return DeactivationPolicy(**policy)


def envelope_from_body(data: bytes) -> PagletEnvelope:
    """Decode and check an envelope pushed over HTTP; refuse (400) one the node must not act on."""
    try:
        wire = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # any decoding failure is the sender's fault
        raise HttpRefusal(400, f"envelope is not valid msgpack: {exc}"[:300], "SerializationError") from None
    if not isinstance(wire, dict):
        raise HttpRefusal(400, f"envelope must be a msgpack map, got {type(wire).__name__}", "SerializationError")
    if not isinstance(wire.get("state"), bytes | None):
        # Checked before PagletEnvelope sees it: bytes(<int>) would allocate that many bytes.
        raise HttpRefusal(400, "envelope field 'state' must be binary (codec-encoded state)", "SerializationError")
    envelope = PagletEnvelope.from_wire(wire)  # SerializationError (400) when malformed
    if envelope.kind not in ARRIVING_KINDS:
        kinds = ", ".join(k.value for k in ARRIVING_KINDS)
        raise HttpRefusal(400, f"envelope kind must be one of {kinds}, got {envelope.kind.value!r}")
    if not is_agent_id(envelope.agent_id):
        raise HttpRefusal(400, f"envelope agent_id {envelope.agent_id!r:.80} is not a valid agent id")
    if not _CLASS_NAME.match(envelope.agent_class_name):
        raise HttpRefusal(400, f"envelope agent_class_name {envelope.agent_class_name!r:.80} is not 'module:Class'")
    if envelope.source_host_address and not _is_destination(envelope.source_host_address):
        raise HttpRefusal(
            400, f"envelope source_host_address {envelope.source_host_address!r:.80} is not {_DESTINATION}"
        )
    if envelope.clone_of is not None and not is_agent_id(envelope.clone_of):
        raise HttpRefusal(400, f"envelope clone_of {envelope.clone_of!r:.80} is not a valid agent id")
    return envelope


__all__ = [
    "DEACTIVATION_FIELDS",
    "FIELD_CHECKS",
    "MAX_TIMEOUT",
    "POLICY_CHECKS",
    "TICKET_FIELDS",
    "HttpRefusal",
    "Request",
    "envelope_from_body",
    "policy_from_body",
]

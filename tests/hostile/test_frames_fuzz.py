"""Property-based fuzzing of the frame parsers and of the edges that read remote maps.

Each parser either returns a value that passed its checks or raises the paglets error
type it documents, never a raw TypeError/KeyError/ValueError/OverflowError:

=======================================================  ===========================
parser                                                   refusal
=======================================================  ===========================
``protocol.parse_request``                               ``protocol.BadRequest``
``protocol.parse_reply`` / ``parse_replies``             ``ProtocolError``
``protocol.unpack_map``                                  ``ProtocolError``
``message_codec.decode_message``                         ``SerializationError``
``PagletEnvelope.from_bytes`` / ``from_wire``            ``SerializationError``
``DeactivationRequest`` / ``DeactivationPolicy``         ``SerializationError``
``.from_wire`` (a ``deactivate`` header's ``request``)
``wire.errors.error_from_wire``                          never raises
=======================================================  ===========================
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from msgpack import ExtType, packb

from paglets.core.errors import PagletError, ProtocolError, SerializationError
from paglets.core.messages import MAX_MESSAGE_ID, Message
from paglets.core.runtime_values import EnvelopeKind
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.runtime.envelope import PagletEnvelope
from paglets.wire import codec, limits, protocol
from paglets.wire.errors import error_from_wire
from paglets.wire.message_codec import decode_message, encode_message

FUZZ = settings(max_examples=200, deadline=None, database=None)  # no .hypothesis/ in the repo
PEER = b"\x00peer"

# ------------------------------------------------------------------ msgpack values as a peer may send them

WIRE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, -1, 2**63 - 1, 2**64 - 1, -(2**63)]),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["", "a1", "a1\n", "../etc", "x" * 200, "dispatch", "clone", "retract", "activation"]),
    st.binary(max_size=20),
    st.builds(ExtType, st.integers(0, 127), st.binary(max_size=8)),
)
WIRE_KEYS = st.text(max_size=12) | st.binary(max_size=4)  # what strict_map_key lets through
WIRE_VALUES = st.recursive(
    WIRE_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(WIRE_KEYS | WIRE_SCALARS, inner, max_size=4),
    max_leaves=12,
)
WIRE_MAPS = st.dictionaries(WIRE_KEYS, WIRE_VALUES, max_size=6)

# ------------------------------------------------------------------ front requests

OPS = sorted(protocol.FRONT_OPS)
AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # the documented rule, as a full match
AGENT_IDS = st.from_regex(AGENT_ID, fullmatch=True).filter(lambda s: len(s) <= 40)
PLAIN_TEXT = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=16)
# A modest valid value for each accepted type (a future size limit should not refuse these).
VALID_BY_TYPES = {
    (str,): PLAIN_TEXT,
    (bool,): st.booleans(),
    (int,): st.integers(0, 1000),
    (int, float): st.integers(1, 1000) | st.floats(0.5, 1000),
    (list,): st.lists(PLAIN_TEXT, max_size=3),
    (dict,): st.dictionaries(PLAIN_TEXT, PLAIN_TEXT, max_size=3),
}


@st.composite
def valid_requests(draw, op=None):
    """The frames of a request that must be accepted, with the op's fields drawn from its schema."""
    op = op or draw(st.sampled_from(OPS))
    header = {}
    for name, (types, required) in protocol.FRONT_OPS[op].items():
        if required or draw(st.booleans()):
            header[name] = draw(AGENT_IDS if name == "agent" else VALID_BY_TYPES[types])
    low, high = protocol.PAYLOAD_FRAMES.get(op, (0, 0))
    payload = draw(st.lists(st.binary(max_size=16), min_size=low, max_size=high))
    cid = draw(st.binary(min_size=1, max_size=protocol.MAX_CORRELATION_ID))
    return [PEER, protocol.MAGIC, op.encode(), cid, packb(header), *payload]


def check_request(frames: list[bytes]) -> protocol.Request | None:
    """Parse; an accepted request must satisfy its op's schema, a refused one be a BadRequest."""
    try:
        request = protocol.parse_request(frames)
    except protocol.BadRequest as refused:
        assert str(refused)
        assert refused.cid is None or 1 <= len(refused.cid) <= protocol.MAX_CORRELATION_ID
        return None
    schema = protocol.FRONT_OPS[request.op]
    assert 1 <= len(request.cid) <= protocol.MAX_CORRELATION_ID
    assert frames[1] == protocol.MAGIC and isinstance(request.header, dict)
    for name, (types, required) in schema.items():
        value = request.header.get(name)
        if value is None:
            assert not required, f"{request.op}: required {name!r} missing"
        else:
            assert isinstance(value, types) and not (isinstance(value, bool) and bool not in types), (name, value)
            if isinstance(value, str):
                assert len(value) <= limits.TEXT_LIMITS.get(name, limits.MAX_TEXT), (name, len(value))
    if request.header.get("agent") is not None:
        assert AGENT_ID.fullmatch(request.header["agent"]), request.header["agent"]
    low, high = protocol.PAYLOAD_FRAMES.get(request.op, (0, 0))
    assert low <= len(request.payload) <= high
    return request


@FUZZ
@given(st.lists(st.binary(max_size=48), max_size=8))
@example([])
@example([PEER, protocol.MAGIC, b"ping", b"c", b""])
@example([PEER, protocol.MAGIC, b"\xff\xfe", b"c", packb({})])
@example([PEER, b"PG", b"ping", b"c", packb({})])
def test_arbitrary_frames_are_a_valid_request_or_a_bad_request(frames):
    check_request(frames)


@FUZZ
@given(valid_requests())
def test_valid_requests_of_every_op_are_accepted(frames):
    assert check_request(frames) is not None


@st.composite
def mutated_requests(draw):
    frames = draw(valid_requests())
    header = protocol.unpack_map(frames[4], "header")
    schema = protocol.FRONT_OPS[frames[2].decode()]
    raw_header = None
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["field", "drop", "extra", "payload", "cid", "magic", "op", "header"]))
        if what == "field" and schema:
            header[draw(st.sampled_from(sorted(schema)))] = draw(WIRE_VALUES)
        elif what == "drop" and header:
            del header[draw(st.sampled_from(sorted(header)))]
        elif what == "extra":
            header[draw(st.text(max_size=8))] = draw(WIRE_VALUES)
        elif what == "payload":
            frames[5:] = draw(st.lists(st.binary(max_size=8), max_size=4))
        elif what == "cid":
            frames[3] = draw(
                st.binary(max_size=2 * protocol.MAX_CORRELATION_ID) | st.binary(min_size=4096, max_size=5000)
            )
        elif what == "magic":
            frames[1] = draw(st.binary(max_size=4))
        elif what == "op":
            frames[2] = draw(st.sampled_from(OPS).map(str.encode) | st.binary(max_size=12))
        elif what == "header":
            raw_header = draw(st.binary(max_size=24))
    frames[4] = packb(header) if raw_header is None else raw_header
    return frames


@FUZZ
@given(mutated_requests())
@example([PEER, protocol.MAGIC, b"send", b"c", packb({"agent": "a1", "prio": 2**64 - 1}), b"m"])
@example([PEER, protocol.MAGIC, b"send", b"c", packb({"agent": "a1", "oneway": 1}), b"m"])
@example([PEER, protocol.MAGIC, b"prepare", b"c", packb({"agent": "a", "ttl": True}), b"m"])
@example([PEER, protocol.MAGIC, b"list", b"c", packb({"agent": ["a"]})])
@example([PEER, protocol.MAGIC, b"info", b"c", packb({"agent": "a1\n"})])  # once accepted: "$" matched before "\n"
@example([PEER, protocol.MAGIC, b"ping", b"c", packb({1: 2})])
@example([PEER, protocol.MAGIC, b"ping", b"c", packb({"k": {1: 2}})])
@example([PEER, protocol.MAGIC, b"ping", b"c", packb({}) + b"\x00"])
def test_mutated_requests_are_a_valid_request_or_a_bad_request(frames):
    check_request(frames)


# ------------------------------------------------------------------ replies


def check_replies(frames: list[bytes]) -> None:
    try:
        replies = protocol.parse_replies(frames)
    except ProtocolError as refused:
        assert str(refused)
    else:
        for reply in replies:  # an acks frame set may list no cid: it answers nothing
            assert isinstance(reply.ok, bool) and isinstance(reply.cid, bytes) and isinstance(reply.header, dict)
            assert all(isinstance(frame, bytes) for frame in reply.payload)
    try:
        reply = protocol.parse_reply(frames)
    except ProtocolError as refused:
        assert str(refused)
    else:
        assert frames[1] in (protocol.OK, protocol.ERR) and isinstance(reply.header, dict)


REPLIES = st.one_of(
    st.builds(protocol.ok_frames, st.binary(max_size=40), WIRE_MAPS, st.lists(st.binary(max_size=8)).map(tuple)),
    st.builds(protocol.err_frames, st.binary(max_size=40), WIRE_MAPS),
    st.builds(protocol.acks_frames, st.lists(st.binary(max_size=40), max_size=5)),
)


@st.composite
def mutated_replies(draw):
    frames = draw(REPLIES)
    where = draw(st.integers(0, len(frames)))
    choice = draw(st.sampled_from(["replace", "truncate", "append"]))
    if choice == "replace" and where < len(frames):
        frames[where] = draw(st.binary(max_size=24) | WIRE_VALUES.map(packb))
    elif choice == "truncate":
        del frames[where:]
    else:
        frames.append(draw(st.binary(max_size=8)))
    return frames


@FUZZ
@given(st.lists(st.binary(max_size=32), max_size=6) | REPLIES | mutated_replies())
@example([protocol.MAGIC, protocol.ACKS, b"", packb([b"c", "c"])])
@example([protocol.MAGIC, protocol.ACKS, b"", packb({"c": 1})])
@example([protocol.MAGIC, protocol.ACKS, b"", b"\xc1"])
@example([protocol.MAGIC, protocol.OK, b"c", packb([1])])
def test_reply_frames_are_replies_or_a_protocol_error(frames):
    check_replies(frames)


@FUZZ
@given(st.binary(max_size=64) | WIRE_VALUES.map(packb), st.sampled_from(["ready header", "error body"]))
@example(b"\xdf\xff\xff\xff\xff", "huge map")
@example(packb({1: 2}), "int key")
@example(packb({(1,): 2}), "array key")
def test_unpack_map_returns_a_map_or_a_protocol_error_naming_what(data, what):
    try:
        value = protocol.unpack_map(data, what)
    except ProtocolError as refused:
        assert what in str(refused)
    else:
        assert isinstance(value, dict)


# ------------------------------------------------------------------ messages

# Values as the state codec carries them; big ints travel as codec ext 1, beyond any float.
CODEC_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**64, max_value=10**400),
        st.floats(allow_nan=False),  # NaN != NaN: a round-tripped message would not compare equal
        st.text(max_size=12),
        st.binary(max_size=8),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=3),
    max_leaves=8,
)
MESSAGES = st.builds(
    Message,
    kind=st.text(min_size=1, max_size=12),
    args=st.dictionaries(st.text(max_size=6), CODEC_VALUES, max_size=3),
    arg=CODEC_VALUES,
    sender=st.none() | st.text(max_size=8),
    reply_to=st.none() | st.text(max_size=8),
    priority=st.integers(0, 13),
    message_type=st.integers(0, 2),
    timestamp=st.floats(0, 2e9),
    message_id=st.text(min_size=1, max_size=12),
)


def check_message(data: bytes) -> None:
    try:
        message = decode_message(data)
    except SerializationError as refused:
        assert str(refused)
    else:
        assert isinstance(message, Message) and isinstance(message.kind, str) and message.kind
        assert isinstance(message.timestamp, float) and isinstance(message.priority, int)


@FUZZ
@given(MESSAGES)
def test_encoded_messages_decode_equal(message):
    assert decode_message(encode_message(message)) == message


@st.composite
def message_field_lists(draw):
    """Nine-field arrays (the message layout) with any field replaced by a hostile value."""
    fields = list(encode_message_fields(draw(MESSAGES)))
    for index in draw(st.lists(st.integers(0, 8), min_size=1, max_size=4)):
        fields[index] = draw(CODEC_VALUES)
    return codec.encode(fields)


MESSAGE_LAYOUT = ("kind", "args", "arg", "sender", "reply_to", "priority", "message_type", "timestamp", "message_id")


def encode_message_fields(message: Message) -> list:
    wire = message.to_wire()
    return [wire[name] for name in MESSAGE_LAYOUT]


@FUZZ
@given(message_field_lists() | st.binary(max_size=64) | st.lists(CODEC_VALUES, max_size=10).map(codec.encode))
@example(codec.encode(["k", {}, None, None, None, 5, 0, 10**400, "m"]))  # once: OverflowError from float()
@example(codec.encode(["k", {}, None, None, None, 5, 0, -(10**400), "m"]))
@example(codec.encode(["k", {1: 2}, None, None, None, 5, 0, 1.0, "m"]))
@example(codec.encode(["k", {}, None, None, None, 2**70, 0, 1.0, "m"]))
@example(codec.encode(["k", {}, None, None, None, 5, True, 1.0, "m"]))
@example(codec.encode(["", {}, None, None, None, 5, 0, 1.0, "m"]))
def test_message_bytes_decode_to_a_message_or_a_serialization_error(data):
    check_message(data)


def test_a_timestamp_beyond_any_float_is_refused_as_malformed():
    with pytest.raises(SerializationError, match="out of range"):
        decode_message(codec.encode(["k", {}, None, None, None, 5, 0, 10**400, "m"]))


# ------------------------------------------------------------------ envelopes

METADATA = st.dictionaries(  # "seen" must be a list of message ids: it has a case of its own below
    st.text(max_size=6).filter(lambda key: key != "seen"),
    st.text(max_size=6) | st.integers(-5, 5) | st.binary(max_size=4),
    max_size=3,
)
ENVELOPES = st.builds(
    PagletEnvelope,
    kind=st.sampled_from(list(EnvelopeKind)),
    agent_id=AGENT_IDS,
    agent_class_name=st.text(max_size=20),
    state_class_name=st.text(max_size=20),
    state=st.binary(max_size=32),
    source_host_name=st.text(max_size=8),
    source_host_address=st.text(max_size=8),
    target_host_name=st.text(max_size=8),
    target_host_address=st.text(max_size=8),
    clone_of=st.none() | st.text(max_size=8),
    metadata=METADATA,
)
ENVELOPE_FIELDS = sorted(PagletEnvelope.__dataclass_fields__)
TEXT_FIELDS = [name for name in ENVELOPE_FIELDS if name not in ("kind", "state", "clone_of", "metadata")]


def check_envelope(parse, data) -> None:
    try:
        envelope = parse(data)
    except SerializationError as refused:
        assert str(refused)
        return
    assert isinstance(envelope.kind, EnvelopeKind) and isinstance(envelope.state, bytes)
    assert all(type(getattr(envelope, name)) is str for name in TEXT_FIELDS)
    assert envelope.clone_of is None or type(envelope.clone_of) is str, envelope.clone_of
    assert type(envelope.metadata) is dict, envelope.metadata
    assert len(envelope.agent_id) <= limits.MAX_AGENT_ID and len(envelope.agent_class_name) <= limits.MAX_CLASS_NAME
    seen = envelope.metadata.get("seen")
    assert seen is None or all(type(mid) is str and len(mid) <= MAX_MESSAGE_ID for mid in seen), seen


@st.composite
def mutated_envelope_maps(draw):
    wire = draw(ENVELOPES).to_wire()
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(ENVELOPE_FIELDS) | st.text(max_size=6))
        if draw(st.booleans()):
            wire.pop(name, None)
        else:
            wire[name] = draw(WIRE_VALUES)
    return wire


@FUZZ
@given(ENVELOPES)
def test_envelopes_round_trip(envelope):
    assert PagletEnvelope.from_bytes(envelope.to_bytes()) == envelope


@FUZZ
@given(mutated_envelope_maps() | WIRE_VALUES)
@example({"kind": "dispatch", "agent_id": "a", "agent_class_name": "m:C", "clone_of": 5})
@example({"kind": "dispatch", "agent_id": "a", "agent_class_name": "m:C", "metadata": [["k", "v"]]})
@example({"kind": "dispatch", "agent_id": "a", "agent_class_name": "m:C", "metadata": "ab"})
@example({"kind": ["dispatch"], "agent_id": "a", "agent_class_name": "m:C"})
@example({"kind": "dispatch", "agent_id": "a", "agent_class_name": "m:C", "metadata": {"seen": "abc"}})
@example({"kind": "dispatch", "agent_id": "a", "agent_class_name": "m:C", "metadata": {"seen": ["m" * 257]}})
@example({"kind": "dispatch", "agent_id": "a" * 129, "agent_class_name": "m:C"})
def test_envelope_maps_are_an_envelope_or_a_serialization_error(wire):
    check_envelope(PagletEnvelope.from_wire, wire)
    check_envelope(PagletEnvelope.from_bytes, packb(wire))


@FUZZ
@given(st.binary(max_size=96) | ENVELOPES.map(PagletEnvelope.to_bytes).map(lambda data: data[: len(data) // 2]))
def test_envelope_bytes_are_an_envelope_or_a_serialization_error(data):
    check_envelope(PagletEnvelope.from_bytes, data)


# ------------------------------------------------------------------ deactivation request and policy

POLICIES = st.builds(
    DeactivationPolicy,
    activate_on_message=st.booleans(),
    queue_messages_when_inactive=st.booleans(),
    activate_on_startup=st.booleans(),
    activate_at=st.none() | st.floats(0, 4e9),
)
REQUESTS = st.builds(
    DeactivationRequest,
    reason=st.text(max_size=10),
    source=st.text(max_size=10),
    policy=st.none() | POLICIES,
    metadata=METADATA,
)


@st.composite
def mutated_request_maps(draw):
    wire = draw(REQUESTS).to_wire()
    target = wire["policy"] if isinstance(wire["policy"], dict) and draw(st.booleans()) else wire
    name = draw(st.sampled_from(sorted(target)) | st.text(max_size=6))
    target[name] = draw(WIRE_VALUES)
    return wire


def check_deactivation(parse, wire) -> None:
    try:
        parsed = parse(wire)
    except SerializationError as refused:
        assert str(refused)
        return
    policy = parsed if isinstance(parsed, DeactivationPolicy) else parsed.policy
    if isinstance(parsed, DeactivationRequest):
        assert type(parsed.reason) is str and type(parsed.source) is str and type(parsed.metadata) is dict
    if policy is not None:
        assert all(type(getattr(policy, name)) is bool for name in ("activate_on_message", "activate_on_startup"))
        assert policy.activate_at is None or (math.isfinite(policy.activate_at) and policy.activate_at >= 0)


@FUZZ
@given(REQUESTS)
def test_deactivation_requests_round_trip(request):
    assert DeactivationRequest.from_wire(request.to_wire()) == request


@FUZZ
@given(mutated_request_maps() | WIRE_VALUES)
@example({"policy": {"activate_at": 2**64 - 1}})
@example({"policy": {"activate_at": float("nan")}})
@example({"policy": {"activate_at": -0.0}})
@example({"policy": []})
@example({"metadata": [["k", "v"]]})
def test_deactivation_maps_are_parsed_or_refused_with_serialization_error(wire):
    check_deactivation(DeactivationRequest.from_wire, wire)
    check_deactivation(DeactivationPolicy.from_wire, wire.get("policy") if isinstance(wire, dict) else wire)


# ------------------------------------------------------------------ errors from the wire


@FUZZ
@given(WIRE_VALUES | WIRE_MAPS)
@example({"type": "NodeUnreachableError", "address": ["x"], "op": {"a": 1}})
@example({"type": "StorageQuotaError", "message": b"\xff"})
@example({"type": "PagletError"})
@example({"type": "__class__"})
def test_error_payloads_always_become_a_paglets_error(wire):
    assert isinstance(error_from_wire(wire), PagletError)

"""Value types of parked paglets: policies, requests, queued messages and records."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import msgpack
import pytest

from paglets.core.errors import SerializationError
from paglets.core.messages import ONEWAY, SYNCHRONOUS, Message
from paglets.core.runtime_values import EnvelopeKind
from paglets.persistence.persistency import (
    RECORD_FORMAT,
    DeactivationPolicy,
    DeactivationRequest,
    InactiveRecord,
    QueuedMessage,
)
from paglets.runtime.envelope import PagletEnvelope
from paglets.wire import codec
from paglets.wire.message_codec import encode_message

pytestmark = pytest.mark.timeout(10)


def make_envelope() -> PagletEnvelope:
    return PagletEnvelope(
        kind=EnvelopeKind.ACTIVATION,
        agent_id="agent-1",
        agent_class_name="tests.sample_paglets:Counter",
        state_class_name="tests.sample_paglets:CounterState",
        state=codec.encode({"count": 3}),
        source_host_name="alpha",
        source_host_address="tcp://127.0.0.1:5000",
        target_host_name="alpha",
        target_host_address="tcp://127.0.0.1:5000",
        metadata={"hops": 2},
    )


def make_record() -> InactiveRecord:
    message = Message("ping", args={"n": 1}, sender="someone", message_type=ONEWAY, timestamp=100.0)
    return InactiveRecord(
        envelope=make_envelope(),
        policy=DeactivationPolicy(activate_on_message=False, activate_at=2_000_000_000.0),
        request=DeactivationRequest(
            reason="idle", source="node", policy=DeactivationPolicy(activate_on_startup=True), metadata={"k": [1, 2]}
        ),
        deactivated_at=1_700_000_000.5,
        queued_messages=[QueuedMessage.from_message(message, queued_at=1_700_000_001.0)],
        files=[{"name": "notes.txt", "size": 12}],
    )


# ---------------------------------------------------------------- DeactivationPolicy


def test_policy_defaults_wake_on_message_and_queue():
    policy = DeactivationPolicy()
    assert policy.activate_on_message is True
    assert policy.queue_messages_when_inactive is True
    assert policy.activate_on_startup is False
    assert policy.activate_at is None


def test_policy_round_trips_through_wire():
    policy = DeactivationPolicy(False, False, True, 1_800_000_000.25)
    assert DeactivationPolicy.from_wire(policy.to_wire()) == policy


def test_policy_is_frozen_and_with_changes_returns_a_checked_copy():
    policy = DeactivationPolicy()
    with pytest.raises(AttributeError):
        policy.activate_on_startup = True  # type: ignore[misc]
    changed = policy.with_changes(activate_on_startup=True, activate_at=5)
    assert changed.activate_on_startup is True and changed.activate_at == 5.0
    assert policy.activate_on_startup is False
    with pytest.raises(ValueError):
        policy.with_changes(activate_at=-1)


def test_aware_datetime_activate_at_is_stored_as_its_unix_time():
    when = datetime(2030, 1, 1, tzinfo=UTC)
    policy = DeactivationPolicy(activate_at=when)
    assert isinstance(policy.activate_at, float)
    assert policy.activate_at == 1_893_456_000.0
    shifted = datetime(2030, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert DeactivationPolicy(activate_at=shifted).activate_at == 1_893_456_000.0


def test_naive_datetime_activate_at_means_local_time():
    naive = datetime(2031, 6, 1, 12, 30)
    assert DeactivationPolicy(activate_at=naive).activate_at == naive.timestamp()


def test_int_activate_at_becomes_float():
    policy = DeactivationPolicy(activate_at=1_900_000_000)
    assert isinstance(policy.activate_at, float)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0])
def test_policy_refuses_non_finite_or_negative_activate_at(bad):
    with pytest.raises(ValueError, match="activate_at"):
        DeactivationPolicy(activate_at=bad)


@pytest.mark.parametrize("bad", ["soon", True, [1]])
def test_policy_refuses_activate_at_of_the_wrong_type(bad):
    with pytest.raises(TypeError, match="activate_at"):
        DeactivationPolicy(activate_at=bad)


def test_policy_refuses_non_bool_flags():
    with pytest.raises(TypeError, match="activate_on_message"):
        DeactivationPolicy(activate_on_message=1)  # type: ignore[arg-type]


def test_policy_from_wire_defaults_missing_keys_and_ignores_unknown_ones():
    policy = DeactivationPolicy.from_wire({"activate_on_startup": True, "future_field": "x"})
    assert policy == DeactivationPolicy(activate_on_startup=True)
    assert DeactivationPolicy.from_wire({}) == DeactivationPolicy()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("activate_on_message", "yes"),
        ("queue_messages_when_inactive", 1),
        ("activate_on_startup", None),
        ("activate_at", "tomorrow"),
        ("activate_at", True),
        ("activate_at", math.nan),
        ("activate_at", -5),
    ],
)
def test_policy_from_wire_names_the_malformed_field(key, value):
    with pytest.raises(SerializationError, match=key):
        DeactivationPolicy.from_wire({key: value})


def test_policy_from_wire_refuses_a_non_map():
    with pytest.raises(SerializationError, match="map"):
        DeactivationPolicy.from_wire([True, True, False, None])


# ---------------------------------------------------------------- DeactivationRequest


def test_request_round_trips_with_and_without_policy():
    plain = DeactivationRequest(reason="idle", source="node")
    with_policy = DeactivationRequest("shutdown", "shutdown", DeactivationPolicy(activate_on_startup=True), {"a": 1})
    for request in (plain, with_policy):
        assert DeactivationRequest.from_wire(request.to_wire()) == request


def test_request_from_none_is_a_default_request():
    assert DeactivationRequest.from_wire(None) == DeactivationRequest()


def test_request_metadata_defaults_to_a_fresh_dict():
    first, second = DeactivationRequest(), DeactivationRequest()
    first.metadata["x"] = 1
    assert second.metadata == {}


@pytest.mark.parametrize(
    ("payload", "field_name"),
    [
        ({"reason": 5}, "reason"),
        ({"source": b"node"}, "source"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"policy": {"activate_at": "x"}}, "activate_at"),
        ({"policy": "never"}, "policy"),
    ],
)
def test_request_from_wire_names_the_malformed_field(payload, field_name):
    with pytest.raises(SerializationError, match=field_name):
        DeactivationRequest.from_wire(payload)


def test_request_constructor_refuses_a_policy_of_the_wrong_type():
    with pytest.raises(TypeError, match="policy"):
        DeactivationRequest(policy={"activate_on_message": False})  # type: ignore[arg-type]


# ---------------------------------------------------------------- QueuedMessage


def test_queued_message_round_trips_and_decodes_its_body():
    message = Message("add", args={"x": (1, 2)}, priority=7, message_type=SYNCHRONOUS, timestamp=10.0)
    queued = QueuedMessage.from_message(message, queued_at=20.0)
    assert queued.oneway is False
    assert queued.priority == 7
    assert queued.message_id == message.message_id
    assert QueuedMessage.from_wire(queued.to_wire()) == queued
    assert queued.message() == message


def test_queued_message_oneway_follows_the_message_type_unless_given():
    message = Message("note", message_type=ONEWAY)
    assert QueuedMessage.from_message(message).oneway is True
    assert QueuedMessage.from_message(message, oneway=False).oneway is False


def test_queued_message_with_a_corrupt_body_fails_to_decode():
    queued = QueuedMessage(b"\xc1garbage", False, 5, "id", 1.0)
    with pytest.raises(SerializationError):
        queued.message()


def good_queued_wire() -> dict:
    return QueuedMessage(encode_message(Message("ping")), True, 5, "id-1", 3.0).to_wire()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("body", "not bytes"),
        ("oneway", 0),
        ("priority", "5"),
        ("priority", True),
        ("priority", 99),
        ("message_id", 12),
        ("queued_at", "now"),
        ("queued_at", math.inf),
    ],
)
def test_queued_message_from_wire_names_the_malformed_field(key, value):
    payload = good_queued_wire()
    payload[key] = value
    with pytest.raises(SerializationError, match=key):
        QueuedMessage.from_wire(payload)


@pytest.mark.parametrize("key", ["body", "oneway", "priority", "message_id", "queued_at"])
def test_queued_message_from_wire_requires_every_field(key):
    payload = good_queued_wire()
    del payload[key]
    with pytest.raises(SerializationError, match=key):
        QueuedMessage.from_wire(payload)


# ---------------------------------------------------------------- InactiveRecord


def test_record_round_trips_through_bytes():
    record = make_record()
    again = InactiveRecord.from_bytes(record.to_bytes())
    assert again == record
    assert again.agent_id == "agent-1"
    assert again.format == RECORD_FORMAT
    assert codec.decode(again.envelope.state) == {"count": 3}
    assert again.queued_messages[0].message().kind == "ping"


def test_record_defaults_have_no_queue_and_no_files():
    record = InactiveRecord(make_envelope(), DeactivationPolicy(), DeactivationRequest(), 1.0)
    again = InactiveRecord.from_bytes(record.to_bytes())
    assert again.queued_messages == [] and again.files == []


def test_record_bytes_nest_the_envelope_wire_form():
    payload = msgpack.unpackb(make_record().to_bytes(), raw=False)
    assert payload["format"] == 1
    assert payload["envelope"] == make_envelope().to_wire()


def test_record_with_unencodable_metadata_raises_serialization_error():
    record = make_record()
    record.request.metadata["bad"] = object()
    with pytest.raises(SerializationError, match="agent-1"):
        record.to_bytes()


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x00\x01\x02garbage", b"\xff" * 16])
def test_garbage_bytes_are_refused(data):
    with pytest.raises(SerializationError):
        InactiveRecord.from_bytes(data)


def test_every_truncation_of_a_record_is_refused():
    data = make_record().to_bytes()
    for end in range(len(data)):
        with pytest.raises(SerializationError):
            InactiveRecord.from_bytes(data[:end])


def test_trailing_bytes_after_a_record_are_refused():
    with pytest.raises(SerializationError):
        InactiveRecord.from_bytes(make_record().to_bytes() + b"\x00")


def test_a_record_that_is_not_a_map_is_refused():
    with pytest.raises(SerializationError, match="map"):
        InactiveRecord.from_bytes(msgpack.packb([1, 2, 3]))


@pytest.mark.parametrize("version", [0, 2, "1", None, True])
def test_unknown_record_format_is_refused(version):
    payload = make_record().to_wire()
    payload["format"] = version
    with pytest.raises(SerializationError, match="format"):
        InactiveRecord.from_bytes(msgpack.packb(payload, use_bin_type=True))


def test_missing_record_format_is_refused():
    payload = make_record().to_wire()
    del payload["format"]
    with pytest.raises(SerializationError, match="format"):
        InactiveRecord.from_bytes(msgpack.packb(payload, use_bin_type=True))


def mutated_record_bytes(key: str, value: object) -> bytes:
    payload = make_record().to_wire()
    payload[key] = value
    return msgpack.packb(payload, use_bin_type=True)


@pytest.mark.parametrize(
    ("key", "value", "mentioned"),
    [
        ("envelope", "nope", "envelope"),
        ("envelope", {"kind": "teleport", "agent_id": "a", "agent_class_name": "m:C"}, "envelope"),
        ("policy", None, "policy"),
        ("policy", {"activate_at": "x"}, "activate_at"),
        ("request", {"reason": 3}, "reason"),
        ("deactivated_at", "yesterday", "deactivated_at"),
        ("deactivated_at", -1.0, "deactivated_at"),
        ("queued_messages", {"a": 1}, "queued_messages"),
        ("queued_messages", [{"body": 1}], "body"),
        ("files", "notes.txt", "files"),
        ("files", [["notes.txt"]], "files"),
    ],
)
def test_record_from_bytes_names_the_malformed_field(key, value, mentioned):
    with pytest.raises(SerializationError, match=mentioned):
        InactiveRecord.from_bytes(mutated_record_bytes(key, value))


@pytest.mark.parametrize("key", ["envelope", "policy", "deactivated_at"])
def test_record_from_bytes_requires_its_core_fields(key):
    payload = make_record().to_wire()
    del payload[key]
    with pytest.raises(SerializationError, match=key):
        InactiveRecord.from_bytes(msgpack.packb(payload, use_bin_type=True))


def test_record_envelope_state_of_the_wrong_type_is_refused():
    payload = make_record().to_wire()
    payload["envelope"]["state"] = "text"
    with pytest.raises(SerializationError, match="state"):
        InactiveRecord.from_bytes(msgpack.packb(payload, use_bin_type=True))

"""Typed contracts, service records and proxy references, without a node."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from paglets.core.agent import NOT_HANDLED
from paglets.core.errors import SerializationError, ServiceContractError
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.remote.client import HostClient
from paglets.remote.references import PagletProxyRef
from paglets.services import contracts
from paglets.services.contracts import (
    CONTRACT_KEY,
    EmptyPayload,
    ServiceContract,
    ServiceHandle,
    ServiceOperation,
    ServiceRecord,
)
from paglets.services.records import MAX_CAPABILITIES, MAX_SERVICE_NAME, check_metadata, check_service_name, check_ttl
from paglets.wire import codec
from paglets.wire.message_codec import decode_message, encode_message
from tests.service_paglets import ECHO, PING, RICH, Colour, Leg, Rich
from tests.unit.codec_types import Point  # a module-level dataclass that is not a contract payload


def rich() -> Rich:
    return Rich(
        title="t",
        raw=b"\x00\xffraw",
        buffer=bytearray(b"buf"),
        colour=Colour.BLUE,
        legs=[Leg("x", Colour.RED, (1.5, 2.0))],
        by_name={"y": Leg("y", Colour.BLUE)},
        maybe=Leg("z", Colour.RED),
        count=3,
        ratio=2,
        tags=frozenset({"a", "b"}),
    )


def over_the_wire(message: Message) -> Message:
    return decode_message(encode_message(message))


# -- payloads round-trip through the real message codec ---------------------------------------------
def test_request_and_reply_round_trip_nested_dataclasses_enums_bytes_and_bytearray():
    request = rich()
    message = over_the_wire(ECHO.to_message(request))
    assert message.kind == "echo"
    assert message.args["colour"] == "blue" and message.args["legs"][0] == {
        "venue": "x", "colour": "red", "weights": [1.5, 2.0],
    }  # fmt: skip
    decoded = ECHO.decode_request(message)
    assert decoded == request
    assert type(decoded.raw) is bytes and type(decoded.buffer) is bytearray
    assert decoded.legs[0].weights == (1.5, 2.0) and decoded.tags == frozenset({"a", "b"})
    reply = codec.decode(codec.encode(ECHO.encode_reply(decoded)))
    assert ECHO.decode_reply(reply) == request


def test_empty_payload_operations_need_no_request_and_no_reply():
    assert over_the_wire(PING.to_message()).args == {}
    assert PING.decode_request(over_the_wire(PING.to_message())) == EmptyPayload()
    assert PING.encode_reply(None) == {}
    assert PING.decode_reply(None) == EmptyPayload() == PING.decode_reply({})


# -- checked on both sides ------------------------------------------------------------------------
def test_a_request_of_the_wrong_type_is_refused_before_it_is_sent():
    with pytest.raises(ServiceContractError, match=r"request of operation 'echo' must be a Rich, got Leg"):
        ECHO.to_message(Leg("x", Colour.RED))


def test_a_field_of_the_wrong_type_is_named_with_its_path():
    bad = rich()
    bad.legs.append(Leg("w", "green"))  # type: ignore[arg-type]
    with pytest.raises(ServiceContractError, match=r"Rich\.legs\[1\]\.colour: expected Colour"):
        ECHO.to_message(bad)


def test_a_request_that_arrives_malformed_is_refused_naming_the_field():
    args = ECHO.encode_request(rich())
    with pytest.raises(ServiceContractError, match=r"Rich\.count: expected int, got str"):
        ECHO.decode_request({**args, "count": "3"})
    with pytest.raises(ServiceContractError, match=r"unknown field\(s\) 'extra'"):
        ECHO.decode_request({**args, "extra": 1})
    with pytest.raises(ServiceContractError, match=r"field\(s\) raw of Rich"):
        ECHO.decode_request({key: value for key, value in args.items() if key != "raw"})
    with pytest.raises(ServiceContractError, match=r"one of the values of Colour"):
        ECHO.decode_request({**args, "colour": "green"})


def test_a_reply_of_the_wrong_type_is_refused_where_it_is_produced():
    message = ECHO.to_message(rich())
    contract = ServiceContract("rich", operations=(ECHO,), version="2")
    expected = r"reply of operation 'echo' must be a Rich, the handler returned dict"
    with pytest.raises(ServiceContractError, match=expected):
        contract.route(message, {ECHO: lambda request: {"title": "t"}})


def test_a_request_without_fields_to_default_needs_a_value():
    with pytest.raises(ServiceContractError, match=r"a Rich is required"):
        ECHO.to_message()


# -- contracts ------------------------------------------------------------------------------------
def test_route_answers_its_operations_and_nothing_else():
    handled = RICH.route(ECHO.to_message(rich()), {"echo": lambda request: request})
    assert ECHO.decode_reply(handled) == rich()
    assert RICH.route(Message("other"), {ECHO: lambda request: request}) is NOT_HANDLED
    assert RICH.route(Message("other"), {}, default="nope") == "nope"
    assert RICH.route(PING.to_message(), {ECHO: lambda request: request}) is NOT_HANDLED  # no handler for it


def test_a_contract_names_its_capabilities_and_reserves_its_metadata_key():
    assert RICH.capabilities() == ("echo", "ping")
    assert ServiceContract("c", (PING,), capabilities=["x"]).capabilities() == ("x",)
    described = RICH.advertise_metadata({"region": "eu"})
    assert described["region"] == "eu"
    assert described[CONTRACT_KEY] == {"name": "rich", "version": "2", "operations": ["echo", "ping"]}
    with pytest.raises(ServiceContractError, match="reserved"):
        RICH.advertise_metadata({CONTRACT_KEY: "mine"})
    with pytest.raises(ServiceContractError, match="reserved"):
        ServiceContract("c", (PING,), metadata={CONTRACT_KEY: 1})


def test_a_record_matches_a_contract_of_the_same_name_and_exact_version():
    record = _record("rich", metadata=RICH.metadata())
    assert RICH.matches_record(record)
    assert not ServiceContract("rich", (ECHO, PING), version="3").matches_record(record)
    assert not RICH.matches_record(_record("rich"))  # advertised without the contract
    assert RICH.offers(record, PING) and RICH.offers(record, "echo")
    with pytest.raises(ServiceContractError, match="has no operation 'nope'"):
        RICH.offers(record, "nope")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: ServiceContract("", (PING,)), "non-empty name"),
        (lambda: ServiceContract("c", ()), "has no operations"),
        (lambda: ServiceContract("c", (PING, ServiceOperation("ping"))), "two operations named 'ping'"),
        (lambda: ServiceOperation("", Rich, Rich), "non-empty name"),
        (lambda: ServiceOperation("op", dict, Rich), "is not a dataclass"),
        (lambda: ServiceOperation("op", Rich, Point("x", 1)), "is not a dataclass"),  # an instance, not a class
    ],
)
def test_malformed_contracts_are_refused(make, expected):
    with pytest.raises(ServiceContractError, match=expected):
        make()


def test_payload_types_defined_in_a_function_are_refused():
    @dataclass
    class Local:
        x: int

    with pytest.raises(ServiceContractError, match=r"not importable by its name \(defined inside a function\?\)"):
        ServiceOperation("op", Local, EmptyPayload)


def test_a_handle_calls_through_its_proxy_and_checks_both_ends():
    sent: list[Message] = []

    class Proxy:
        def send(self, message: Message, timeout: float | None = None):
            sent.append(message)
            return ECHO.encode_reply(ECHO.decode_request(over_the_wire(message)))

        def send_oneway(self, message: Message) -> None:
            sent.append(message)

    handle = ServiceHandle(RICH, _record("rich", metadata=RICH.metadata()), Proxy())
    assert handle.call(ECHO, rich()) == rich()
    handle.send_oneway("ping")
    assert [m.kind for m in sent] == ["echo", "ping"]
    with pytest.raises(ServiceContractError, match="has no operation 'nope'"):
        handle.call("nope")
    assert handle.ref == PagletProxyRef("tcp://127.0.0.1:1", "agent")


# -- records and their bounds ---------------------------------------------------------------------
def _record(name: str, **fields) -> ServiceRecord:
    return ServiceRecord(name, "agent", "alpha", "tcp://127.0.0.1:1", **fields)


def test_a_record_round_trips_and_says_whether_it_matches():
    record = _record("q", capabilities=("a", "b"), metadata={"k": [1, "x"]}, scope=ServiceScope.MESH, expires_at=5.0)
    assert ServiceRecord.from_wire(codec.decode(codec.encode(record.to_wire()))) == record
    assert record.expired and not _record("q").expired
    assert record.matches("q") and record.matches(None, "b") and not record.matches("q", "c")
    assert record.ref == PagletProxyRef("tcp://127.0.0.1:1", "agent")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": ""}, "must not be empty"),
        ({"name": "x" * (MAX_SERVICE_NAME + 1)}, "the limit is 128"),
        ({"agent_id": "../etc"}, "is not an agent id"),
        ({"host_url": "http://x"}, "must look like"),
        ({"capabilities": ["c"] * (MAX_CAPABILITIES + 1)}, "the limit is 64"),
        ({"metadata": {"k": "v" * 20_000}}, "the limit is 16384"),
        ({"scope": "galaxy"}, "scope must be 'local' or 'mesh'"),
        ({"expires_at": "soon"}, "expires_at must be a UNIX time"),
        ({"extra": 1, **{f"f{n}": n for n in range(20)}}, "at most 16 fields"),
    ],
)
def test_a_record_from_outside_is_checked_field_by_field(change, expected):
    wire = {**_record("q").to_wire(), **change}
    with pytest.raises(SerializationError, match=expected):
        ServiceRecord.from_wire(wire)


def test_advertisement_fields_are_checked_naming_what_is_wrong():
    for name in ("", "   ", " padded", "tab\there"):
        with pytest.raises(ValueError, match="service name"):
            check_service_name(name)
    for ttl in (0, -1, float("nan"), True, "10"):
        with pytest.raises(ValueError, match="ttl must be"):
            check_ttl(ttl)
    with pytest.raises(ValueError, match="metadata must be plain data"):
        check_metadata({"when": (1, 2)})


# -- PagletProxyRef ---------------------------------------------------------------------------------
def test_a_proxy_ref_is_plain_data_that_travels_in_state_and_resolves_to_a_proxy():
    ref = PagletProxyRef("tcp://127.0.0.1:5", "agent-1")
    assert codec.decode(codec.encode(ref)) == ref
    client = HostClient()
    proxy = ref.resolve(client)
    assert (proxy.host_url, proxy.agent_id, proxy.client) == (ref.host_url, ref.agent_id, client)
    assert proxy.ref() == ref and ref.resolve().agent_id == "agent-1"
    with pytest.raises(TypeError, match="resolve needs a PagletContext"):
        ref.resolve(42)
    with pytest.raises(SerializationError, match="not a paglet reference"):
        PagletProxyRef.from_wire({"host_url": "tcp://x:1", "agent_id": "../x"})


def test_the_public_names_are_where_paglet_authors_import_them():
    assert contracts.ServiceContractError.__module__ == "paglets.core.errors"
    assert contracts.ServiceNotFoundError.__module__ == "paglets.core.errors"
    assert PagletProxyRef is __import__("paglets.remote.references", fromlist=["x"]).PagletProxyRef

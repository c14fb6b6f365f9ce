"""Hostile input to services: raw front requests, a worker that skips its own checks, a peer's garbage answer."""

from __future__ import annotations

import msgpack
import pytest

from paglets.core.errors import ProtocolError, SerializationError, ServiceNotFoundError
from paglets.core.messages import Message
from paglets.examples.quotes import QuoteService, QuoteServiceState
from paglets.node.services.mesh_query import MAX_REPLY_BYTES, parse_records
from paglets.services.records import ServiceRecord
from tests import service_paglets as svc
from tests.hostile.test_front_hostile import ask, raw, refusal, site, still_serves  # noqa: F401  (fixtures)

PEER = "tcp://127.0.0.1:7001"


def test_a_services_request_with_a_bad_name_or_scope_is_refused(site, raw):  # noqa: F811
    for header, expected in (
        ({"name": "n" * 200}, "the limit is 128"),
        ({"name": ""}, "must not be empty"),
        ({"scope": "galaxy"}, "scope must be 'local' or 'mesh'"),
    ):
        error = refusal(ask(raw, "services", header))
        assert isinstance(error, ProtocolError) and expected in str(error), (header, str(error))
    still_serves(site)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": ""}, "must not be empty"),
        ({"name": "q", "caps": [""]}, "capability ''"),
        ({"name": "q", "meta": {"k": "v" * 4000, **{f"k{n}": "v" * 4000 for n in range(5)}}}, "the limit is 16384"),
        ({"name": "q", "ttl": -5}, "ttl must be"),
        ({"name": "q", "scope": "galaxy"}, "scope must be"),
    ],
)
def test_the_node_checks_an_advertisement_again_when_a_worker_skips_its_checks(site, fields, expected):  # noqa: F811
    user = site.node.create(svc.ServiceUser)
    refused = user.send(Message("raw-advertise", fields))
    assert refused["error"] == "ProtocolError" and expected in refused["message"]
    assert site.node.lookup_services() == []
    still_serves(site)


def record_wire(**change) -> dict:
    record = ServiceRecord("q", "agent-1", "peer", PEER, scope="mesh")
    return {**record.to_wire(), **change}


def answer(records) -> list[bytes]:
    return [msgpack.packb({"records": records}, use_bin_type=True)]


def test_a_peer_answer_keeps_only_checked_mesh_records_of_that_peer():
    records = [
        record_wire(),
        record_wire(host_url="tcp://10.9.9.9:1", agent_id="elsewhere"),  # speaks for another node
        record_wire(scope="local", agent_id="local-one"),  # not for the mesh
    ]
    assert [r.agent_id for r in parse_records(answer(records), PEER, 100)] == ["agent-1"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([b"\xc1"], "not valid msgpack"),
        (answer("many"), "a list of at most 3 records"),
        (answer([record_wire()] * 4), "a list of at most 3 records"),
        (answer([record_wire(name="")]), "must not be empty"),
        (answer([record_wire(metadata={"k": "v" * 20_000})]), "the limit is 16384"),
        ([b"x" * (MAX_REPLY_BYTES + 1)], "one frame of at most"),
        ([b"", b""], "one frame of at most"),
    ],
)
def test_a_malformed_peer_answer_is_refused(payload, expected):
    with pytest.raises((SerializationError, ProtocolError), match=expected):
        parse_records(payload, PEER, 3)


def test_a_raw_lease_request_for_something_not_resident_or_with_a_bad_ttl_is_refused(site, raw):  # noqa: F811
    quotes = site.node.create(QuoteService, QuoteServiceState("v", {"ACME": 1.0}))
    for header, kind, expected in (
        ({"agent": quotes.agent_id, "service": "quotes", "ttl": 30.0}, ServiceNotFoundError, "not a resident service"),
        ({"agent": "ghost", "service": "quotes", "ttl": 30.0}, ServiceNotFoundError, "not a resident service"),
        ({"agent": quotes.agent_id, "service": "quotes", "ttl": -1.0}, ProtocolError, "lease ttl"),
        ({"agent": "bad id!", "service": "quotes", "ttl": 30.0}, ProtocolError, "agent"),
        ({"agent": quotes.agent_id, "service": "", "ttl": 30.0}, ProtocolError, "must not be empty"),
    ):
        error = refusal(ask(raw, "lease", header))
        assert isinstance(error, kind) and expected in str(error), (header, str(error))
    error = refusal(ask(raw, "unlease", {"lease": "../etc"}))
    assert isinstance(error, ProtocolError) and "not a lease id" in str(error)
    assert site.node.leases.count() == 0
    still_serves(site)


def test_a_worker_that_leases_a_plain_paglet_by_raw_host_call_is_refused(site):  # noqa: F811
    quotes = site.node.create(QuoteService, QuoteServiceState("v", {"ACME": 1.0}))
    user = site.node.create(svc.ServiceUser)
    refused = user.send(Message("raw-lease", {"agent": quotes.agent_id, "service": "quotes", "ttl": 5.0}))
    assert refused["error"] == "ServiceNotFoundError" and "not a resident service" in refused["message"]
    assert site.node.leases.count() == 0
    still_serves(site)

"""Services on real nodes with real workers: advertise, look up, call by contract, and records that follow their paglet.

The mesh cases with node processes are in ``test_services_mesh.py``.
"""

from __future__ import annotations

import pytest

from paglets.core.errors import InvalidAgentError, PagletCrashedError, ServiceContractError, ServiceNotFoundError
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.examples.quotes import QUOTE, QUOTES, Quote, QuoteRequest, QuoteService, QuoteServiceState
from paglets.remote.client import HostClient
from paglets.remote.references import PagletProxyRef
from paglets.services.contracts import ServiceRecord
from tests import service_paglets as svc
from tests.integration.test_http import call

MAX_PER_PAGLET = 64


def quote_service(node, venue: str = "v", price: float = 10.0):
    return node.create(QuoteService, QuoteServiceState(venue, {"ACME": price}))


def wait_event(node, kind: str, agent_id: str, since: int, timeout: float = 10):
    event = node.events.wait_for(lambda e: e.kind == kind and e.agent_id == agent_id, timeout, since=since)
    assert event is not None, f"no {kind} for {agent_id} on {node.name}"
    return event


def names_here(node) -> list[tuple[str, str]]:
    return [(r.name, r.agent_id) for r in node.lookup_services()]


# -- advertise and look up ------------------------------------------------------------------
def test_a_paglet_advertises_and_the_node_finds_it_by_name_capability_and_contract(node):
    service = quote_service(node)
    [record] = node.lookup_services("quotes")
    assert (record.agent_id, record.host_name, record.host_url) == (service.agent_id, "alpha", node.address)
    assert record.scope is ServiceScope.MESH and record.capabilities == ("quote",)
    assert record.metadata["venue"] == "v" and QUOTES.matches_record(record)
    assert node.lookup_services("quotes", capability="nope") == []
    ref = node.lookup_service("quotes")
    assert ref == PagletProxyRef(node.address, service.agent_id)
    handle = node.require_contract(QUOTES, operation=QUOTE)
    assert handle.call(QUOTE, QuoteRequest("ACME", 2)) == Quote("ACME", 2, 20.0, "v")
    with pytest.raises(ServiceNotFoundError, match="no provider of contract 'rich' v2 on this node"):
        node.require_contract(svc.RICH)


def test_a_paglet_uses_the_service_api_from_its_worker(node):
    user = node.create(svc.ServiceUser)
    wire = user.send(Message("advertise", {"name": "tickets", "capabilities": ["sell"], "metadata": {"n": 1}}))
    record = ServiceRecord.from_wire(wire)
    assert (record.agent_id, record.capabilities, record.metadata) == (user.agent_id, ("sell",), {"n": 1})
    assert [r["name"] for r in user.send(Message("lookup", {"name": "tickets"}))] == ["tickets"]
    assert user.send(Message("lookup-one", {"name": "tickets", "capability": "sell"})) == record.ref
    assert user.send(Message("lookup-one", {"name": "tickets", "capability": "buy"})) is None
    assert user.send(Message("unadvertise", {"name": "tickets"})) is True
    assert user.send(Message("unadvertise", {"name": "tickets"})) is False
    assert node.lookup_services() == []


def test_a_typed_call_between_paglets_and_its_payload_round_trip(node):
    quote_service(node, price=2.5)
    user = node.create(svc.ServiceUser)
    assert user.send(Message("quote", {"symbol": "ACME", "quantity": 4})) == Quote("ACME", 4, 10.0, "v")
    node.create(svc.RichService)
    handle = node.require_contract(svc.RICH, operation=svc.ECHO)
    rich = svc.Rich("t", b"\x00raw", bytearray(b"buf"), svc.Colour.RED, legs=[svc.Leg("x", svc.Colour.BLUE, (1.0,))])
    echoed = handle.call(svc.ECHO, rich)
    assert echoed == rich and type(echoed.buffer) is bytearray
    assert handle.call(svc.PING) == svc.EmptyPayload()


def test_a_wrong_reply_is_refused_by_the_provider_and_the_caller_gets_that_error(node):
    provider = node.create(svc.WrongReplyQuoteService, QuoteServiceState("v", {"ACME": 1.0}))
    handle = node.require_contract(QUOTES)
    expected = "reply of operation 'quote' must be a Quote, the handler returned dict"
    with pytest.raises(ServiceContractError, match=expected):
        handle.call(QUOTE, QuoteRequest("ACME"))
    assert provider.mailbox_status()["failed"] == 1  # it failed in the provider's handler
    assert provider.is_active()


def test_a_request_of_the_wrong_type_fails_before_it_is_sent_and_a_malformed_one_at_the_provider(node):
    provider = quote_service(node)
    user = node.create(svc.ServiceUser)
    refused = user.send(Message("quote-wrong-request"))
    assert refused["error"] == "ServiceContractError"
    assert "request of operation 'quote' must be a QuoteRequest, got Quote" in refused["message"]
    assert provider.mailbox_status()["delivered"] == 0  # nothing reached the provider
    with pytest.raises(ServiceContractError, match=r"QuoteRequest\.quantity: expected int, got str"):
        provider.send(Message("quote", {"symbol": "ACME", "quantity": "many"}))


# -- bad input: a clear error, nothing half-registered ---------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"name": ""}, "a service name must not be empty"),
        ({"name": "q", "ttl": -1}, "ttl must be a number of seconds"),
        ({"name": "q", "scope": "galaxy"}, "scope must be 'local' or 'mesh'"),
        ({"name": "q", "capabilities": "sell"}, "capabilities must be a list of strings"),
        ({"name": "q", "metadata": {"big": "x" * 20_000}}, "the limit is 16384"),
    ],
)
def test_bad_advertisements_are_refused_naming_the_field_and_keep_nothing(node, args, expected):
    user = node.create(svc.ServiceUser)
    refused = user.send(Message("advertise", args))
    assert refused["error"] == "ValueError" and expected in refused["message"]
    with pytest.raises(ValueError, match=expected):
        node.advertise_service(args.pop("name"), agent_id=user.agent_id, **args)
    assert node.lookup_services() == []
    assert not [e for e in node.list_events(limit=1000) if e.kind.startswith("service")]


def test_records_per_paglet_are_bounded(node):
    user = node.create(svc.ServiceUser)
    assert len(user.send(Message("advertise-many", {"prefix": "s", "count": MAX_PER_PAGLET}))) == MAX_PER_PAGLET
    refused = user.send(Message("advertise", {"name": "one-more"}))
    assert refused["error"] == "OverloadedError" and "the limit is 64" in refused["message"]
    assert len(node.lookup_services()) == MAX_PER_PAGLET


def test_only_a_paglet_running_here_may_advertise_and_only_for_itself(node):
    with pytest.raises(InvalidAgentError, match="no running paglet 'ghost' on node alpha"):
        node.advertise_service("q", agent_id="ghost")
    user = node.create(svc.ServiceUser)
    refused = user.send(Message("advertise-for", {"name": "q", "agent_id": "someone-else"}))
    assert refused["error"] == "ForbiddenError" and "for itself only" in refused["message"]
    assert node.lookup_services() == []


# -- records belong to their paglet ----------------------------------------------------------
def test_records_go_when_their_paglet_is_disposed_crashes_or_is_parked(node):
    disposed, crashed, parked = (quote_service(node, venue) for venue in ("d", "c", "p"))
    user = node.create(svc.ServiceUser)
    user.send(Message("advertise", {"name": "crashy"}))
    since = node.events.last_seq
    node.dispose(disposed.agent_id)
    with pytest.raises(PagletCrashedError):
        user.send(Message("crash"))
    wait_event(node, "service-withdrawn", user.agent_id, since)
    parked.deactivate()
    reasons = {e.agent_id: e.data["reason"] for e in node.list_events(since=since) if e.kind == "service-withdrawn"}
    assert reasons == {disposed.agent_id: "disposed", user.agent_id: "crashed", parked.agent_id: "parked"}
    assert names_here(node) == [("quotes", crashed.agent_id)]
    parked.activate()  # QuoteService advertises again on activation
    assert {r.metadata["venue"] for r in node.lookup_services("quotes")} == {"c", "p"}


def test_a_record_stays_on_its_node_when_the_paglet_moves(make_node):
    alpha = make_node("alpha")
    beta = make_node("beta")
    service = quote_service(alpha)
    since = alpha.events.last_seq
    alpha.dispatch(service.agent_id, beta.address)
    assert wait_event(alpha, "service-withdrawn", service.agent_id, since).data["reason"] == "moved"
    assert alpha.lookup_services() == []
    assert [r.host_name for r in beta.lookup_services("quotes")] == ["beta"]  # it advertised again on arrival


def test_a_record_expires_after_its_ttl(node):
    user = node.create(svc.ServiceUser)
    since = node.events.last_seq
    user.send(Message("advertise", {"name": "brief", "ttl": 0.3}))
    user.send(Message("advertise", {"name": "lasting", "ttl": 600}))
    expired = wait_event(node, "service-expired", user.agent_id, since)
    assert expired.service_name == "brief"
    assert [r.name for r in node.lookup_services()] == ["lasting"]


def test_a_proxy_ref_kept_in_state_survives_moving_and_parking(make_node):
    alpha = make_node("alpha")
    beta = make_node("beta")
    service = quote_service(alpha, price=3.0)
    user = alpha.create(svc.ServiceUser)
    assert user.send(Message("keep", {"name": "quotes"})) == PagletProxyRef(alpha.address, service.agent_id)
    user.send(Message("go", {"to": beta.address}))
    user.deactivate()
    user.activate()
    request = QUOTE.encode_request(QuoteRequest("ACME"))
    reply = user.send(Message("call-kept", {"kind": "quote", "args": request}))
    assert QUOTE.decode_reply(reply) == Quote("ACME", 1, 3.0, "v")
    assert user.send(Message("where")) == "beta"


# -- surfaces ----------------------------------------------------------------------------------
def test_service_events_are_in_the_node_event_log(node):
    user = node.create(svc.ServiceUser)
    since = node.events.last_seq
    user.send(Message("advertise", {"name": "q", "scope": "mesh"}))
    user.send(Message("unadvertise", {"name": "q"}))
    services = [e for e in node.list_events(since=since) if e.kind.startswith("service-")]
    logged = [(e.kind, e.agent_id, {"service_name": e.service_name, **e.details}) for e in services]
    assert logged == [
        ("service-advertised", user.agent_id, {"service_name": "q", "scope": "mesh", "expires_at": None}),
        ("service-withdrawn", user.agent_id, {"service_name": "q", "scope": "mesh", "reason": "unadvertised"}),
    ]


def test_get_services_over_http_respects_the_api_key(make_node):
    node = make_node("secure", api_key="s3cret")
    service = quote_service(node)
    web = node.http_address
    assert call(web, "GET", "/services").status == 401
    auth = {"Authorization": "Bearer s3cret"}
    reply = call(web, "GET", "/services?name=quotes&scope=mesh", headers=auth)
    assert reply.status == 200 and [s["agent_id"] for s in reply.body["services"]] == [service.agent_id]
    assert call(web, "GET", "/services?capability=nope", headers=auth).body == {"services": []}
    assert call(web, "GET", "/services?scope=galaxy", headers=auth).status == 400
    assert call(web, "GET", "/services?name=", headers=auth).status == 400


def test_a_client_lists_services_with_the_services_op(node):
    service = quote_service(node)
    client = HostClient()
    [wire] = client.services(node.address)
    assert ServiceRecord.from_wire(wire).agent_id == service.agent_id
    assert client.services(node.address, name="other", mesh=True) == []

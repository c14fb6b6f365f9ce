"""MESH service lookups across paglets-node processes, and the quote tour of docs/services.md."""

from __future__ import annotations

import json
import signal

import pytest

from paglets.core.messages import Message
from paglets.examples.quotes import Quote, QuoteService, QuoteServiceState, QuoteTourist
from paglets.remote.client import HostClient
from paglets.remote.references import PagletProxyRef
from tests import service_paglets as svc
from tests.conftest import wait_until
from tests.integration.test_cli import ok, run_cli
from tests.integration.test_mesh_processes import FAST, online_names

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def mesh(node_process):
    client = HostClient(timeout=10)
    alpha = node_process("alpha", *FAST)
    beta = node_process("beta", "--peer", alpha.address, *FAST)
    gamma = node_process("gamma", "--peer", beta.address, *FAST)
    everyone = {"alpha", "beta", "gamma"}
    for node in (alpha, beta, gamma):
        wait_until(lambda n=node: online_names(client, n.address) == everyone, 15, f"{node.address} to see all")
    return client, alpha, beta, gamma


def providers(records: list[dict]) -> set[tuple[str, str]]:
    return {(r["name"], r["host_name"]) for r in records}


def test_a_mesh_lookup_sees_mesh_records_of_every_node_and_a_local_one_only_its_own(mesh):
    client, alpha, beta, gamma = mesh
    for node, venue in ((alpha, "a"), (gamma, "g")):
        client.create(node.address, QuoteService, QuoteServiceState(venue, {"ACME": 1.0}))
    on_beta = client.create(beta.address, svc.ServiceUser)
    on_beta.send(Message("advertise", {"name": "beta-only"}))
    on_beta.send(Message("advertise", {"name": "everywhere", "scope": "mesh"}))
    on_alpha = client.create(alpha.address, svc.ServiceUser)

    everything = {("quotes", "alpha"), ("quotes", "gamma"), ("everywhere", "beta")}
    assert providers(on_alpha.send(Message("lookup", {"scope": "mesh"}))) == everything
    assert providers(on_alpha.send(Message("lookup", {}))) == {("quotes", "alpha")}
    seen_from_beta = client.services(beta.address, mesh=True)
    assert providers(seen_from_beta) == everything | {("beta-only", "beta")}
    assert [r["host_name"] for r in seen_from_beta][:2] == ["beta", "beta"]  # this node's records first
    assert providers(client.services(beta.address)) == {("beta-only", "beta"), ("everywhere", "beta")}
    quotes = client.services(alpha.address, name="quotes", mesh=True)
    assert providers(quotes) == {("quotes", "alpha"), ("quotes", "gamma")}


def test_a_paglet_calls_a_contract_found_on_another_node(mesh):
    client, alpha, beta, _gamma = mesh
    service = client.create(alpha.address, QuoteService, QuoteServiceState("a", {"ACME": 4.0}))
    user = client.create(beta.address, svc.ServiceUser)
    assert "ServiceNotFoundError" == user.send(Message("quote", {"symbol": "ACME"}))["error"]  # LOCAL: none on beta
    assert user.send(Message("quote", {"symbol": "ACME", "scope": "mesh"})) == Quote("ACME", 1, 4.0, "a")
    ref = user.send(Message("keep", {"name": "quotes", "scope": "mesh"}))
    assert ref == PagletProxyRef(alpha.address, service.agent_id)


def test_a_mesh_lookup_stops_seeing_a_record_as_soon_as_its_paglet_is_gone(mesh):
    client, alpha, _beta, gamma = mesh
    service = client.create(gamma.address, QuoteService, QuoteServiceState("g", {"ACME": 1.0}))
    assert providers(client.services(alpha.address, mesh=True)) == {("quotes", "gamma")}
    service.dispose()
    assert client.services(alpha.address, mesh=True) == []  # asked now, not copied by gossip a while ago


def test_a_mesh_lookup_answers_without_a_node_that_died(mesh):
    client, alpha, beta, gamma = mesh
    client.create(beta.address, QuoteService, QuoteServiceState("b", {"ACME": 1.0}))
    client.create(gamma.address, QuoteService, QuoteServiceState("g", {"ACME": 1.0}))
    gamma.stop(signal.SIGKILL)
    # gamma is still listed online for a moment: the lookup asks it and leaves it out at the deadline
    assert providers(client.services(alpha.address, mesh=True)) == {("quotes", "beta")}


# -- the worked example of docs/services.md, on in-process nodes (its waits are on their event logs) ----
def test_a_tourist_collects_quotes_from_the_services_living_on_each_node(make_node):
    alpha = make_node("alpha")
    beta = make_node("beta")
    gamma = make_node("gamma")
    alpha.create(QuoteService, QuoteServiceState("alpha-x", {"ACME": 10.0}))
    gamma.create(QuoteService, QuoteServiceState("gamma-x", {"ACME": 9.5}))
    tourist = alpha.create(QuoteTourist)
    since = alpha.events.last_seq
    tourist.send(Message("tour", {"symbol": "ACME", "stops": [beta.address, gamma.address, alpha.address]}))
    back = alpha.events.wait_for(lambda e: e.kind == "arrival" and e.agent_id == tourist.agent_id, 30, since)
    assert back is not None
    done = alpha.events.wait_for(
        lambda e: e.kind == "run-finished" and e.agent_id == tourist.agent_id, 30, since=back.seq
    )
    assert done is not None
    state = alpha.get_state(tourist.agent_id)
    assert state["no_service"] == ["beta"] and state["touring"] is False
    quotes = tourist.send("quotes")
    assert quotes == [Quote("ACME", 1, 9.5, "gamma-x"), Quote("ACME", 1, 10.0, "alpha-x")]
    # the references it kept in its state still reach the providers, from wherever it is now
    assert tourist.send("requote") == quotes


def test_the_services_command_lists_a_node_s_records_or_the_mesh_s(mesh):
    client, alpha, beta, _gamma = mesh
    service = client.create(alpha.address, QuoteService, QuoteServiceState("a", {"ACME": 1.0}))
    user = client.create(beta.address, svc.ServiceUser)
    user.send(Message("advertise", {"name": "beta-only", "ttl": 600}))
    text = ok(run_cli("services", beta.address))
    header, *rows = text.splitlines()
    assert header.split() == ["SERVICE", "SCOPE", "NODE", "AGENT", "ID", "CONTRACT", "CAPABILITIES", "EXPIRES"]
    assert [row.split()[:4] for row in rows] == [["beta-only", "local", "beta", user.agent_id]]
    listed = json.loads(ok(run_cli("--json", "services", beta.address, "--mesh")))
    assert [(r["name"], r["agent_id"]) for r in listed] == [("beta-only", user.agent_id), ("quotes", service.agent_id)]
    mesh_text = ok(run_cli("services", beta.address, "--mesh", "--name", "quotes"))
    assert "quotes v1" in mesh_text and "alpha" in mesh_text and "beta-only" not in mesh_text
    assert ok(run_cli("services", alpha.address, "--capability", "nope")).strip() == "no services"

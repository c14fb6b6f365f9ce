"""Resident services, leases and idle parking on real nodes with real workers.

The cross-node cases (a lease from a paglet on a ``paglets-node`` process)
are at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from paglets.core.errors import ForbiddenError, ServiceNotFoundError
from paglets.core.messages import Message
from paglets.examples.quotes import QUOTES, QuoteService, QuoteServiceState
from paglets.remote.client import HostClient
from tests import resident_paglets as rp
from tests.conftest import wait_until
from tests.integration.test_mesh_processes import FAST, online_names

pytestmark = pytest.mark.timeout(120)

COUNTER_TABLE = {"class": "tests.resident_paglets:CounterService", "agent_id": "service.counter", "state": {"count": 5}}


def wait_event(node, kind: str, agent_id: str, since: int = 0, timeout: float = 10):
    event = node.events.wait_for(lambda e: e.kind == kind and e.agent_id == agent_id, timeout, since=since)
    assert event is not None, f"no {kind} for {agent_id} on {node.name}"
    return event


def no_event(node, kind: str, agent_id: str, since: int, within: float) -> bool:
    """True if no such event comes within ``within`` seconds (a bounded wait on the event log)."""
    return node.events.wait_for(lambda e: e.kind == kind and e.agent_id == agent_id, within, since=since) is None


def last_seq(node) -> int:
    events = node.list_events(since=0, limit=100_000)
    return events[-1].seq if events else 0


def is_active(node, agent_id: str) -> bool:
    return bool(node.agent_info(agent_id)["active"])


@pytest.fixture
def counter_node(make_node):
    return make_node("alpha", resident_services=[COUNTER_TABLE])


# -- resident services ----------------------------------------------------------------------------
def test_a_lazy_resident_is_discoverable_before_it_runs_and_starts_on_its_first_call(counter_node):
    node = counter_node
    [record] = node.lookup_services("counter")
    assert (record.agent_id, record.scope.value, record.metadata["resident"]) == ("service.counter", "mesh", "lazy")
    assert not is_active(node, "service.counter")  # nothing runs yet
    handle = node.require_contract(rp.COUNTER)
    tally = handle.call(rp.COUNT, rp.Add(2))
    assert (tally.count, tally.region) == (7, "eu")  # the table's state over the class's
    assert is_active(node, "service.counter")
    assert handle.record.ref.resolve(node.client).send(Message("created")) == 1  # on_creation ran once


def test_an_idle_resident_is_parked_keeps_its_record_and_the_next_call_wakes_it(counter_node):
    node = counter_node
    handle = node.require_contract(rp.COUNTER)
    first = handle.call(rp.COUNT, rp.Add(1))
    since = last_seq(node)
    parked = wait_event(node, "idle-park", "service.counter", since)
    assert parked.data["idle_for"] >= 0.5  # the class's idle_timeout
    assert not is_active(node, "service.counter")
    assert [r.agent_id for r in node.lookup_services("counter")] == ["service.counter"]  # the record stayed
    second = handle.call(rp.COUNT, rp.Add(1))
    assert (second.count, second.woken) == (first.count + 1, 1)  # its state came back from disk
    assert second.pid != first.pid
    wait_event(node, "woken", "service.counter", since)


def test_a_lease_starts_a_lazy_resident_keeps_it_up_and_its_release_lets_it_park(counter_node):
    node = counter_node
    since = last_seq(node)
    with node.lease_contract(rp.COUNTER, ttl=30) as handle:
        assert is_active(node, "service.counter")  # started by the lease, before any call
        assert handle.call(rp.READ).count == 5
        wait_event(node, "lease-acquired", "service.counter", since)
        assert no_event(node, "idle-park", "service.counter", since, within=2.0)  # 4x its idle_timeout
    released = wait_event(node, "lease-released", "service.counter", since)
    wait_event(node, "idle-park", "service.counter", released.seq)


def test_a_lease_ends_at_its_ttl(counter_node):
    node = counter_node
    since = last_seq(node)
    lease = node.lease_contract(rp.COUNTER, ttl=0.6)
    assert not lease.expired
    expired = wait_event(node, "lease-expired", "service.counter", since)
    assert expired.data["lease_id"] == lease.lease_id and lease.expired
    wait_event(node, "idle-park", "service.counter", expired.seq)
    lease.release()  # too late: nothing to give back, and no error
    assert node.release_resident_service_lease(lease.lease_id) == {"lease_id": lease.lease_id, "released": False}


def test_only_a_resident_service_can_be_leased(counter_node):
    node = counter_node
    quotes = node.create(QuoteService, QuoteServiceState("v", {"ACME": 1.0}))
    with pytest.raises(ServiceNotFoundError, match="not resident services"):
        node.lease_contract(QUOTES)
    with pytest.raises(ServiceNotFoundError, match="is not a resident service offering 'quotes'"):
        node.acquire_resident_service_lease(quotes.agent_id, "quotes")
    with pytest.raises(ServiceNotFoundError, match="offering 'other'"):
        node.acquire_resident_service_lease("service.counter", "other")
    with pytest.raises(ValueError, match="lease ttl"):
        node.acquire_resident_service_lease("service.counter", "counter", ttl=0)
    assert node.leases.count() == 0  # nothing half-granted


def test_a_paglet_leases_a_resident_from_its_worker(counter_node):
    node = counter_node
    lessee = node.create(rp.Lessee)
    since = last_seq(node)
    granted = lessee.send(Message("lease", {"ttl": 30}))
    assert (granted["agent_id"], granted["count"]) == ("service.counter", 6)
    assert no_event(node, "idle-park", "service.counter", since, within=1.5)
    assert lessee.send(Message("release", {"lease_id": granted["lease_id"]})) == "released"
    wait_event(node, "idle-park", "service.counter", since)


def test_an_eager_resident_starts_with_the_node_and_is_restarted_after_a_crash(make_node):
    node = make_node("alpha", resident_services=[rp.EagerCounter])
    agent_id = "service.eager-counter"
    assert is_active(node, agent_id)
    proxy = node.get_proxy_for(agent_id)
    before = proxy.send(rp.READ.to_message())
    since = last_seq(node)
    proxy.send_oneway(Message("crash"))
    restarting = wait_event(node, "service-restarting", agent_id, since)
    assert (restarting.data["attempt"], restarting.data["delay"]) == (1, 0.5)
    wait_event(node, "activate", agent_id, restarting.seq)
    after = node.require_contract(rp.COUNTER).call(rp.READ)
    assert after.pid != before["pid"]
    assert no_event(node, "idle-park", agent_id, since, within=1.0)  # idle_timeout 0: never


# -- declarations -------------------------------------------------------------------------------
def test_a_class_outside_the_module_policy_is_refused_and_not_imported(make_node, tmp_path: Path, monkeypatch):
    marker = tmp_path / "imported"
    package = tmp_path / "resident_elsewhere"
    package.mkdir()
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ForbiddenError, match="resident_elsewhere"):
        make_node("alpha", resident_services=[{"class": "resident_elsewhere:Service"}])
    assert not marker.exists() and "resident_elsewhere" not in sys.modules


def test_bad_declarations_name_the_entry_and_the_key(make_node):
    with pytest.raises(ValueError, match=r"#2, key 'lifecycle': must be 'lazy' or 'eager'"):
        make_node("alpha", resident_services=[COUNTER_TABLE, {**COUNTER_TABLE, "lifecycle": "sometimes"}])
    with pytest.raises(ValueError, match="declares no RESIDENT_SERVICE"):
        make_node("alpha", resident_services=["tests.resident_paglets:NotResident"])
    with pytest.raises(ValueError, match="a singleton service runs once per node"):
        make_node("alpha", resident_services=[COUNTER_TABLE, {**COUNTER_TABLE, "agent_id": "service.again"}])


# -- idle parking for every paglet ------------------------------------------------------------------
def test_an_idle_paglet_is_parked_and_its_proxy_wakes_it(node):
    napper = node.create(rp.Napper)
    first = napper.send(Message("hit"))
    since = last_seq(node)
    wait_event(node, "idle-park", napper.agent_id, since)
    assert not is_active(node, napper.agent_id)
    second = napper.send(Message("hit"))
    assert second["hits"] == 2 and len(second["pids"]) == 2 and second["pids"][0] == first["pids"][0]


def test_the_node_default_parks_paglets_that_have_no_timeout_of_their_own(make_node):
    node = make_node("alpha", idle_park=0.3)
    plain = node.create(rp.PlainNapper)
    awake = node.create(rp.Insomniac)
    since = last_seq(node)
    plain.send(Message("hit"))
    awake.send(Message("hit"))
    wait_event(node, "idle-park", plain.agent_id, since)
    assert no_event(node, "idle-park", awake.agent_id, since, within=1.0)
    assert plain.send(Message("hit")) == 2


def test_a_paglet_without_any_idle_timeout_stays_up(node):
    plain = node.create(rp.PlainNapper)
    since = last_seq(node)
    plain.send(Message("hit"))
    assert no_event(node, "idle-park", plain.agent_id, since, within=1.0)
    assert is_active(node, plain.agent_id)


def test_a_paglet_created_parked_starts_on_its_first_message(node):
    proxy = node.create_parked(rp.PlainNapper, rp.NapState(hits=41))
    assert not is_active(node, proxy.agent_id)
    assert proxy.send(Message("hit")) == 42
    assert is_active(node, proxy.agent_id)


# -- across node processes -------------------------------------------------------------------------------
def test_a_paglet_on_another_node_process_leases_a_mesh_resident(make_node, node_process):
    alpha = make_node("alpha", resident_services=[COUNTER_TABLE], mesh_gossip_interval=0.1)
    beta = node_process("beta", "--peer", alpha.address, *FAST)
    client = HostClient(timeout=10)
    wait_until(lambda: online_names(client, beta.address) >= {"alpha", "beta"}, 15, "beta to see alpha")
    lessee = client.create(beta.address, rp.Lessee)
    assert lessee.send(Message("lease-error")) == "ServiceNotFoundError"  # LOCAL: beta runs no counter
    since = last_seq(alpha)
    granted = lessee.send(Message("lease", {"scope": "mesh", "ttl": 30}))
    assert (granted["agent_id"], granted["count"]) == ("service.counter", 6)
    acquired = wait_event(alpha, "lease-acquired", "service.counter", since)
    assert acquired.data["lease_id"] == granted["lease_id"]
    assert no_event(alpha, "idle-park", "service.counter", since, within=1.5)
    lessee.send(Message("release", {"lease_id": granted["lease_id"]}))
    wait_event(alpha, "lease-released", "service.counter", since)
    wait_event(alpha, "idle-park", "service.counter", since)


def test_a_node_process_parks_idle_paglets_by_its_idle_park_option(node_process):
    beta = node_process("beta", "--idle-park", "0.3")
    client = HostClient(timeout=10)
    napper = client.create(beta.address, rp.PlainNapper)
    assert napper.send(Message("hit")) == 1
    wait_until(lambda: not client.info(beta.address, napper.agent_id)["active"], 15, "the idle paglet to be parked")
    assert napper.send(Message("hit")) == 2  # woken by its proxy, its state kept

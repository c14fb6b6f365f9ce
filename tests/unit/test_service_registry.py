"""The node's service registry on its own: bounds, ownership by node events, expiry, the hook."""

from __future__ import annotations

import time

import pytest

from paglets.core.errors import OverloadedError
from paglets.core.events import ContextEventLog
from paglets.core.runtime_values import ServiceScope
from paglets.node.services.registry import ServiceRegistry
from paglets.services.records import ServiceRecord


def record(agent_id: str, name: str, *, ttl: float | None = None, **fields) -> ServiceRecord:
    expires_at = None if ttl is None else time.time() + ttl
    return ServiceRecord(name, agent_id, "alpha", "tcp://127.0.0.1:1", expires_at=expires_at, **fields)


@pytest.fixture
def events() -> ContextEventLog:
    return ContextEventLog()


@pytest.fixture
def registry(events):
    registry = ServiceRegistry(events, "alpha", max_per_paglet=3, max_records=5)
    events.add_listener(registry.on_node_event)
    registry.start()
    yield registry
    registry.stop()


def kinds(events: ContextEventLog) -> list[tuple[str, str | None, str | None]]:
    return [(e.kind, e.agent_id, e.data.get("reason")) for e in events.events_since(0, 1000)]


def test_lookups_list_live_records_oldest_first_and_filter(registry):
    registry.put(record("a", "q", capabilities=("x",)))
    registry.put(record("b", "q", scope=ServiceScope.MESH))
    registry.put(record("a", "r"))
    assert [(r.agent_id, r.name) for r in registry.records("q")] == [("a", "q"), ("b", "q")]
    assert [r.agent_id for r in registry.records("q", "x")] == ["a"]
    assert [r.agent_id for r in registry.records("q", mesh_only=True)] == ["b"]
    assert len(registry.records()) == 3


def test_re_advertising_a_name_replaces_the_record(registry, events):
    registry.put(record("a", "q", metadata={"v": 1}))
    registry.put(record("a", "q", metadata={"v": 2}))
    assert [r.metadata for r in registry.records("q")] == [{"v": 2}] and registry.count() == 1
    assert kinds(events) == [("service-advertised", "a", None)] * 2


def test_bounds_per_paglet_and_per_node_refuse_and_keep_nothing_half_done(registry):
    for name in ("1", "2", "3"):
        registry.put(record("a", name))
    with pytest.raises(OverloadedError, match="paglet a advertises 3 services on node alpha; the limit is 3"):
        registry.put(record("a", "4"))
    registry.put(record("a", "3", metadata={"replaced": True}))  # a replacement is not a new record
    registry.put(record("b", "1"))
    registry.put(record("b", "2"))
    with pytest.raises(OverloadedError, match="node alpha holds 5 service records; the limit is 5"):
        registry.put(record("c", "1"))
    assert registry.count() == 5 and registry.records("4") == [] and registry.records(None, None) == registry.records()


def test_a_paglet_that_leaves_takes_its_records_along(registry, events):
    registry.max_records = 100
    for agent_id in ("gone", "moved", "crashed", "parked", "idle"):
        registry.put(record(agent_id, "q"))
    registry.put(record("crashed", "pinned"), pinned=True)
    registry.put(record("parked", "pinned"), pinned=True)
    events.emit("paglet-disposed", agent_id="gone")
    events.emit("paglet-dispatched", agent_id="moved", target="tcp://127.0.0.1:2")
    events.emit("paglet-crashed", agent_id="crashed", reason="test")
    events.emit("paglet-deactivated", agent_id="parked", reason="test")
    events.emit("paglet-deactivated", agent_id="idle", reason="idle", keep_services=True)
    left = sorted((r.agent_id, r.name) for r in registry.records())
    assert left == [("crashed", "pinned"), ("idle", "q"), ("parked", "pinned")]
    withdrawn = [(agent, reason) for kind, agent, reason in kinds(events) if kind == "service-withdrawn"]
    assert withdrawn == [("gone", "disposed"), ("moved", "moved"), ("crashed", "crashed"), ("parked", "parked")]


def test_an_expired_record_is_never_listed_and_is_removed_by_the_expiry_thread(registry, events):
    registry.put(record("a", "soon", ttl=0.2))
    registry.put(record("a", "later", ttl=60))
    since = events.last_seq
    expired = events.wait_for(lambda e: e.kind == "service-expired", timeout=10, since=since)
    assert expired is not None and expired.service_name == "soon"
    assert [r.name for r in registry.records()] == ["later"]


def test_a_lookup_that_meets_an_expired_record_removes_it(events):
    registry = ServiceRegistry(events, "alpha")  # no expiry thread
    registry.put(ServiceRecord("q", "a", "alpha", "tcp://127.0.0.1:1", expires_at=time.time() - 1))
    assert registry.records("q") == []
    assert registry.count() == 0 and kinds(events)[-1] == ("service-expired", "a", "ttl")


def test_replaced_records_leave_no_expiry_entries_piling_up(registry):
    for _ in range(500):
        registry.put(record("a", "q", ttl=3600))
    assert len(registry._expiries) <= 2 * registry.count() + 65


def test_listeners_hear_every_change(registry):
    heard = []
    registry.add_listener(lambda kind, rec, reason: heard.append((kind, rec.name, reason)))
    registry.put(record("a", "q"))
    registry.remove("a", "q")
    assert registry.remove("a", "q") is None
    registry.clear("node-stopped")
    assert heard == [("advertised", "q", "new"), ("withdrawn", "q", "unadvertised")]

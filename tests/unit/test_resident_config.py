"""Resident service declarations, specs, lease grants and the node's lease table (no node needed)."""

from __future__ import annotations

import time

import pytest

from paglets.core.errors import ForbiddenError, OverloadedError, SerializationError
from paglets.core.events import ContextEventLog
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.node.services.leases import LeaseTable
from paglets.node.services.residents import load_resident_class, resolve_resident_services
from paglets.services.resident import LeaseGrant, ResidentServiceSpec, default_agent_id
from paglets.services.resident_config import parse_resident_tables
from tests import resident_paglets as rp

COUNTER = "tests.resident_paglets:CounterService"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"class": COUNTER, "colour": "red"}, "#1, key 'colour': unknown key"),
        ({"agent_id": "x"}, "#1, key 'class': missing"),
        ({"class": "no-colon"}, "#1, key 'class'"),
        ({"class": "__main__:Thing"}, "#1, key 'class'"),
        ({"class": COUNTER, "idle_timeout": -1}, "#1, key 'idle_timeout': idle_timeout must not be negative"),
        ({"class": COUNTER, "idle_timeout": "soon"}, "key 'idle_timeout'"),
        ({"class": COUNTER, "scope": "galaxy"}, "key 'scope': must be 'local' or 'mesh'"),
        ({"class": COUNTER, "singleton": "yes"}, "key 'singleton': must be true or false"),
        ({"class": COUNTER, "state": [1, 2]}, "key 'state': must be a table"),
        ({"class": COUNTER, "agent_id": "has space"}, "key 'agent_id'"),
    ],
)
def test_a_bad_table_is_refused_naming_the_file_entry_and_key(table, message):
    with pytest.raises(ValueError, match=message) as raised:
        parse_resident_tables([table], "node.toml")
    assert str(raised.value).startswith("node.toml: [[resident_services]] #1")


def test_tables_must_be_an_array_of_tables():
    with pytest.raises(ValueError, match=r"must be an array of tables"):
        parse_resident_tables({"class": COUNTER}, "node.toml")


def test_a_table_lays_its_fields_over_the_class_spec():
    [spec] = resolve_resident_services(
        [{"class": COUNTER, "lifecycle": "eager", "scope": "local", "state": {"count": 3}}]
    )
    assert (spec.lifecycle, spec.scope, spec.idle_timeout) == (ResidentLifecycle.EAGER, ServiceScope.LOCAL, 0.5)
    assert spec.state == {"region": "eu", "count": 3}  # merged key by key
    assert spec.resolved_agent_id == "service.tests.resident_paglets.CounterService"
    assert spec.service_name == "counter"


def test_a_class_is_declared_by_its_own_attribute():
    [spec] = resolve_resident_services([rp.EagerCounter])
    assert (spec.resolved_agent_id, spec.lifecycle) == ("service.eager-counter", ResidentLifecycle.EAGER)


def test_the_module_policy_refuses_before_importing():
    with pytest.raises(ForbiddenError, match="not allowed"):
        load_resident_class("surely_not_a_module_here.inner:Service")


def test_a_spec_checks_its_fields():
    with pytest.raises(ValueError, match="must not be negative"):
        ResidentServiceSpec(rp.COUNTER, idle_timeout=-0.1)
    with pytest.raises(ValueError, match="must be 'lazy' or 'eager'"):
        ResidentServiceSpec(rp.COUNTER, lifecycle="sometimes")
    assert ResidentServiceSpec(rp.COUNTER, idle_timeout=0).idles is False
    assert len(default_agent_id("a.b:" + "C" * 300)) == 128


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"lease_id": "abc", "agent_id": "a", "service_name": "s"},  # no expiry
        {"lease_id": "not/alnum", "agent_id": "a", "service_name": "s", "expires_at": 1.0},
        {"lease_id": "abc", "agent_id": "bad id", "service_name": "s", "expires_at": 1.0},
        {"lease_id": "abc", "agent_id": "a", "service_name": "", "expires_at": 1.0},
        {"lease_id": "x" * 65, "agent_id": "a", "service_name": "s", "expires_at": 1.0},
    ],
)
def test_a_garbage_lease_grant_is_a_serialization_error(payload):
    with pytest.raises(SerializationError, match="lease grant"):
        LeaseGrant.from_wire(payload)


def test_the_lease_table_grants_releases_and_expires_with_events():
    events = ContextEventLog()
    table = LeaseTable(events, "alpha", max_leases=2)
    long = table.grant("service.a", "a", 60)
    short = table.grant("service.b", "b", 0.05)
    with pytest.raises(OverloadedError, match="the limit is 2"):
        table.grant("service.c", "c", 60)
    assert table.held() == {"service.a", "service.b"}
    time.sleep(0.06)  # past the short lease's expiry: time itself is what is tested here
    assert table.held() == {"service.a"}
    assert [e.data["lease_id"] for e in events.events_since(0) if e.kind == "lease-expired"] == [short.lease_id]
    assert table.release(long.lease_id) == long and table.release(long.lease_id) is None
    assert [e.kind for e in events.events_since(0)][-1] == "lease-released"
    with pytest.raises(ValueError, match="not a lease id"):
        table.release("../../etc")
    with pytest.raises(ValueError, match="lease ttl"):
        table.grant("service.a", "a", float("nan"))

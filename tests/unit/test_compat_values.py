"""Helpers of the public API that code written for the HTTP paglets API uses (issue 15), without a node."""

from __future__ import annotations

import pytest

from paglets.core.itinerary import (
    EXECUTE_ON_ARRIVAL,
    EXECUTE_ON_DISPATCH,
    ItineraryAgentMixin,
    ItineraryPlan,
    TaskItineraryPlan,
)
from paglets.core.runtime_values import ArrivalMode
from paglets.node.broker.mailbox import MailboxStatus
from paglets.node.flows.listing_fields import state_class_name
from paglets.persistence.storage import ManagedStorage
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.remote.transfer import TransferTicket
from paglets.wire import codec
from tests.compat_paglets import CounterState

HERE = "tcp://127.0.0.1:7700"
THERE = "tcp://127.0.0.1:7701"


# -- itineraries ---------------------------------------------------------------------------
def test_skip_next_passes_a_stop_without_visiting_it():
    plan = ItineraryPlan(["a", "b", "c"])
    assert plan.skip_next() == "a"
    assert plan.next_destination() == "b" and plan.visited_destinations == []
    assert plan.skip_next() == "b" and plan.skip_next() == "c"
    assert plan.completed and plan.skip_next() is None


def test_remove_destination_takes_the_next_unvisited_occurrence_only():
    plan = ItineraryPlan(["a", "b", "a"], current_index=1, visited_destinations=["a"])
    assert plan.remove_destination("a") is True
    assert plan.destinations == ["a", "b"] and plan.remaining_destinations() == ["b"]
    assert plan.remove_destination("a") is False  # the only "a" left was visited already
    assert plan.remove_destination("z") is False


class Surveyor(ItineraryAgentMixin):
    def __init__(self) -> None:
        self.state = type("S", (), {"itinerary": TaskItineraryPlan()})()
        self.calls: list[str] = []

    def measure(self, unit: str = "m") -> str:
        self.calls.append(f"measure {unit}")
        return unit

    def report(self) -> str:
        self.calls.append("report")
        return "ok"

    def pack(self) -> None:
        self.calls.append("pack")


def test_default_tasks_run_at_every_stop_after_the_stops_own():
    surveyor = Surveyor()
    plan = surveyor.itinerary()
    plan.add_task("beta", "measure", {"unit": "ft"})
    plan.add_default_task("report")
    plan.add_default_task("pack", execute=EXECUTE_ON_DISPATCH)
    assert plan.destinations == ["beta"]  # a default task adds no stop
    assert [t.method for t in plan.tasks_for_phase(EXECUTE_ON_ARRIVAL)] == ["measure", "report"]
    assert [t.method for t in plan.tasks_for_phase(EXECUTE_ON_ARRIVAL, "gamma")] == ["report"]
    assert [t.method for t in plan.tasks_for_phase(EXECUTE_ON_DISPATCH)] == ["pack"]
    plan.visited_destinations.append("beta")
    assert surveyor.run_arrival_tasks() == ["ft", "ok"]
    assert surveyor.calls == ["measure ft", "report"]
    with pytest.raises(ValueError, match="execute must be one of"):
        plan.tasks_for_phase("sometime")


def test_a_plan_with_default_tasks_travels_in_state():
    plan = TaskItineraryPlan(["beta"])
    plan.add_default_task("report")
    assert codec.decode(codec.encode(plan), expected=TaskItineraryPlan) == plan


# -- tickets, proxies, clients -------------------------------------------------------------
def test_a_ticket_from_a_target_takes_new_terms():
    ticket = TransferTicket.from_target("beta", timeout=3.0, arrival_mode=ArrivalMode.INACTIVE)
    assert (ticket.destination, ticket.timeout, ticket.arrival_mode) == ("beta", 3.0, ArrivalMode.INACTIVE)
    again = TransferTicket.from_target(ticket, retries=2)
    assert (again.destination, again.timeout, again.retries) == ("beta", 3.0, 2)
    assert TransferTicket.from_target(ticket.to_wire()) == ticket
    assert TransferTicket.from_target(ticket) is ticket
    with pytest.raises(ValueError, match="timeout must be positive"):
        TransferTicket.from_target("beta", timeout=0)


def test_a_host_client_takes_its_timeout_first_and_its_key_from_the_environment(monkeypatch):
    monkeypatch.delenv("PAGLETS_API_KEY", raising=False)
    assert HostClient(5.0).timeout == 5.0 and HostClient(5.0).api_key is None
    assert HostClient(timeout=7).timeout == 7 and HostClient(api_key="k").api_key == "k"
    assert HostClient("old-style-key").api_key == "old-style-key"
    monkeypatch.setenv("PAGLETS_API_KEY", "from-env")
    assert HostClient(5.0).api_key == "from-env"
    assert HostClient(5.0, "given").api_key == "given"
    assert HostClient(5.0, "").api_key == ""  # explicitly none: what the node and the CLI use
    with pytest.raises(ValueError, match="timeout must be positive"):
        HostClient(0)


def test_a_proxy_is_remote_from_other_nodes_only():
    proxy = PagletProxy(HERE + "/", "p1", HostClient(5.0))
    assert proxy.is_remote() is True
    assert proxy.is_remote(HERE) is False and proxy.is_remote(THERE) is True


# -- storage, mailbox counts, listings -------------------------------------------------------
def test_storage_status_counts_files_and_clear_empties_it(tmp_path):
    storage = ManagedStorage(tmp_path / "store", quota_bytes=100)
    assert storage.status()["file_count"] == 0 and storage.clear() == 0
    storage.write_bytes("a.bin", b"12345")
    storage.write_text("notes/b.txt", "hello")
    status = storage.status()
    assert status == {
        "root": str(tmp_path / "store"),
        "quota_bytes": 100,
        "used_bytes": 10,
        "free_bytes": 90,
        "file_count": 2,
    }
    assert storage.clear() == 2
    assert storage.names() == [] and storage.used_bytes() == 0
    assert not (tmp_path / "store" / "notes").exists()
    storage.write_text("again.txt", "x")  # still usable
    assert storage.names() == ["again.txt"]


def test_mailbox_counts_carry_the_count_names_too():
    wire = MailboxStatus(queued_count=2, in_flight_count=1, delivered_count=5, failed_count=0).to_wire()
    assert wire["queued"] == wire["queued_count"] == 2 and wire["delivered_count"] == 5
    assert MailboxStatus.from_wire(wire) == MailboxStatus(2, 1, 5, 0)


def test_the_state_class_of_an_encoded_state_is_read_without_decoding_it():
    assert state_class_name(codec.encode(CounterState(3))) == "tests.compat_paglets:CounterState"
    assert state_class_name(b"") == "" and state_class_name(codec.encode({"a": 1})) == ""

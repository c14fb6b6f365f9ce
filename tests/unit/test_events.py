"""Lifecycle events and the node's context event log."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import pytest

from paglets.core.errors import SerializationError
from paglets.core.events import (
    CloneEvent,
    ContextEvent,
    ContextEventLog,
    CreationEvent,
    MobilityEvent,
    PagletEvent,
    PersistencyEvent,
    event_from_wire,
)

pytestmark = pytest.mark.timeout(10)


# --- lifecycle events ----------------------------------------------------


def test_paglet_event_builds_positionally_and_stamps_the_time():
    before = time.time()
    event = PagletEvent("a1", "node-a", "tcp://a:1")
    after = time.time()
    assert (event.agent_id, event.host_name, event.host_address) == (
        "a1",
        "node-a",
        "tcp://a:1",
    )
    assert before <= event.timestamp <= after


def test_events_are_frozen():
    event = CreationEvent("a1", "node-a", "tcp://a:1", init={"x": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.agent_id = "other"  # type: ignore[misc]


def test_subclass_events_keep_positional_base_fields_and_keyword_extras():
    event = MobilityEvent(
        "a1",
        "node-a",
        "tcp://a:1",
        source_host_name="node-a",
        target_host_name="node-b",
        reason="dispatch",
    )
    assert event.agent_id == "a1"
    assert event.target_host_name == "node-b"
    assert event.source_host_address == ""
    assert isinstance(event, PagletEvent)


ALL_EVENTS = [
    PagletEvent("a1", "n", "tcp://n:1", timestamp=1.0),
    CreationEvent("a1", "n", "tcp://n:1", timestamp=2.0, init=[1, 2]),
    MobilityEvent(
        "a1",
        "n",
        "tcp://n:1",
        source_host_name="n",
        source_host_address="tcp://n:1",
        target_host_name="m",
        target_host_address="tcp://m:1",
        reason="go",
    ),
    CloneEvent(
        "a1",
        "n",
        "tcp://n:1",
        source_agent_id="a1",
        clone_agent_id="a2",
        source_host_name="n",
        target_host_name="m",
    ),
    PersistencyEvent("a1", "n", "tcp://n:1", reason="idle", request={"r": 1}, policy=None),
]


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_survives_a_wire_round_trip(event):
    wire = event.to_wire()
    assert wire["event"] == type(event).__name__
    again = event_from_wire(wire)
    assert type(again) is type(event)
    assert again == event


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"event": "Nope", "agent_id": "a"}, "unknown event"),
        ({"agent_id": "a"}, "unknown event"),
        ({"event": "PagletEvent", "agent_id": "a"}, "PagletEvent"),
        (
            {
                "event": "PagletEvent",
                "agent_id": 1,
                "host_name": "n",
                "host_address": "x",
            },
            "agent_id",
        ),
        (
            {
                "event": "PagletEvent",
                "agent_id": "a",
                "host_name": "n",
                "host_address": "x",
                "bogus": 1,
            },
            "bogus",
        ),
        (
            {
                "event": "PagletEvent",
                "agent_id": "a",
                "host_name": "n",
                "host_address": "x",
                "timestamp": "now",
            },
            "timestamp",
        ),
        ("not a dict", "dict"),
    ],
)
def test_malformed_event_payloads_raise_serialization_error(payload, match):
    with pytest.raises(SerializationError, match=match):
        event_from_wire(payload)


# --- ContextEvent --------------------------------------------------------


def test_context_event_wire_round_trip():
    event = ContextEvent(3, "created", 1.5, "a1", {"cls": "Demo"})
    assert ContextEvent.from_wire(event.to_wire()) == event


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "k", "timestamp": 1.0}, "seq"),
        ({"seq": "1", "kind": "k", "timestamp": 1.0}, "seq"),
        ({"seq": 1, "kind": 2, "timestamp": 1.0}, "kind"),
        ({"seq": 1, "kind": "k", "timestamp": None}, "timestamp"),
        ({"seq": 1, "kind": "k", "timestamp": 1.0, "agent_id": 5}, "agent_id"),
        ({"seq": 1, "kind": "k", "timestamp": 1.0, "data": []}, "data"),
    ],
)
def test_malformed_context_event_payload_names_the_field(payload, field):
    with pytest.raises(SerializationError, match=field):
        ContextEvent.from_wire(payload)


# --- ContextEventLog -----------------------------------------------------


def test_emit_numbers_events_from_one_and_keeps_data():
    log = ContextEventLog()
    first = log.emit("created", agent_id="a1", cls="Demo")
    second = log.emit("disposed")
    assert (first.seq, second.seq) == (1, 2)
    assert first.data == {"cls": "Demo"}
    assert first.agent_id == "a1"
    assert log.last_seq == 2


def test_events_since_returns_newer_events_oldest_first_up_to_limit():
    log = ContextEventLog()
    for index in range(5):
        log.emit("tick", n=index)
    assert [e.seq for e in log.events_since()] == [1, 2, 3, 4, 5]
    assert [e.seq for e in log.events_since(2)] == [3, 4, 5]
    assert [e.seq for e in log.events_since(1, limit=2)] == [2, 3]
    assert log.events_since(5) == []


def test_ring_drops_the_oldest_events_past_its_limit():
    log = ContextEventLog(limit=3)
    for _ in range(5):
        log.emit("tick")
    assert len(log) == 3
    assert [e.seq for e in log.events_since(0)] == [3, 4, 5]
    assert [e.seq for e in log.events_since(4)] == [5]


def test_listeners_see_each_event_until_removed():
    log = ContextEventLog()
    seen: list[ContextEvent] = []
    log.add_listener(seen.append)
    event = log.emit("created")
    log.remove_listener(seen.append)
    log.emit("ignored")
    assert seen == [event]


def test_failing_listener_is_logged_and_does_not_break_emit(caplog):
    log = ContextEventLog()
    seen: list[int] = []

    def broken(_event: ContextEvent) -> None:
        raise RuntimeError("listener bug")

    log.add_listener(broken)
    log.add_listener(lambda event: seen.append(event.seq))
    with caplog.at_level(logging.ERROR, logger="paglets.events"):
        event = log.emit("created")
    assert event.seq == 1
    assert seen == [1, 2]  # the other listener saw the event, then the listener-failed event about it
    assert "listener bug" in caplog.text
    failed = log.events_since(1)[0]
    assert failed.kind == "listener-failed" and failed.details["failed_event_id"] == 1
    assert failed.error == "RuntimeError: listener bug"


def test_listener_may_emit_without_deadlock():
    log = ContextEventLog()

    def echo(event: ContextEvent) -> None:
        if event.kind == "ping":
            log.emit("pong")

    log.add_listener(echo)
    log.emit("ping")
    assert [e.kind for e in log.events_since()] == ["ping", "pong"]


def test_wait_for_returns_an_event_emitted_by_another_thread():
    log = ContextEventLog()
    log.emit("arrived", agent_id="old")
    since = log.last_seq  # the thread may emit before wait_for starts: count from here, not from the call

    def emitter() -> None:
        log.emit("noise")
        log.emit("arrived", agent_id="a1")

    thread = threading.Thread(target=emitter)
    thread.start()
    event = log.wait_for(lambda e: e.kind == "arrived", timeout=5, since=since)
    thread.join(5)
    assert not thread.is_alive()
    assert event is not None
    assert event.agent_id == "a1"


def test_wait_for_with_since_finds_events_already_recorded():
    log = ContextEventLog()
    log.emit("arrived", agent_id="a1")
    log.emit("other")
    event = log.wait_for(lambda e: e.kind == "arrived", timeout=0.02, since=0)
    assert event is not None and event.seq == 1
    assert log.wait_for(lambda e: e.kind == "arrived", timeout=0.02, since=1) is None


def test_wait_for_ignores_earlier_events_without_since_and_times_out():
    log = ContextEventLog()
    log.emit("arrived")
    assert log.wait_for(lambda e: e.kind == "arrived", timeout=0.02) is None


def test_log_limit_must_be_positive():
    with pytest.raises(ValueError):
        ContextEventLog(limit=0)

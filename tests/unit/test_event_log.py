"""The node's event log as its readers see it: fields, kinds and old names, filters, cursors, failing listeners."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from paglets.core.errors import ProtocolError, SerializationError
from paglets.core.event_kinds import EVENT_KINDS, KIND_ALIASES, canonical_kind, kind_matches
from paglets.core.events import ContextEvent, ContextEventLog
from paglets.node.broker.stats import FailureNotes, LoopHistogram
from paglets.node.observe.feed import MAX_LIMIT, MAX_WAIT, EventFeed, check_query

pytestmark = pytest.mark.timeout(10)


def test_an_event_carries_its_fields_and_details():
    log = ContextEventLog(host_name="alpha")
    event = log.emit("message-failed", "a1", class_name="m:Cls", message_id="m-1", error="ValueError: no", count=1)
    assert (event.event_id, event.seq, event.kind, event.host_name) == (1, 1, "message-failed", "alpha")
    assert (event.agent_id, event.class_name, event.message_id, event.error) == ("a1", "m:Cls", "m-1", "ValueError: no")
    assert event.service_name is None
    assert event.details == {"count": 1} and event.data is event.details
    assert ContextEvent.from_wire(event.to_wire()) == event


def test_from_wire_takes_the_older_seq_and_data_form():
    event = ContextEvent.from_wire({"seq": 4, "kind": "create", "timestamp": 2.0, "data": {"hook": "x"}})
    assert (event.event_id, event.details) == (4, {"hook": "x"})
    with pytest.raises(SerializationError, match="class_name"):
        ContextEvent.from_wire({"event_id": 1, "kind": "k", "timestamp": 1.0, "class_name": 3})


def test_the_class_of_an_agent_is_named_by_later_events_about_it():
    log = ContextEventLog()
    log.emit("create", "a1", class_name="m:Cls")
    assert log.emit("crash", "a1", error="killed").class_name == "m:Cls"
    assert log.emit("crash", "a2").class_name is None


def test_details_are_kept_plain_and_bounded():
    log = ContextEventLog()
    event = log.emit("x", path=object, long="y" * 5000, items=list(range(100)), error=ValueError("bad"))
    assert event.details["path"] == str(object)
    assert len(event.details["long"]) == 1000 and len(event.details["items"]) == 32
    assert event.error == "bad"


def test_every_old_name_maps_to_documented_kinds():
    for old, kinds in KIND_ALIASES.items():
        assert kinds and all(kind in EVENT_KINDS for kind in kinds), old
        assert canonical_kind(old) == kinds[0]
    assert kind_matches("retract", "paglet-dispatched") and kind_matches("dispatch", "paglet-dispatched")
    assert not kind_matches("dispatch", "paglet-arrived")


def test_emitting_an_old_name_records_the_new_kind_and_old_names_still_filter():
    log = ContextEventLog()
    log.emit("paglet-created", "a1", class_name="m:C")
    log.emit("retract", "a1")
    log.emit("dispatch", "a2")
    assert [e.kind for e in log.events_since()] == ["create", "retract", "dispatch"]
    assert [e.agent_id for e in log.events_since(kind="paglet-dispatched")] == ["a1", "a2"]
    assert [e.kind for e in log.events_since(kind="create")] == ["create"]
    assert [e.kind for e in log.events_since(agent_id="a1")] == ["create", "retract"]
    assert [e.kind for e in log.events_since(agent_id="a1", limit=1)] == ["create"]
    assert log.wait_for(timeout=0.01, since=0, kind="paglet-created").agent_id == "a1"
    assert log.wait_for(timeout=0.01, since=0, kind="dispatch", agent_id="a1") is None


def test_a_listener_failing_on_its_own_failure_event_is_not_reported_again():
    log = ContextEventLog()

    def always_fails(_event):
        raise KeyError("nope")

    log.add_listener(always_fails)
    log.emit("create", "a1")
    assert [e.kind for e in log.events_since()] == ["create", "listener-failed"]


def test_read_returns_a_cursor_past_what_it_looked_at():
    log = ContextEventLog()
    for index in range(5):
        log.emit("tick", f"a{index % 2}")
    found, cursor = log.read(0, 10, agent_id="a1")
    assert [e.event_id for e in found] == [2, 4] and cursor == 5
    found, cursor = log.read(0, 1, agent_id="a1")
    assert [e.event_id for e in found] == [2] and cursor == 2
    assert log.read(5, 10) == ([], 5)


def test_read_waits_for_news_and_a_stop_ends_the_wait():
    log = ContextEventLog()
    log.emit("tick")
    started = threading.Event()
    result: list = []
    stop = threading.Event()

    def reader() -> None:
        started.set()
        result.append(log.read(1, 10, timeout=5, stop=stop.is_set))

    thread = threading.Thread(target=reader)
    thread.start()
    started.wait(5)
    stop.set()
    log.wake()
    thread.join(5)
    assert not thread.is_alive() and result == [([], 1)]
    found, _ = log.read(1, 10, timeout=0.01)
    assert found == []


def test_resume_point_starts_over_when_since_is_beyond_the_newest_event():
    log = ContextEventLog()
    log.emit("tick")
    assert log.resume_point(1) == 1
    assert log.resume_point(99) == 0


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"since": -1}, "since"),
        ({"since": "5"}, "since"),
        ({"since": True}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": MAX_LIMIT + 1}, "limit"),
        ({"agent_id": "../x"}, "agent"),
        ({"kind": "Crash!"}, "kind"),
        ({"wait": -1}, "wait"),
        ({"wait": float("nan")}, "wait"),
        ({"wait": MAX_WAIT + 1}, "wait"),
    ],
)
def test_a_bad_events_query_is_refused_naming_the_field(values, field):
    with pytest.raises(ProtocolError, match=field):
        check_query(**values)


def test_a_waiting_read_is_answered_when_an_event_comes():
    log = ContextEventLog()
    feed = EventFeed(log, max_waiters=1)
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(feed.read(check_query(since=0, wait=MAX_WAIT))))
    thread.start()
    log.emit("tick")
    thread.join(5)
    assert not thread.is_alive()
    assert [e["kind"] for e in answers[0]["events"]] == ["tick"] and not answers[0]["busy"]


def test_the_feed_answers_a_wait_beyond_its_waiters_at_once_marked_busy():
    log = ContextEventLog()
    feed = EventFeed(log, max_waiters=1)
    assert feed._waiters.acquire(blocking=False)  # one read is waiting
    answer = feed.read(check_query(since=0, wait=MAX_WAIT))
    assert answer["busy"] and answer["events"] == [] and answer["next"] == 0


def test_loop_histogram_counts_values_into_their_buckets():
    histogram = LoopHistogram((0.001, 0.01))
    histogram.observe(0.001)
    histogram.observe(0.005, 3)
    histogram.observe(7.0)
    assert histogram.snapshot() == {"bounds": [0.001, 0.01], "counts": [1, 3, 1], "sum": pytest.approx(7.016)}


def test_failure_notes_are_bounded_per_window_and_count_the_rest():
    notes = FailureNotes(per_window=2, window=3600)
    for index in range(5):
        notes.note("a1", "m:C", f"m{index}", "ValueError: x", 1)
    taken, suppressed = notes.take()
    assert [note.message_id for note in taken] == ["m0", "m1"] and suppressed == 3
    notes.note("a1", "m:C", "m9", "ValueError: x", 4)
    assert notes.take() == ([], 4)


def test_every_kind_and_old_name_is_documented_in_operations_md():
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for kind, meaning in EVENT_KINDS.items():
        assert f"| `{kind}` | {meaning} |" in text, kind
    for old in KIND_ALIASES:
        assert f"`{old}`" in text, old

"""Messages, future replies and reply sets."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from paglets.core import messages as m
from paglets.core.errors import RequestTimeoutError, SerializationError
from paglets.core.messages import FutureReply, Message, ReplySet

pytestmark = pytest.mark.timeout(10)


# --- Message -------------------------------------------------------------


def test_runtime_priorities_sit_above_every_author_priority():
    author = [m.UNQUEUED_PRIORITY, m.MIN_PRIORITY, m.NORMAL_PRIORITY, m.MAX_PRIORITY]
    runtime = [m.REENTRANT_PRIORITY, m.REQUEST_PRIORITY, m.SYSTEM_PRIORITY]
    assert author == sorted(author)
    assert min(runtime) > max(author)
    assert (m.SYNCHRONOUS, m.FUTURE, m.ONEWAY) == (0, 1, 2)


def test_new_message_gets_defaults_timestamp_and_unique_id():
    before = time.time()
    first = Message("ping")
    second = Message("ping")
    after = time.time()
    assert first.args == {}
    assert first.priority == m.NORMAL_PRIORITY
    assert first.message_type == m.SYNCHRONOUS
    assert before <= first.timestamp <= after
    assert first.message_id != second.message_id


def test_get_arg_without_name_returns_the_single_arg_and_named_args_use_defaults():
    msg = Message("add", args={"x": 1}, arg="solo")
    assert msg.get_arg() == "solo"
    assert msg.get_arg("x") == 1
    assert msg.get_arg("missing", default=7) == 7
    msg.set_arg("y", 2)
    assert msg.get_arg("y") == 2


def test_message_does_not_share_the_callers_args_dict():
    args = {"x": 1}
    msg = Message("add", args=args)
    msg.set_arg("x", 2)
    assert args == {"x": 1}


def test_same_kind_accepts_a_message_or_a_kind_name():
    msg = Message("ping")
    assert msg.same_kind("ping")
    assert msg.same_kind(Message("ping"))
    assert not msg.same_kind("pong")


def test_priority_steps_stay_within_author_range():
    msg = Message("p", priority=m.MAX_PRIORITY)
    msg.increase_priority()
    assert msg.priority == m.MAX_PRIORITY
    msg = Message("p", priority=m.MIN_PRIORITY)
    msg.decrease_priority()
    assert msg.priority == m.MIN_PRIORITY
    msg = Message("p")
    msg.increase_priority()
    assert msg.priority == m.NORMAL_PRIORITY + 1
    msg.decrease_priority()
    msg.decrease_priority()
    assert msg.priority == m.NORMAL_PRIORITY - 1


def test_priority_steps_never_reach_the_runtime_range():
    msg = Message("p", priority=m.SYSTEM_PRIORITY)
    msg.increase_priority()
    assert msg.priority == m.MAX_PRIORITY


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"kind": ""}, ValueError),
        ({"kind": 3}, TypeError),
        ({"kind": "k", "args": ["x"]}, TypeError),
        ({"kind": "k", "args": {1: "x"}}, TypeError),
        ({"kind": "k", "priority": 14}, ValueError),
        ({"kind": "k", "priority": -1}, ValueError),
        ({"kind": "k", "priority": "5"}, TypeError),
        ({"kind": "k", "priority": True}, TypeError),
        ({"kind": "k", "message_type": 3}, ValueError),
        ({"kind": "k", "sender": 5}, TypeError),
    ],
)
def test_invalid_message_fields_are_refused(kwargs, error):
    with pytest.raises(error):
        Message(**kwargs)


def test_wire_round_trip_keeps_every_field_and_equality():
    msg = Message(
        "work",
        args={"n": 3},
        arg=[1, 2],
        sender="a1",
        reply_to="tcp://x:1",
        priority=m.REQUEST_PRIORITY,
        message_type=m.FUTURE,
        timestamp=12.5,
        message_id="abc",
    )
    wire = msg.to_wire()
    assert set(wire) == {
        "kind",
        "args",
        "arg",
        "sender",
        "reply_to",
        "priority",
        "message_type",
        "timestamp",
        "message_id",
    }
    again = Message.from_wire(wire)
    assert again == msg
    assert again is not msg
    assert again.to_wire() == wire


def test_messages_differ_when_wire_content_differs():
    msg = Message("a", message_id="1", timestamp=1.0)
    other = Message("a", message_id="2", timestamp=1.0)
    assert msg != other
    assert "kind='a'" in repr(msg)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "kind"),
        ({"kind": 5}, "kind"),
        ({"kind": ""}, "kind"),
        ({"kind": "k", "args": "x"}, "args"),
        ({"kind": "k", "priority": "high"}, "priority"),
        ({"kind": "k", "priority": 99}, "priority"),
        ({"kind": "k", "message_type": 9}, "message_type"),
        ({"kind": "k", "timestamp": "now"}, "timestamp"),
        ({"kind": "k", "message_id": 4}, "message_id"),
        ({"kind": "k", "sender": ["a"]}, "sender"),
    ],
)
def test_malformed_wire_payload_raises_serialization_error_naming_the_field(payload, field):
    with pytest.raises(SerializationError, match=field):
        Message.from_wire(payload)


def test_non_dict_wire_payload_is_refused():
    with pytest.raises(SerializationError):
        Message.from_wire(["kind", "x"])


# --- FutureReply ---------------------------------------------------------


def _resolve_later(future: Future, value=None, exc: BaseException | None = None) -> threading.Thread:
    def run() -> None:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_future_reply_delivers_a_value_resolved_from_another_thread():
    reply = FutureReply()
    assert not reply.is_available()
    thread = _resolve_later(reply.future, 42)
    assert reply.get_reply(timeout=5) == 42
    thread.join(5)
    assert reply.is_available()


def test_get_reply_reraises_the_handlers_original_error():
    class HandlerFailed(Exception):
        pass

    original = HandlerFailed("boom")
    reply = FutureReply.failed(original)
    with pytest.raises(HandlerFailed) as info:
        reply.get_reply(timeout=1)
    assert info.value is original


def test_handler_timeout_error_is_not_mistaken_for_a_reply_timeout():
    reply = FutureReply.failed(TimeoutError("handler's own"))
    with pytest.raises(TimeoutError, match="handler's own") as info:
        reply.get_reply(timeout=1)
    assert not isinstance(info.value, RequestTimeoutError)


def test_get_reply_times_out_with_request_timeout_error():
    reply = FutureReply()
    with pytest.raises(RequestTimeoutError, match=r"not available within 0\.02 s"):
        reply.get_reply(timeout=0.02)
    assert not reply.wait_for_reply(timeout=0.01)


def test_resolved_reply_is_available_at_once():
    reply = FutureReply.resolved("done")
    assert reply.is_available()
    assert reply.wait_for_reply(0)
    assert reply.get_reply() == "done"


@pytest.mark.parametrize(
    ("value", "method", "expected"),
    [
        (True, "get_boolean_reply", True),
        ("false", "get_boolean_reply", False),
        (1, "get_boolean_reply", True),
        (7, "get_int_reply", 7),
        ("12", "get_int_reply", 12),
        (3.0, "get_int_reply", 3),
        (2, "get_float_reply", 2.0),
        ("2.5", "get_float_reply", 2.5),
        ("text", "get_string_reply", "text"),
        (b"bytes", "get_string_reply", "bytes"),
        (5, "get_string_reply", "5"),
    ],
)
def test_typed_reply_getters_convert_compatible_values(value, method, expected):
    result = getattr(FutureReply.resolved(value), method)(timeout=1)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "method"),
    [
        ("abc", "get_int_reply"),
        (2.5, "get_int_reply"),
        (True, "get_int_reply"),
        (None, "get_int_reply"),
        ("x", "get_float_reply"),
        ("maybe", "get_boolean_reply"),
        (2, "get_boolean_reply"),
        ({"a": 1}, "get_string_reply"),
        (b"\xff", "get_string_reply"),
    ],
)
def test_typed_reply_getters_refuse_values_they_cannot_convert(value, method):
    with pytest.raises(TypeError, match="not convertible"):
        getattr(FutureReply.resolved(value), method)(timeout=1)


def test_done_callback_receives_the_future_reply():
    reply = FutureReply()
    seen: list[FutureReply] = []
    reply.add_done_callback(seen.append)
    assert seen == []
    reply.future.set_result(1)
    assert seen == [reply]


# --- ReplySet ------------------------------------------------------------


def _resolve_in_order(futures: list[Future], order: list[int], start: threading.Event):
    def run() -> None:
        start.wait(5)
        for index in order:
            futures[index].set_result(index)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_reply_set_iterates_in_completion_order_from_other_threads():
    replies = [FutureReply() for _ in range(3)]
    reply_set = ReplySet(replies)
    start = threading.Event()
    thread = _resolve_in_order([r.future for r in replies], [2, 0, 1], start)
    start.set()
    values = [reply.get_reply(0) for reply in reply_set.iter_completed(timeout=5)]
    thread.join(5)
    assert values == [2, 0, 1]
    assert not reply_set.has_more_future_replies()


def test_reply_set_counts_available_and_unavailable_replies():
    pending = FutureReply()
    reply_set = ReplySet([FutureReply.resolved(1), pending])
    assert len(reply_set) == 2
    assert reply_set.count_available() == 1
    assert reply_set.count_unavailable() == 1
    assert reply_set.is_any_available()
    assert not reply_set.are_all_available()
    assert not reply_set.wait_for_all_replies(timeout=0.02)
    pending.future.set_result(2)
    assert reply_set.are_all_available()
    assert reply_set.wait_for_all_replies(timeout=1)


def test_wait_for_all_replies_wakes_when_the_last_reply_arrives():
    replies = [FutureReply(), FutureReply()]
    reply_set = ReplySet(replies)
    start = threading.Event()
    thread = _resolve_in_order([r.future for r in replies], [1, 0], start)
    start.set()
    assert reply_set.wait_for_all_replies(timeout=5)
    thread.join(5)


def test_get_next_future_reply_hands_each_completed_reply_out_once():
    first, second = FutureReply(), FutureReply()
    reply_set = ReplySet()
    reply_set.add_future_reply(first)
    reply_set.add_future_reply(second)
    assert reply_set.get_next_future_reply(timeout=0.02) is None
    second.future.set_result("b")
    assert reply_set.wait_for_next_future_reply(timeout=1)
    assert reply_set.get_next_future_reply(timeout=1) is second
    assert reply_set.has_more_future_replies()
    assert not reply_set.wait_for_next_future_reply(timeout=0.02)
    first.future.set_result("a")
    assert reply_set.get_next_future_reply(timeout=1) is first
    assert not reply_set.has_more_future_replies()


def test_no_reply_left_returns_none_at_once_even_without_timeout():
    reply_set = ReplySet([FutureReply.resolved(1)])
    assert reply_set.get_next_future_reply() is not None
    assert reply_set.get_next_future_reply() is None
    assert not reply_set.wait_for_next_future_reply()
    assert list(reply_set) == []


def test_iteration_with_deadline_raises_request_timeout_for_missing_replies():
    reply_set = ReplySet([FutureReply.resolved(1), FutureReply()])
    iterator = reply_set.iter_completed(timeout=0.05)
    assert next(iterator).get_reply() == 1
    with pytest.raises(RequestTimeoutError, match="1 replies"):
        next(iterator)


def test_plain_iteration_yields_all_replies_including_failed_ones():
    reply_set = ReplySet([FutureReply.failed(ValueError("x")), FutureReply.resolved(2)])
    replies = list(reply_set)
    assert len(replies) == 2
    assert all(reply.is_available() for reply in replies)


def test_reply_set_refuses_non_future_replies():
    with pytest.raises(TypeError):
        ReplySet([Future()])  # type: ignore[list-item]

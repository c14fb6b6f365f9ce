"""The mailbox ordering core."""

from __future__ import annotations

import pytest

from paglets.core.errors import SerializationError
from paglets.node.broker.mailbox import MailboxQueue, MailboxStatus

pytestmark = pytest.mark.timeout(10)


def _filled(*pairs: tuple[int, str]) -> MailboxQueue[str]:
    queue: MailboxQueue[str] = MailboxQueue()
    for priority, item in pairs:
        queue.push(priority, item)
    return queue


def test_higher_priority_leaves_first_and_equal_priority_keeps_arrival_order():
    queue = _filled((5, "a"), (10, "b"), (5, "c"), (1, "d"), (10, "e"), (5, "f"))
    assert [queue.pop() for _ in range(len(queue))] == ["b", "e", "a", "c", "f", "d"]


def test_pop_on_empty_queue_raises_index_error():
    queue: MailboxQueue[str] = MailboxQueue()
    with pytest.raises(IndexError):
        queue.pop()


def test_peek_priority_shows_the_next_priority_without_removing():
    queue = _filled((3, "a"), (7, "b"))
    assert queue.peek_priority() == 7
    assert len(queue) == 2
    queue.pop()
    assert queue.peek_priority() == 3
    queue.pop()
    assert queue.peek_priority() is None


def test_peek_shows_the_next_item_without_removing_it():
    queue = _filled((3, "a"), (7, "b"), (7, "c"))
    assert (queue.peek(), len(queue)) == ("b", 3)
    assert queue.pop() == "b" and queue.peek() == "c"
    queue.pop()
    queue.pop()
    with pytest.raises(IndexError):
        queue.peek()


def test_queue_truthiness_follows_its_length():
    queue: MailboxQueue[str] = MailboxQueue()
    assert not queue and len(queue) == 0
    queue.push(5, "x")
    assert queue and len(queue) == 1


def test_items_are_never_compared_so_unorderable_items_are_fine():
    queue: MailboxQueue[dict] = MailboxQueue()
    queue.push(5, {"n": 1})
    queue.push(5, {"n": 2})
    assert queue.pop() == {"n": 1}


def test_drain_returns_everything_in_delivery_order_and_empties():
    queue = _filled((1, "low"), (9, "high"), (5, "mid-1"), (5, "mid-2"))
    assert queue.drain() == ["high", "mid-1", "mid-2", "low"]
    assert not queue


def test_remove_if_takes_matching_items_and_keeps_the_rest_in_order():
    queue = _filled((5, "keep-1"), (9, "drop-1"), (5, "drop-2"), (1, "keep-2"), (9, "keep-0"))
    removed = queue.remove_if(lambda item: item.startswith("drop"))
    assert removed == ["drop-1", "drop-2"]
    assert queue.drain() == ["keep-0", "keep-1", "keep-2"]


def test_remove_if_with_no_match_leaves_the_queue_alone():
    queue = _filled((5, "a"), (6, "b"))
    assert queue.remove_if(lambda item: False) == []
    assert queue.drain() == ["b", "a"]


def test_pushes_after_pops_keep_fifo_within_a_priority():
    queue = _filled((5, "a"), (5, "b"))
    assert queue.pop() == "a"
    queue.push(5, "c")
    queue.push(6, "urgent")
    assert queue.drain() == ["urgent", "b", "c"]


def test_mailbox_status_wire_uses_short_keys_and_the_field_names_and_round_trips():
    status = MailboxStatus(queued_count=3, in_flight_count=1, delivered_count=10, failed_count=2)
    wire = status.to_wire()
    assert wire == {
        "queued": 3, "in_flight": 1, "delivered": 10, "failed": 2,
        "queued_count": 3, "in_flight_count": 1, "delivered_count": 10, "failed_count": 2,
    }  # fmt: skip
    assert MailboxStatus.from_wire(wire) == status
    assert MailboxStatus.from_wire({"queued": 3, "in_flight": 1, "delivered": 10, "failed": 2}) == status


@pytest.mark.parametrize(
    "payload",
    [
        {"queued": 1, "in_flight": 0, "delivered": 0},
        {"queued": -1, "in_flight": 0, "delivered": 0, "failed": 0},
        {"queued": "1", "in_flight": 0, "delivered": 0, "failed": 0},
        [1, 2, 3, 4],
    ],
)
def test_malformed_mailbox_status_is_refused(payload):
    with pytest.raises(SerializationError):
        MailboxStatus.from_wire(payload)

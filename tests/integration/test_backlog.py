"""Oneway backlogs: a busy paglet's queued oneway mail reaches its handler in batches.

Each test blocks the paglet's only handler with ``hold`` so that the oneway
messages sent after it pile up in the mailbox; an unqueued ``open`` then
releases the handler, which the node feeds from the backlog several
messages at a time.
"""

from __future__ import annotations

import pytest

from paglets.core.agent import INACTIVE
from paglets.core.messages import UNQUEUED_PRIORITY, Message
from paglets.remote.proxy import PagletProxy
from tests import sample_paglets as sp
from tests.conftest import wait_until

NOTES = 300


def hold(proxy: PagletProxy) -> None:
    """Occupy the paglet's only handler until :func:`release`."""
    proxy.send_oneway("hold")
    wait_until(lambda: proxy.mailbox_status()["in_flight"] == 1, 5, "the handler to be held")


def release(proxy: PagletProxy) -> None:
    assert proxy.send(Message("open", priority=UNQUEUED_PRIORITY)) is True


def seen(node, agent_id: str) -> list[list]:
    return node.get_state(agent_id, sp.BacklogState).seen


def test_a_oneway_backlog_is_handled_in_order_and_counted(node):
    proxy = node.create(sp.BacklogPaglet)
    hold(proxy)
    failing = {50, 51, 199}
    for i in range(NOTES):
        proxy.send_oneway(Message("boom" if i in failing else "note", arg=i))
    node.client.flush(node.address, 10)
    assert proxy.mailbox_status()["queued"] == NOTES
    release(proxy)
    expected = [[i, "alpha"] for i in range(NOTES) if i not in failing]
    wait_until(lambda: len(seen(node, proxy.agent_id)) == len(expected), 10, "the backlog to be handled")
    assert seen(node, proxy.agent_id) == expected
    delivered = NOTES - len(failing) + 2  # and hold and open
    assert proxy.mailbox_status() == {"queued": 0, "in_flight": 0, "delivered": delivered, "failed": len(failing)}


def test_a_oneway_backlog_leaves_by_priority_then_arrival(node):
    proxy = node.create(sp.BacklogPaglet)
    hold(proxy)
    plan = [("low-a", 2), ("high-a", 9), ("mid", 5), ("high-b", 9), ("low-b", 2), ("mid-b", 5)]
    for name, priority in plan:
        proxy.send_oneway(Message("note", arg=name, priority=priority))
    node.client.flush(node.address, 10)
    release(proxy)
    wait_until(lambda: len(seen(node, proxy.agent_id)) == len(plan), 10, "the backlog to be handled")
    order = [arg for arg, _ in seen(node, proxy.agent_id)]
    assert order == ["high-a", "high-b", "mid", "mid-b", "low-a", "low-b"]


def queue_behind_a_second_hold(proxy: PagletProxy) -> None:
    """Held handler; queued behind it: note 0, a second hold, notes 1-9; then release the first hold."""
    hold(proxy)
    proxy.send_oneway(Message("note", arg=0))
    proxy.send_oneway(Message("hold", arg=2))
    for i in range(1, 10):
        proxy.send_oneway(Message("note", arg=i))
    release(proxy)


@pytest.mark.parametrize(
    ("cls", "wanted"),
    [
        # note 0, the second hold and notes 1-9 went to the handler together; the hold
        # blocks it, and the batch counts as in flight until its one reply
        (sp.BacklogPaglet, {"queued": 0, "in_flight": 11, "delivered": 2, "failed": 0}),
        # MAILBOX_BATCH = 1: note 0 ran alone, the second hold is alone in the handler
        (sp.StrictBacklogPaglet, {"queued": 9, "in_flight": 1, "delivered": 3, "failed": 0}),
    ],
    ids=["batch", "mailbox-batch-1"],
)
def test_what_a_handler_holds_of_a_oneway_backlog(node, cls, wanted):
    proxy = node.create(cls)
    queue_behind_a_second_hold(proxy)
    wait_until(lambda: proxy.mailbox_status() == wanted, 10, f"the mailbox to read {wanted}")
    release(proxy)
    wait_until(lambda: len(seen(node, proxy.agent_id)) == 10, 10, "the notes to be handled")
    assert [arg for arg, _ in seen(node, proxy.agent_id)] == list(range(10))


def test_mail_queued_behind_a_self_dispatch_moves_with_the_paglet(make_node):
    alpha, beta = make_node("alpha"), make_node("beta")
    proxy = alpha.create(sp.BacklogPaglet)
    hold(proxy)
    proxy.send_oneway(Message("go", arg=beta.address))
    for i in range(NOTES):
        proxy.send_oneway(Message("note", arg=i))
    alpha.client.flush(alpha.address, 10)
    release(proxy)
    wait_until(lambda: proxy.agent_id in beta.agent_ids(), 15, "the paglet to reach beta")
    wait_until(lambda: len(seen(beta, proxy.agent_id)) == NOTES, 15, "every note to be handled on beta")
    # not one note ran on alpha after the state left it, and none was lost or repeated
    assert seen(beta, proxy.agent_id) == [[i, "beta"] for i in range(NOTES)]
    assert alpha.agent_ids() == []


def test_mail_queued_behind_a_self_deactivation_waits_on_disk_in_order(node):
    proxy = node.create(sp.BacklogPaglet)
    hold(proxy)
    proxy.send_oneway("park-me")
    for i in range(NOTES):
        proxy.send_oneway(Message("note", arg=i))
    node.client.flush(node.address, 10)
    release(proxy)
    wait_until(lambda: proxy.is_state(INACTIVE), 15, "the paglet to park itself")
    node.activate(proxy.agent_id)
    wait_until(lambda: len(seen(node, proxy.agent_id)) == NOTES, 15, "the parked notes to be handled")
    assert seen(node, proxy.agent_id) == [[i, "alpha"] for i in range(NOTES)]


def test_a_flowing_burst_is_acknowledged_and_handled_once_each_in_order(node):
    """Thousands of oneway sends to a paglet that keeps up: every one accepted, run once, in order."""
    proxy = node.create(sp.BacklogPaglet)
    for i in range(5000):
        proxy.send_oneway(Message("note", arg=i))
    node.client.flush(node.address, 20)
    wait_until(lambda: len(seen(node, proxy.agent_id)) >= 5000, 20, "5000 notes handled")
    assert [arg for arg, _ in seen(node, proxy.agent_id)] == list(range(5000))
    assert proxy.mailbox_status() == {"queued": 0, "in_flight": 0, "delivered": 5000, "failed": 0}

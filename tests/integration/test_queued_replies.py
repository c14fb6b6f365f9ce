"""A synchronous send answers with what the handler returned, or raises MessageQueuedError.

A message for a parked paglet that waits for it on disk (its policy does not
wake it on messages) has no handler result yet: every sync sender - a proxy,
a Future, the node itself, another paglet - gets ``MessageQueuedError``
carrying the message id, never a reply the handler did not give. A sync
message still waiting in the mailbox when its paglet parks is treated the
same way, unless the paglet wakes on messages: then it wakes it and its
sender gets the handler's real answer.

The mailbox tests block the paglet's only handler with ``hold`` so that the
messages sent after it wait in the mailbox; an unqueued ``until-held`` sent
over the same socket after them answers only once they are queued.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from paglets.core.errors import MessageQueuedError, PagletError
from paglets.core.messages import UNQUEUED_PRIORITY, Message
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.remote.proxy import PagletProxy
from tests import sample_paglets as sp
from tests.conftest import wait_until

QUEUE_ONLY = DeactivationPolicy(activate_on_message=False)
WAKE_ON_MESSAGE = DeactivationPolicy(activate_on_message=True)


def park(node, proxy: PagletProxy, policy: DeactivationPolicy) -> None:
    node.deactivate(proxy.agent_id, DeactivationRequest(reason="test", policy=policy))


def queued_behind_a_hold(proxy: PagletProxy, *messages: Message) -> list:
    """Occupy the paglet's only handler, then send ``messages``; returns their reply Futures once all are queued."""
    proxy.send_oneway("hold")
    futures = [proxy.send_future(message) for message in messages]
    # Same socket as the Futures' sends, so it reaches the node after them; answered once the hold runs.
    until_held = proxy.send_future(Message("until-held", arg=1, priority=UNQUEUED_PRIORITY))
    assert until_held.get_reply(30) is True
    return futures


def release(proxy: PagletProxy) -> None:
    assert proxy.send(Message("open", priority=UNQUEUED_PRIORITY)) is True


def park_behind_the_hold(node, proxy: PagletProxy, policy: DeactivationPolicy) -> None:
    """Park the paglet while its held handler runs (the mail behind it stays in the mailbox), then release it."""
    with ThreadPoolExecutor(1) as pool:
        parking = pool.submit(park, node, proxy, policy)
        # Nothing signals that the node holds the mailbox (the deactivation waits for the handler):
        # the phase it reports is the only sign, and released earlier the handler would take the mail.
        phase = lambda: node.agent_info(proxy.agent_id, resources=False)["phase"]  # noqa: E731
        wait_until(lambda: phase() == "moving", 10, "the mailbox to be held")
        release(proxy)
        parking.result(30)


def test_every_sync_sender_to_a_parked_paglet_that_queues_gets_message_queued(node):
    proxy = node.create(sp.SerialParkingPaglet)
    park(node, proxy, QUEUE_ONLY)
    by_proxy, by_future, by_node = Message("note", arg="a"), Message("note", arg="b"), Message("note", arg="c")
    with pytest.raises(MessageQueuedError) as raised:
        proxy.send(by_proxy)
    assert raised.value.message_id == by_proxy.message_id and isinstance(raised.value, PagletError)
    with pytest.raises(MessageQueuedError) as raised:
        proxy.send_future(by_future).get_reply(10)
    assert raised.value.message_id == by_future.message_id
    with pytest.raises(MessageQueuedError) as raised:
        node.deliver_message(proxy.agent_id, by_node)
    assert raised.value.message_id == by_node.message_id
    sender = node.create(sp.WorkingPaglet)
    seen_by_paglet = sender.send(Message("ask-parked", {"agent": proxy.agent_id, "value": "d"}))
    assert seen_by_paglet == {
        "error": "MessageQueuedError", "message_id": seen_by_paglet["sent"], "sent": seen_by_paglet["sent"]
    }  # fmt: skip
    proxy.send_oneway(Message("note", arg="e"))  # oneway mail is simply accepted
    node.client.flush(node.address, 10)
    assert node.agent_info(proxy.agent_id)["queued_messages"] == 5
    node.activate(proxy.agent_id)
    assert proxy.send("seen") == ["a", "b", "c", "d", "e"]


def test_a_sync_message_in_the_mailbox_of_a_paglet_parked_to_wake_on_messages_gets_the_real_reply(node):
    proxy = node.create(sp.BacklogPaglet)
    [note] = queued_behind_a_hold(proxy, Message("note", arg="waited"))
    park_behind_the_hold(node, proxy, WAKE_ON_MESSAGE)
    assert note.get_reply(30) == 1  # the handler's answer, after the message woke the paglet
    assert proxy.send("seen") == [["waited", "alpha"]]
    assert node.agent_info(proxy.agent_id)["active"] is True


def test_a_sync_message_in_the_mailbox_of_a_paglet_parked_to_sleep_is_queued_and_kept(node):
    proxy = node.create(sp.BacklogPaglet)
    sent = Message("note", arg="waited")
    [note] = queued_behind_a_hold(proxy, sent)
    park_behind_the_hold(node, proxy, QUEUE_ONLY)
    with pytest.raises(MessageQueuedError) as raised:
        note.get_reply(30)
    assert raised.value.message_id == sent.message_id
    assert node.agent_info(proxy.agent_id)["queued_messages"] == 1
    node.activate(proxy.agent_id)
    assert proxy.send("seen") == [["waited", "alpha"]]


def test_a_paglet_parking_itself_to_wake_on_messages_answers_its_caller_and_then_the_mail_behind(node):
    proxy = node.create(sp.BacklogPaglet)
    since = node.events.last_seq
    park_me, note = queued_behind_a_hold(proxy, Message("park-me", arg="wake"), Message("note", arg="behind"))
    release(proxy)
    assert park_me.get_reply(30) is True  # the handler's own reply still reaches its caller
    assert note.get_reply(30) == 1  # and the message behind it woke the paglet
    parked = node.events.wait_for(lambda e: e.kind == "deactivate", 30, since=since)
    woken = node.events.wait_for(lambda e: e.kind == "activate", 30, since=since)
    assert parked is not None and woken is not None and parked.seq < woken.seq, node.events.events_since(since)
    assert woken.details["reason"] == "message"
    assert proxy.send("seen") == [["behind", "alpha"]]


def test_a_paglet_parking_itself_to_sleep_answers_its_caller_and_queues_the_mail_behind(node):
    proxy = node.create(sp.BacklogPaglet)
    behind = Message("note", arg="behind")
    park_me, note = queued_behind_a_hold(proxy, Message("park-me"), behind)
    release(proxy)
    assert park_me.get_reply(30) is True
    with pytest.raises(MessageQueuedError) as raised:
        note.get_reply(30)
    assert raised.value.message_id == behind.message_id
    assert node.agent_info(proxy.agent_id)["queued_messages"] == 1

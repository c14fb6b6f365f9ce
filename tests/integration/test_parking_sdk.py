"""Parking through the client SDK: PagletProxy and HostClient deactivate and activate over the front socket."""

from __future__ import annotations

import pytest

from paglets.core.agent import ACTIVE, INACTIVE
from paglets.core.errors import InvalidAgentError, MessageQueuedError, SerializationError
from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationPolicy
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from tests import sample_paglets as sp

QUEUE_ONLY = DeactivationPolicy(activate_on_message=False)


def remote_proxy(node) -> PagletProxy:
    """A paglet on ``node`` reached like any client would: a proxy with its own HostClient.

    It handles one message at a time, so the order of its notes is the order of delivery.
    """
    created = node.create(sp.SerialParkingPaglet)
    return PagletProxy(node.address, created.agent_id, HostClient(timeout=10))


def test_mail_sent_while_parked_by_proxy_is_delivered_in_order_on_activation(node):
    proxy = remote_proxy(node)
    proxy.send(Message("note", arg=0))

    assert proxy.deactivate(reason="nap", policy=QUEUE_ONLY, metadata={"by": "sdk"}) is proxy
    assert proxy.is_state(INACTIVE) and not proxy.is_active()
    info = node.agent_info(proxy.agent_id)
    assert info["phase"] == "inactive" and info["reason"] == "nap"
    assert info["policy"]["activate_on_message"] is False

    for i in (1, 2):
        with pytest.raises(MessageQueuedError):
            proxy.send(Message("note", arg=i))
    proxy.send_oneway(Message("note", arg=3))
    proxy.client.flush(proxy.host_url, 10)
    assert node.agent_info(proxy.agent_id)["queued_messages"] == 3
    assert proxy.is_state(INACTIVE)  # queue-only: the mail did not wake it

    assert proxy.activate() is proxy
    assert proxy.is_state(ACTIVE)
    assert proxy.send(Message("note", arg=4)) == 5
    assert proxy.send("seen") == [0, 1, 2, 3, 4]
    hooks = proxy.get_state()["hooks"]
    assert [(h["hook"], h["request_reason"]) for h in hooks] == [("on_deactivating", "nap"), ("on_activation", "nap")]


def test_host_client_deactivate_and_activate_answer_the_paglets_proxy(node):
    client = HostClient(timeout=10)
    agent_id = node.create(sp.ParkingPaglet).agent_id
    parked = client.deactivate(node.address, agent_id, policy=QUEUE_ONLY)
    assert parked == PagletProxy(node.address, agent_id)
    assert client.info(node.address, agent_id)["active"] is False
    woken = client.activate(node.address, agent_id)
    assert woken == parked and client.info(node.address, agent_id)["active"] is True


def test_without_a_policy_the_paglet_chooses_its_own(node):
    proxy = remote_proxy(node)
    proxy.send(Message("prefer", arg={"activate_on_message": False}))
    proxy.deactivate(reason="its choice")
    assert node.agent_info(proxy.agent_id)["policy"]["activate_on_message"] is False
    with pytest.raises(MessageQueuedError):
        proxy.send(Message("note", arg=1))


def test_a_message_wakes_a_paglet_parked_with_the_default_policy(node):
    proxy = remote_proxy(node)
    proxy.deactivate(policy=DeactivationPolicy())
    assert proxy.send(Message("note", arg="wake")) == 1
    assert proxy.is_active()


def test_activating_an_active_paglet_changes_nothing(node):
    proxy = remote_proxy(node)
    proxy.send(Message("note", arg=1))
    assert proxy.activate() is proxy
    assert proxy.send("seen") == [1]
    assert [h["hook"] for h in proxy.get_state()["hooks"]] == []


def test_parking_an_unknown_paglet_raises_invalid_agent_error(node):
    ghost = PagletProxy(node.address, "nobody", HostClient(timeout=5))
    with pytest.raises(InvalidAgentError, match="nobody"):
        ghost.deactivate()
    with pytest.raises(InvalidAgentError, match="nobody"):
        ghost.activate()


def test_metadata_that_is_not_plain_data_is_refused_before_sending(node):
    proxy = remote_proxy(node)
    with pytest.raises(SerializationError, match="metadata"):
        proxy.deactivate(metadata={"handle": object()})
    assert proxy.is_active()

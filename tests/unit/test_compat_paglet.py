"""A paglet's logic tested without a node, as authors of code for the HTTP paglets API do (issue 15)."""

from __future__ import annotations

import time

import pytest

from paglets.core.agent import DetachedContext, Paglet, PagletContext, PagletState
from paglets.core.errors import HostError
from paglets.core.messages import DEACTIVATE, Message
from paglets.core.resources import ResourceRegistry
from paglets.persistence.persistency import DeactivationPolicy
from tests.compat_paglets import Counter, CounterState, NeedsName, NeedsNameState


def test_a_paglet_built_directly_starts_from_its_state_class_default():
    counter = Counter()
    assert counter.state == CounterState()
    assert isinstance(counter.agent_id, str) and counter.agent_id
    assert Counter.state_class() is CounterState and Paglet.state_class() is PagletState


def test_a_paglet_built_directly_takes_the_state_and_id_it_is_given():
    counter = Counter(state=CounterState(count=41), agent_id="counter-1")
    assert counter.agent_id == "counter-1"
    assert counter.handle_message(Message("inc")) == 42
    assert counter.handle_message(Message("inc").set_arg("by", 8)) == 50
    assert counter.state.seen == ["inc", "inc"]


def test_a_state_without_defaults_is_given_by_the_test():
    assert NeedsName(NeedsNameState("ada")).handle_message(Message("hi")) == "hello ada"
    assert not hasattr(NeedsName(), "state")


def test_refusing_a_message_and_state_helpers_work_without_a_node():
    counter = Counter()
    assert counter.handle_message(Message("unknown")) is counter.not_handled()
    with counter.locked_state() as state:
        state.count = 3
    assert counter.wait_state(lambda s: s.count == 3, timeout=0)
    counter.resources.register("socket", lambda: None)
    assert isinstance(counter.resources, ResourceRegistry) and counter.resources.status() == {"socket": False}
    assert counter.wait_message(timeout=0) is False


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.dispatch("tcp://127.0.0.1:7700"),
        lambda p: p.send("other", Message("hi")),
        lambda p: p.work_dir(),
        lambda p: p.deactivate(),
        lambda p: p.context.host,
        lambda p: p.context.name,
        lambda p: p.context.available_hosts(),
    ],
    ids=["dispatch", "send", "work_dir", "deactivate", "host", "name", "available_hosts"],
)
def test_what_needs_a_node_says_so(call):
    counter = Counter(agent_id="lonely")
    with pytest.raises(HostError, match=r"needs a node: paglet tests\.compat_paglets:Counter lonely"):
        call(counter)


def test_the_context_of_a_paglet_built_directly_is_a_paglet_context():
    assert isinstance(Counter().context, DetachedContext)
    assert isinstance(Counter().context, PagletContext)


def test_set_arg_returns_the_message_so_calls_chain():
    message = Message("quote").set_arg("symbol", "ACME").set_arg("depth", 3)
    assert message.args == {"symbol": "ACME", "depth": 3}


def test_deactivate_is_a_reserved_message_kind():
    assert isinstance(DEACTIVATE, str) and Message(DEACTIVATE).same_kind(DEACTIVATE)


def test_a_policy_after_some_seconds_wakes_then_and_keeps_the_other_flags():
    before = time.time()
    policy = DeactivationPolicy.after(60, activate_on_message=False)
    assert before + 60 <= policy.activate_at <= time.time() + 60
    assert policy.activate_on_message is False and policy.queue_messages_when_inactive is True
    with pytest.raises(ValueError, match="seconds >= 0"):
        DeactivationPolicy.after(-1)

"""A parked paglet that cannot wake: the message that tried to wake it says why, and the node still serves."""

from __future__ import annotations

import pytest

from paglets.core.errors import PagletError
from paglets.core.messages import Message
from paglets.examples.echo import EchoPaglet

pytestmark = pytest.mark.timeout(60)


def test_a_message_that_cannot_wake_its_paglet_gets_the_reason_not_a_removed_paglet(make_node):
    node = make_node("alpha", allow_modules=["tests"])
    ghost = node.create_parked("tests.sample_paglets:NoSuchPaglet", agent_id="ghost")
    with pytest.raises(PagletError) as caught:
        ghost.send(Message("hello"), timeout=20)
    text = str(caught.value)
    assert "NoSuchPaglet" in text and "was removed" not in text, text
    assert "ghost" in node.agent_ids(state=2)  # still parked: nothing lost
    assert node.create(EchoPaglet).send(Message("echo", {"text": "hi"})) == {"text": "hi"}  # and the node serves

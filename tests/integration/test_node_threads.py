"""The node's own threads, seen from outside: a broken loop command fails its caller at once, a checkpoint
that cannot be written is an error in the log."""

from __future__ import annotations

import logging
import uuid

import pytest

from paglets.core.messages import Message
from paglets.examples.echo import EchoPaglet
from paglets.node.broker.commands import BrokerCommands
from paglets.waiting import wait_for
from paglets.wire.message_codec import encode_message
from tests import sample_paglets as sp
from tests.logs import LogRecords


def test_a_broker_command_that_raises_in_the_loop_fails_its_caller_at_once(node):
    proxy = node.create(EchoPaglet)
    commands = BrokerCommands(node.broker)
    body = encode_message(Message("echo", arg=1))
    with LogRecords("paglets.loops") as logged:
        # An unhashable message id breaks the loop's duplicate check: a bug in the caller, not a refusal.
        future = commands.deliver(proxy.agent_id, body, oneway=False, priority=5, mid=["not", "a", "str"])
        with pytest.raises(TypeError):
            wait_for(future, 5, "the broken command's answer")
    assert any(r.exc_info and isinstance(r.exc_info[1], TypeError) for r in logged.records)
    assert proxy.send(Message("echo", arg=2)) == 2  # the loop went on


def test_a_checkpoint_that_cannot_be_written_is_logged_as_an_error_until_it_can(make_node, tmp_path):
    node = make_node("alpha", persistence_dir=tmp_path / "alpha", checkpoint_interval=0.1)
    agent_id = uuid.uuid4().hex
    blocked = tmp_path / "alpha" / "checkpoints" / f"{agent_id}.mpk"
    blocked.mkdir(parents=True)  # a directory where the checkpoint file goes: the rename into place fails
    with LogRecords("paglets.checkpoints") as logged:
        proxy = node.create(sp.ParkingPaglet, agent_id=agent_id)
        assert logged.seen.wait(10), "no error logged for the checkpoint that could not be written"
    [error] = [r for r in logged.records if r.levelno >= logging.ERROR]
    assert agent_id in error.getMessage() and "IsADirectoryError" in error.getMessage()
    since = node.events.last_seq
    blocked.rmdir()
    proxy.send(Message("note", arg="after"))
    assert node.events.wait_for(lambda e: e.kind == "checkpoint" and e.agent_id == agent_id, 10, since=since)
    assert blocked.is_file()

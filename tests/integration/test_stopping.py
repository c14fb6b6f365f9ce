"""Stopping a node never loses a paglet (ARCHITECTURE.md rule 11), tried on real ``paglets-node`` processes.

A handler that does not finish within the stop grace is cut short: its
caller gets HandlerInterruptedError and the paglet is parked with its state
as the node reads it then, plus its queued mail; a restart brings it back.
"""

from __future__ import annotations

import signal
import threading

import pytest

from paglets.cli.node import EXIT_NOT_ALL_PARKED
from paglets.core.errors import HandlerInterruptedError, InvalidAgentError
from paglets.core.messages import UNQUEUED_PRIORITY, Message
from paglets.remote.client import HostClient
from tests import sample_paglets as sp
from tests.conftest import wait_until

STUCK = "tests.sample_paglets:StuckPaglet"
AFTER_GRACE = 25.0  # a generous bound on the rest of a stop: parking, workers, sockets


def blocked_paglet(address: str, kind: str = "block") -> tuple[HostClient, str, object]:
    """A StuckPaglet with a note in its state, a handler blocked for good and a note queued behind it."""
    client = HostClient(timeout=60)
    agent_id = client.create(address, STUCK).agent_id
    assert client.send(address, agent_id, Message("note", arg="before")) == ["before"]
    stuck = client.send_future(address, agent_id, Message(kind))
    assert client.send(address, agent_id, Message("until-blocked", priority=UNQUEUED_PRIORITY)) is True
    client.send_oneway(address, agent_id, Message("note", arg="queued"))
    client.flush(address)
    return client, agent_id, stuck


def calm_paglet(client: HostClient, address: str) -> str:
    agent_id = client.create(address, STUCK).agent_id
    assert client.send(address, agent_id, Message("note", arg="calm")) == ["calm"]
    return agent_id


def waiting_lines(log: str, agent_id: str) -> list[str]:
    return [line for line in log.splitlines() if "waiting" in line and agent_id in line]


def test_sigterm_parks_a_paglet_whose_handler_never_returns(node_process):
    grace = 3
    alpha = node_process("alpha", "--stop-grace", str(grace))
    client, agent_id, stuck = blocked_paglet(alpha.address)
    assert alpha.stop(signal.SIGTERM, timeout=grace + AFTER_GRACE) == 0
    with pytest.raises(HandlerInterruptedError, match="stop"):
        stuck.get_reply(10)
    log = alpha.log_path.read_text()
    waiting = waiting_lines(log, agent_id)
    assert waiting, log
    assert "handler" in waiting[0] and "s left" in waiting[0]
    assert len(waiting) <= grace + 2  # about once a second, not once per loop turn
    again = node_process("alpha")
    # The state as it was when the node stopped (the blocked handler had counted itself), then the queued note.
    assert client.send(again.address, agent_id, Message("note", arg="after")) == ["before", "queued", "after"]
    assert client.get_state(again.address, agent_id)["blocked"] == 1


def test_a_second_signal_stops_at_once_parking_what_it_can(node_process):
    alpha = node_process("alpha", "--stop-grace", "600")
    client, agent_id, stuck = blocked_paglet(alpha.address)
    calm = calm_paglet(client, alpha.address)
    alpha.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: waiting_lines(alpha.log_path.read_text(), agent_id), 30, "the node to say what it waits for")
    assert alpha.stop(signal.SIGINT, timeout=AFTER_GRACE) == 0  # the second signal: the 600 s grace is over
    with pytest.raises(HandlerInterruptedError):
        stuck.get_reply(10)
    again = node_process("alpha")
    assert client.send(again.address, agent_id, Message("note", arg="after")) == ["before", "queued", "after"]
    assert client.send(again.address, calm, Message("note", arg="again")) == ["calm", "again"]


def test_a_paglet_whose_state_cannot_be_read_makes_the_exit_status_non_zero(node_process):
    # Its handler holds the state lock forever, so no snapshot of its state can be taken:
    # the node parks the others, names the lost one and says so in its exit status.
    alpha = node_process("alpha", "--stop-grace", "1")
    client, locked, stuck = blocked_paglet(alpha.address, "block-locked")
    calm = calm_paglet(client, alpha.address)
    assert alpha.stop(signal.SIGTERM, timeout=1 + AFTER_GRACE) == EXIT_NOT_ALL_PARKED
    with pytest.raises(HandlerInterruptedError):
        stuck.get_reply(10)
    lost = [line for line in alpha.log_path.read_text().splitlines() if "could not park" in line]
    assert len(lost) == 1 and locked in lost[0] and calm not in lost[0]
    again = node_process("alpha")
    assert client.send(again.address, calm, Message("note", arg="again")) == ["calm", "again"]
    with pytest.raises(InvalidAgentError):
        client.send(again.address, locked, Message("note", arg="again"))


def test_shutdown_parks_a_paglet_whose_on_deactivating_never_returns(make_node, tmp_path):
    data = tmp_path / "stalled"
    node = make_node("alpha", persistence_dir=data, stop_grace=1)
    proxy = node.create(sp.StuckPaglet)
    assert proxy.send(Message("note", arg="before")) == ["before"]
    assert proxy.send("stall-hook") is True
    assert node.shutdown() == []  # nobody lost
    again = make_node("alpha", persistence_dir=data)
    assert again.activate(proxy.agent_id).send(Message("note", arg="after")) == ["before", "after"]


def test_a_paglet_woken_while_the_node_waits_is_parked_too(make_node, tmp_path):
    data = tmp_path / "woken"
    node = make_node("alpha", persistence_dir=data, stop_grace=600)
    stuck = node.create(sp.StuckPaglet)
    blocked = stuck.send_future(Message("block"))
    assert stuck.send(Message("until-blocked", priority=UNQUEUED_PRIORITY)) is True
    calm = node.create(sp.StuckPaglet)
    sleeper = node.create(sp.StuckPaglet)
    assert sleeper.send(Message("note", arg="before")) == ["before"]
    node.deactivate(sleeper.agent_id)
    since = node.events.last_seq
    lost: list[list[str]] = []
    stopping = threading.Thread(target=lambda: lost.append(node.shutdown()))
    stopping.start()
    try:
        parked = node.events.wait_for(lambda e: e.kind == "deactivate" and e.agent_id == calm.agent_id, 30, since=since)
        assert parked is not None  # the node has listed its active paglets and waits for the stuck one
        assert sleeper.send(Message("note", arg="woken")) == ["before", "woken"]  # the message wakes it
    finally:
        node.stop_now()
        stopping.join(60)
    assert lost == [[]]
    with pytest.raises(HandlerInterruptedError):
        blocked.get_reply(10)
    again = make_node("alpha", persistence_dir=data)
    assert again.activate(sleeper.agent_id).send(Message("note", arg="after")) == ["before", "woken", "after"]

"""Hostile input on the back side: forged worker frames, and paglet code that raises what it should not.

A stranger on the node's back socket (``node.broker.back_endpoint``) sends
garbage and frames forged in other paglets' names; a paglet's handler,
hook, batch or ``run()`` raises ``SystemExit``, ``KeyboardInterrupt`` or a
``BaseException`` of its own; a message carries a value whose decoding
raises. Every case ends with :func:`still_serves`: the node's bystander
echo paglet answers from the same process, and no other paglet was
reported crashed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
import zmq

from paglets.client.host_client import HostClient
from paglets.core.errors import PagletCrashedError, SerializationError, TransferError
from paglets.core.messages import UNQUEUED_PRIORITY, Message
from paglets.examples.echo import EchoPaglet
from paglets.wire import back, codec, limits
from tests.conftest import pid_alive, wait_until
from tests.hostile_paglets import FragilePaglet, exit_on_decode

BASE_EXCEPTIONS = ["SystemExit", "KeyboardInterrupt", "Doom"]
FENCE_MS = 20_000  # how long to wait for the node's answer to a fence (a bound, not a speed goal)


@dataclass
class Site:
    """A node with a bystander echo paglet, as it was before the attack."""

    node: Any
    echo: str
    pid: int


@pytest.fixture
def site(make_node) -> Site:
    node = make_node("alpha")
    proxy = node.create(EchoPaglet)
    return Site(node, proxy.agent_id, node.agent_info(proxy.agent_id)["pid"])


def crashed_ids(site: Site) -> set[str]:
    return {e.agent_id for e in site.node.list_events(limit=10_000) if e.kind == "crash"}


def still_serves(site: Site, crashed: frozenset[str] = frozenset()) -> None:
    """The bystander answers from the same process; only ``crashed`` paglets were reported crashed."""
    client = HostClient(timeout=10)
    assert client.send(site.node.address, site.echo, Message("echo", arg="still here")) == "still here"
    assert site.node.agent_info(site.echo)["pid"] == site.pid
    assert crashed_ids(site) == set(crashed)


# -- a stranger on the back socket ------------------------------------------------------------
@pytest.fixture
def intruders(site) -> Iterator:
    """Factory of DEALERs on the back socket with the routing ids an intruder picks."""
    sockets: list[zmq.Socket] = []

    def connect(identity: bytes) -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.identity = identity
        sock.connect(site.node.broker.back_endpoint)
        sockets.append(sock)
        return sock

    yield connect
    for sock in sockets:
        sock.close(0)


def fence(sock: zmq.Socket) -> None:
    """Wait until the node has read everything ``sock`` sent before: a ``ready`` from a routing id it
    did not start is answered with ``exit``, after the frames ahead of it on the same connection."""
    sock.send_multipart(back.ready_frames("no-such-token", os.getpid()))
    while True:
        assert sock.poll(FENCE_MS), "the node never answered the fence"
        frames = sock.recv_multipart()
        if frames[:1] == [back.CALL] and msgpack.unpackb(frames[2]) == {"op": "exit"}:
            return


GARBAGE = [
    [b""],
    [b"\x00" * 3],
    [b"x" * 100_000],
    [back.REP],
    [back.REP, b"\x00" * 8],
    [back.HCALL, b"c", b"\xc1\xc1"],
    [back.HCALL, b"c", msgpack.packb({"op": "dispose"})],
    [back.HCALL, b"c", msgpack.packb({"op": "x" * 100_000})],
    [back.EVENT, b"", msgpack.packb({"kind": ["not", "a", "str"]})],
    [back.BACK, b"\x00" * 8, b"\xff\xff\xff\xff"],
    [back.IDLE, b"", b""],
    [back.READY, b"", b"\xc1"],
    [back.READY, b"", msgpack.packb({"token": "t" * 100_000, "pid": -1})],
    [b"nope", b"", b""],
]


def test_garbage_on_the_back_socket_changes_nothing(site, intruders):
    for identity in (b"stranger", b"\xff" * 200, b"x/y/z", site.echo.encode()):
        sock = intruders(identity)
        for frames in GARBAGE:
            sock.send_multipart(frames)
        fence(sock)
    still_serves(site)


def test_frames_forged_in_another_paglets_name_are_ignored(site, intruders):
    victim = site.node.create(FragilePaglet)
    vid = victim.agent_id
    held = victim.send_future(Message("hold", arg="the real answer"))
    assert victim.send_future(Message("until-running", arg=1, priority=UNQUEUED_PRIORITY)).get_reply(30) is True
    forged_reply = codec.encode("forged", root="reply")
    # Routing ids an intruder can build from what it can learn (agent ids are listed by the node).
    for identity in (vid, f"{vid}/1", f"{vid}/2", f"{vid}/0", f"{vid}/{'0' * 32}", f"{vid}/{'0' * 32}/1"):
        sock = intruders(identity.encode())
        for cid in range(1, 300):  # the node numbers its requests to workers 1, 2, 3...
            sock.send_multipart(back.rep_ok(cid.to_bytes(8, "big"), forged_reply))
        sock.send_multipart(back.ready_frames("guessed-token", 4242, workers=64))
        sock.send_multipart(back.idle_frames())
        sock.send_multipart(back.hcall_frames(b"\x00" * 8, "dispose", {"agent": vid}))
        sock.send_multipart(back.hcall_frames(b"\x00" * 8, "dispose", {"agent": site.echo}))
        sock.send_multipart(back.hcall_frames(b"\x00" * 8, "crashed", {"reason": "forged"}))
        fence(sock)
    assert victim.send(Message("open", priority=UNQUEUED_PRIORITY), timeout=10) is True
    assert held.get_reply(30) == "the real answer"
    assert victim.send(Message("echo", arg="mine"), timeout=10) == "mine"
    assert site.node.agent_info(vid)["phase"] == "ready"
    still_serves(site)


def test_overlong_host_call_fields_are_refused_with_protocol_error(site):
    paglet = site.node.create(FragilePaglet)
    too_long = {
        "get_property": {"key": "k" * (limits.MAX_KEY + 1)},
        "send": {"agent": site.echo, "mid": "m" * (limits.TEXT_LIMITS["mid"] + 1)},
        "create": {"cls": "paglets.examples.echo:" + "E" * limits.MAX_CLASS_NAME},
        "dispatch": {"target": "tcp://127.0.0.1:9/" + "x" * limits.MAX_ADDRESS},
        "host_status": {"name": "n" * (limits.MAX_ADDRESS + 1)},
        "deactivate": {"metadata": {f"k{i}": i for i in range(limits.MAX_ITEMS + 1)}},
    }
    for op, fields in too_long.items():
        answer = paglet.send(Message("hcall", {"op": op, "fields": fields}), timeout=10)
        assert isinstance(answer, dict) and answer["type"] == "ProtocolError", (op, answer)
        assert "limit" in answer["message"], (op, answer)
    assert paglet.send(Message("echo", arg="fine"), timeout=10) == "fine"
    still_serves(site)


# -- paglet code that raises a BaseException -----------------------------------------------------
def check_crashed(site: Site, agent_id: str, pid: int, *words: str) -> None:
    """``agent_id`` is shown crashed with a reason naming ``words``, reported once, and its process is gone."""
    event = site.node.events.wait_for(lambda e: e.kind == "crash" and e.agent_id == agent_id, timeout=30, since=0)
    assert event is not None, "no crash event"
    info = site.node.agent_info(agent_id)
    assert info["crashed"] is True and info["phase"] == "crashed" and info["active"] is False
    for word in words:
        assert word in info["error"] and word in event.error, (word, info["error"])
    with pytest.raises(PagletCrashedError):
        HostClient(timeout=10).send(site.node.address, agent_id, Message("echo", arg="anyone?"))
    wait_until(lambda: not pid_alive(pid), 30, f"crashed worker {pid} to exit")


@pytest.mark.parametrize("what", BASE_EXCEPTIONS)
def test_a_handler_raising_a_base_exception_crashes_its_paglet_and_fails_every_caller(site, what):
    paglet = site.node.create(FragilePaglet)
    pid = site.node.agent_info(paglet.agent_id)["pid"]
    holding = [paglet.send_future(Message("hold", arg=i)) for i in range(3)]
    assert paglet.send_future(Message("until-running", arg=3, priority=UNQUEUED_PRIORITY)).get_reply(30) is True
    raising = paglet.send_future(Message("raise", arg=what))  # the fourth and last handler
    queued = [paglet.send_future(Message("echo", arg=i)) for i in range(3)]
    for future in [raising, *holding, *queued]:
        with pytest.raises(PagletCrashedError, match=what):
            future.get_reply(30)
    check_crashed(site, paglet.agent_id, pid, what, "handle_message")
    still_serves(site, crashed=frozenset({paglet.agent_id}))


@pytest.mark.parametrize("what", BASE_EXCEPTIONS)
def test_an_unqueued_message_raising_a_base_exception_crashes_its_paglet(site, what):
    paglet = site.node.create(FragilePaglet)
    pid = site.node.agent_info(paglet.agent_id)["pid"]
    held = paglet.send_future(Message("hold", arg=1))
    assert paglet.send_future(Message("until-running", arg=1, priority=UNQUEUED_PRIORITY)).get_reply(30) is True
    with pytest.raises(PagletCrashedError, match=what):
        paglet.send(Message("raise", arg=what, priority=UNQUEUED_PRIORITY), timeout=30)
    with pytest.raises(PagletCrashedError):
        held.get_reply(30)
    check_crashed(site, paglet.agent_id, pid, what)
    still_serves(site, crashed=frozenset({paglet.agent_id}))


class SerialFragile(FragilePaglet):
    """One handler: a backlog of oneway mail reaches it in batches."""

    MAILBOX_WORKERS = 1


def test_a_base_exception_in_a_batch_of_oneway_messages_crashes_its_paglet(site):
    paglet = site.node.create(SerialFragile)
    pid = site.node.agent_info(paglet.agent_id)["pid"]
    held = paglet.send_future(Message("hold", arg="held"))
    assert paglet.send_future(Message("until-running", arg=1, priority=UNQUEUED_PRIORITY)).get_reply(30) is True
    client, address = HostClient(timeout=10), site.node.address
    for i in range(20):
        client.send_oneway(address, paglet.agent_id, Message("note", arg=i))
    client.send_oneway(address, paglet.agent_id, Message("raise", arg="SystemExit"))
    for i in range(20, 40):
        client.send_oneway(address, paglet.agent_id, Message("note", arg=i))
    client.flush(address)  # every oneway message is in the mailbox now
    assert site.node.mailbox_status(paglet.agent_id)["queued"] == 41  # the backlog waits behind "hold"
    behind = paglet.send_future(Message("echo", arg="behind"))
    opened = paglet.send_future(Message("open", priority=UNQUEUED_PRIORITY))
    assert held.get_reply(30) == "held"
    with pytest.raises(PagletCrashedError, match="SystemExit"):
        behind.get_reply(30)
    try:  # "open" ran; its answer and the crash leave the worker on different sockets: either may come first
        assert opened.get_reply(10) is True
    except PagletCrashedError as exc:
        assert "SystemExit" in str(exc)
    check_crashed(site, paglet.agent_id, pid, "SystemExit")
    still_serves(site, crashed=frozenset({paglet.agent_id}))


@pytest.mark.parametrize("what", BASE_EXCEPTIONS)
def test_a_creation_hook_raising_a_base_exception_fails_the_create(site, what):
    with pytest.raises(PagletCrashedError, match=what):
        site.node.create(FragilePaglet, init={"raise_in": "on_creation", "raise_what": what})
    event = site.node.events.wait_for(lambda e: e.kind == "crash", timeout=30, since=0)
    assert event is not None and "on_creation" in event.error and what in event.error
    assert [a["agent_id"] for a in site.node.list_agents()] == [site.echo]  # nothing half-made stays
    still_serves(site, crashed=frozenset({event.agent_id}))


@pytest.mark.parametrize("what", BASE_EXCEPTIONS)
def test_run_raising_a_base_exception_crashes_its_paglet(site, what):
    paglet = site.node.create(FragilePaglet, init={"raise_in": "run", "raise_what": what})
    pid = site.node.agent_info(paglet.agent_id)["pid"]
    assert paglet.send(Message("echo", arg="alive"), timeout=10) == "alive"
    paglet.send_future(Message("open", priority=UNQUEUED_PRIORITY))  # run() raises once the gate is open
    check_crashed(site, paglet.agent_id, pid, what, "run()")
    still_serves(site, crashed=frozenset({paglet.agent_id}))


def test_a_move_hook_raising_a_base_exception_fails_the_move_and_crashes_the_paglet(site, make_node):
    beta = make_node("beta")
    paglet = site.node.create(FragilePaglet)
    pid = site.node.agent_info(paglet.agent_id)["pid"]
    assert paglet.send(Message("arm", args={"what": "KeyboardInterrupt"}, arg="on_dispatching"), timeout=10) is True
    with pytest.raises(TransferError, match="KeyboardInterrupt"):
        site.node.dispatch(paglet.agent_id, beta.address)
    check_crashed(site, paglet.agent_id, pid, "KeyboardInterrupt", "on_dispatching")
    assert beta.list_agents() == []
    still_serves(site, crashed=frozenset({paglet.agent_id}))


@pytest.mark.parametrize("x", [1, 2], ids=["SystemExit", "KeyboardInterrupt"])
def test_a_message_whose_decoding_raises_fails_only_that_message(site, x):
    paglet = site.node.create(FragilePaglet)
    pid = site.node.agent_info(paglet.agent_id)["pid"]
    with pytest.raises(SerializationError, match="raised while decoding"):
        paglet.send(Message("echo", arg=exit_on_decode(x)), timeout=10)
    assert paglet.send(Message("echo", arg="fine"), timeout=10) == "fine"
    assert site.node.agent_info(paglet.agent_id)["pid"] == pid
    still_serves(site)


# -- a stuck paglet shows ----------------------------------------------------------------------
def test_info_shows_how_long_the_oldest_handler_has_run(site):
    paglet = site.node.create(FragilePaglet)
    assert site.node.agent_info(paglet.agent_id)["oldest_handler_age"] is None
    held = paglet.send_future(Message("hold", arg="held"))
    assert paglet.send_future(Message("until-running", arg=1, priority=UNQUEUED_PRIORITY)).get_reply(30) is True
    age = site.node.agent_info(paglet.agent_id)["oldest_handler_age"]
    later = next(a for a in site.node.list_agents() if a["agent_id"] == paglet.agent_id)["oldest_handler_age"]
    assert isinstance(age, float) and 0 <= age <= later
    assert paglet.send(Message("open", priority=UNQUEUED_PRIORITY), timeout=10) is True
    assert held.get_reply(30) == "held"
    assert site.node.agent_info(paglet.agent_id)["oldest_handler_age"] is None
    still_serves(site)

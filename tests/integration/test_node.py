"""One node, real worker processes: creation, messages, mailboxes, crashes, shutdown."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from paglets.core.errors import (
    AuthenticationError,
    ForbiddenError,
    HostError,
    InvalidAgentError,
    LifecycleError,
    NodeUnreachableError,
    NotHandledError,
    OverloadedError,
    PagletCrashedError,
    RemoteHostError,
    RequestTimeoutError,
)
from paglets.core.messages import UNQUEUED_PRIORITY, Message
from paglets.examples.echo import EchoPaglet, EchoState
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from tests import sample_paglets as sp
from tests.conftest import pid_alive, wait_until


def counts(proxy) -> dict[str, int]:
    """The mailbox counts under their short names (the status carries the ``*_count`` names too)."""
    status = proxy.mailbox_status()
    return {key: status[key] for key in ("queued", "in_flight", "delivered", "failed")}


def crashed_event(node, agent_id, timeout):
    return node.events.wait_for(lambda e: e.kind == "crash" and e.agent_id == agent_id, timeout, since=0)


def until_running(proxy: PagletProxy, handlers: int) -> None:
    """Wait until ``handlers`` of a GatedPaglet's handlers run (the paglet answers once they do).

    It goes the way ``send_future`` calls go, after them, so its reply also
    proves the node has taken in every message sent with ``send_future`` before.
    """
    probe = proxy.send_future(Message("until-running", arg=handlers, priority=UNQUEUED_PRIORITY))
    assert probe.get_reply(30) is True


# -- creation -------------------------------------------------------------------
def test_created_paglet_answers_and_saw_its_init(node):
    proxy = node.create(EchoPaglet, init={"hello": [1, 2]})
    assert proxy.send(Message("echo", arg="hi")) == "hi"
    state = node.get_state(proxy.agent_id, EchoState)
    assert state.created_with == {"hello": [1, 2]}
    assert state.handled == 1


def test_created_paglet_runs_in_its_own_process(node):
    proxy = node.create(sp.WorkingPaglet)
    pid = proxy.send("pid")
    assert pid != os.getpid()
    assert node.agent_info(proxy.agent_id)["pid"] == pid


def test_create_with_given_state_and_agent_id(node):
    proxy = node.create(EchoPaglet, EchoState(greeting="hey", total=5), agent_id="echo-1")
    assert proxy.agent_id == "echo-1"
    assert proxy.send(Message("add", arg=2)) == 7
    with pytest.raises(HostError, match="already exists"):
        node.create(EchoPaglet, agent_id="echo-1")


def test_create_with_plain_state_builds_the_dataclass(node):
    proxy = node.create("paglets.examples.echo:EchoPaglet", {"greeting": "yo", "history": ["a"]})
    state = node.get_state(proxy.agent_id, EchoState)
    assert state.greeting == "yo" and state.history == ["a"]


def test_run_is_called_after_creation(node):
    seq = node.events.last_seq
    proxy = node.create(sp.WorkingPaglet)
    assert node.events.wait_for(lambda e: e.kind == "run-finished" and e.agent_id == proxy.agent_id, 10, seq)
    assert node.get_state(proxy.agent_id, sp.WorkState).ran


def test_class_in_main_is_refused_clearly(node):
    with pytest.raises(HostError, match="__main__"):
        node.create("__main__:Thing")


def test_unallowed_unimportable_and_non_paglet_classes_are_refused(make_node):
    node = make_node("alpha", allow_modules=["allowed_but_missing_xyz"])
    with pytest.raises(ForbiddenError, match=r"'not_allowed_xyz' is not allowed on node alpha.*--allow-module"):
        node.create("not_allowed_xyz:Thing")
    with pytest.raises(HostError, match="cannot import"):
        node.create("allowed_but_missing_xyz:Thing")
    with pytest.raises(HostError, match="not a Paglet"):
        node.create("tests.sample_paglets:NotAPaglet")
    assert node.list_agents() == []


def test_failing_on_creation_reports_the_hook_error_and_leaves_nothing(node):
    with pytest.raises(LifecycleError, match="refusing to be born"):
        node.create(sp.BrokenStartPaglet)
    assert node.list_agents() == []


def test_handler_may_create_paglets_and_message_others(node):
    worker = node.create(sp.WorkingPaglet)
    child_id = worker.send(Message("spawn", arg="from-handler"))
    assert node.get_state(child_id, EchoState).created_with == "from-handler"
    assert worker.send(Message("ask", {"agent": child_id, "value": 42})) == 42
    assert sorted(worker.send("peers")) == sorted([worker.agent_id, child_id])


def test_properties_set_by_a_paglet_are_the_nodes(node):
    worker = node.create(sp.WorkingPaglet)
    worker.send(Message("set-property", {"key": "colour", "value": "blue"}))
    assert node.get_property("colour") == "blue"
    node.set_property("size", 3)
    assert worker.send(Message("get-property", arg="size")) == 3


# -- replies and errors -------------------------------------------------------------
def test_unhandled_kind_raises_not_handled(node):
    proxy = node.create(EchoPaglet)
    with pytest.raises(NotHandledError, match="nope"):
        proxy.send("nope")


def test_handler_exception_arrives_with_its_remote_type(node):
    proxy = node.create(EchoPaglet)
    with pytest.raises(RemoteHostError) as info:
        proxy.send(Message("fail", arg="boom"))
    assert info.value.remote_type == "ValueError"
    assert "boom" in str(info.value)


def test_unknown_paglet_is_invalid_agent(node):
    with pytest.raises(InvalidAgentError):
        node.client.send(node.address, "ghost", "echo")
    assert not PagletProxy(node.address, "ghost").is_valid()


def test_dispose_removes_paglet_and_its_process(node):
    proxy = node.create(sp.WorkingPaglet)
    pid = proxy.send("pid")
    proxy.dispose()
    with pytest.raises(InvalidAgentError):
        proxy.send("pid")
    assert node.list_agents() == []
    wait_until(lambda: not pid_alive(pid), 5, "the disposed worker to exit")


def test_send_future_multicast_and_deliver_message(node):
    proxies = [node.create(EchoPaglet) for _ in range(3)]
    futures = [p.send_future(Message("echo", arg=i)) for i, p in enumerate(proxies)]
    assert [f.get_reply(10) for f in futures] == [0, 1, 2]
    replies = node.multicast_message("count")
    assert replies.wait_for_all_replies(10)
    assert sorted(r.get_reply() for r in replies) == [2, 2, 2]
    assert node.deliver_message(proxies[0].agent_id, Message("echo", arg="local")) == "local"


def test_proxies_work_from_many_threads_at_once(node):
    proxy = node.create(EchoPaglet)
    errors: list[BaseException] = []

    def hammer(n: int) -> None:
        try:
            for i in range(50):
                assert proxy.send(Message("echo", arg=(n, i))) == (n, i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a sender thread is still running"
    assert errors == []
    assert proxy.send("count") == 401


def test_oneway_messages_are_processed_and_flush_reports_refusals(node):
    proxy = node.create(sp.SerialEchoPaglet)
    for _ in range(500):
        proxy.send_oneway(Message("add", arg=1))
    node.client.flush(node.address, 10)
    # One handler: this add of 0, sent after the 500, is handled after them.
    assert proxy.send(Message("add", arg=0)) == 500
    node.client.send_oneway(node.address, "ghost", "add")
    with pytest.raises(InvalidAgentError):
        node.client.flush(node.address, 10)


# -- mailboxes --------------------------------------------------------------------------
def test_queued_messages_leave_by_priority_then_arrival(node):
    proxy = node.create(sp.GatedPaglet)
    first = proxy.send_future(Message("hold", arg="first"))
    until_running(proxy, 1)
    plan = [("low-a", 2), ("high-a", 9), ("mid", 5), ("high-b", 9), ("low-b", 2)]
    futures = [proxy.send_future(Message("note", arg=name, priority=prio)) for name, prio in plan]
    until_running(proxy, 1)  # and the five notes are in the mailbox
    # delivered: the two unqueued until-running probes
    assert counts(proxy) == {"queued": 5, "in_flight": 1, "delivered": 2, "failed": 0}
    assert proxy.send(Message("open", priority=UNQUEUED_PRIORITY)) is True
    assert first.get_reply(10) == "first"
    assert [f.get_reply(10) for f in futures] == [name for name, _ in plan]
    order = node.get_state(proxy.agent_id, sp.GateState).order
    assert order == ["first", "high-a", "high-b", "mid", "low-a", "low-b"]
    assert counts(proxy) == {"queued": 0, "in_flight": 0, "delivered": 9, "failed": 0}


def test_node_hands_a_worker_at_most_mailbox_workers_messages(node):
    proxy = node.create(sp.WideGatedPaglet)
    futures = [proxy.send_future(Message("hold", arg=i)) for i in range(7)]
    until_running(proxy, 3)  # and the other four are in the mailbox
    status = proxy.mailbox_status()
    assert (status["in_flight"], status["queued"]) == (3, 4)
    proxy.send(Message("open", priority=UNQUEUED_PRIORITY))
    assert sorted(f.get_reply(10) for f in futures) == list(range(7))
    assert node.get_state(proxy.agent_id, sp.GateState).max_running == 3


def test_state_and_other_paglets_stay_reachable_while_a_handler_blocks(node):
    gated = node.create(sp.GatedPaglet)
    held = gated.send_future(Message("hold", arg="x"))
    until_running(gated, 1)
    assert node.get_state(gated.agent_id, sp.GateState).open is False
    other = node.create(EchoPaglet)
    assert other.send(Message("echo", arg=1)) == 1
    gated.send(Message("open", priority=UNQUEUED_PRIORITY))
    assert held.get_reply(10) == "x"


def test_full_mailbox_refuses_with_overloaded(make_node):
    node = make_node("small", mailbox_limit=3)
    proxy = node.create(sp.GatedPaglet)
    held = proxy.send_future(Message("hold", arg=0))
    until_running(proxy, 1)
    queued = [proxy.send_future(Message("note", arg=i)) for i in range(3)]
    until_running(proxy, 1)  # unqueued, so it gets in: its reply proves the mailbox is full
    assert proxy.mailbox_status()["queued"] == 3
    with pytest.raises(OverloadedError, match="full"):
        proxy.send(Message("note", arg=99))
    proxy.send(Message("open", priority=UNQUEUED_PRIORITY))
    assert held.get_reply(10) == 0
    assert [f.get_reply(10) for f in queued] == [0, 1, 2]


# -- crashes ----------------------------------------------------------------------------
def test_killed_worker_fails_in_flight_and_queued_messages(node):
    proxy = node.create(sp.GatedPaglet)
    pid = node.agent_info(proxy.agent_id)["pid"]
    held = proxy.send_future(Message("hold", arg=0))
    until_running(proxy, 1)
    queued = proxy.send_future(Message("note", arg=1))
    until_running(proxy, 1)  # and the note is queued
    assert proxy.mailbox_status()["queued"] == 1
    os.kill(pid, signal.SIGKILL)
    assert crashed_event(node, proxy.agent_id, 20) is not None
    for future in (held, queued):
        with pytest.raises(PagletCrashedError):
            future.get_reply(5)
    with pytest.raises(PagletCrashedError, match="killed by signal 9"):
        proxy.send(Message("note", arg=2))
    assert node.agent_info(proxy.agent_id)["crashed"] is True
    assert node.create(EchoPaglet).send(Message("echo", arg="alive")) == "alive"


def test_worker_that_exits_in_a_handler_is_crashed(node):
    proxy = node.create(sp.WorkingPaglet)
    with pytest.raises(PagletCrashedError, match="exited with code 3"):
        proxy.send("exit")
    proxy.dispose()
    assert node.list_agents() == []


def test_frozen_worker_is_declared_crashed_after_missed_heartbeats(node):
    proxy = node.create(sp.WorkingPaglet)
    pid = proxy.send("pid")
    os.kill(pid, signal.SIGSTOP)
    try:
        event = crashed_event(node, proxy.agent_id, 20)
        assert event is not None and "heartbeat" in event.error
        wait_until(lambda: not pid_alive(pid), 5, "the frozen worker to be killed")
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- the node's edges ---------------------------------------------------------------------
def test_api_key_is_required_on_the_zmq_front(make_node):
    node = make_node("locked", api_key="s3cret")
    proxy = node.create(EchoPaglet)
    with pytest.raises(AuthenticationError):
        HostClient().send(node.address, proxy.agent_id, "count")
    with pytest.raises(AuthenticationError):
        HostClient(api_key="wrong").health(node.address)
    assert HostClient(api_key="s3cret").send(node.address, proxy.agent_id, "count") == 1


def test_unreachable_node_is_a_clear_error_naming_address_and_op():
    client = HostClient(timeout=1.0)
    with pytest.raises(NodeUnreachableError) as info:
        client.send("tcp://127.0.0.1:9", "x", "echo")
    assert info.value.address == "tcp://127.0.0.1:9" and info.value.op == "send"
    assert "tcp://127.0.0.1:9" in str(info.value)


def test_slow_handler_times_out_with_request_timeout(node):
    proxy = node.create(sp.WorkingPaglet)
    with pytest.raises(RequestTimeoutError, match=r"within 0\.3 s"):
        proxy.send(Message("sleep", arg=1.0), timeout=0.3)
    assert proxy.send(Message("sleep", arg=0)) == "slept"


def test_bad_addresses_are_value_errors():
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        PagletProxy("http://localhost:1", "x")


def test_stop_leaves_no_worker_processes(make_node):
    node = make_node("stopper")
    pids = [node.create(sp.WorkingPaglet).send("pid") for _ in range(3)]
    template = node.template_process.pid
    node.stop()
    for pid in [*pids, template]:
        assert not pid_alive(pid)


def test_worker_thread_left_running_does_not_keep_stop_waiting(make_node):
    node = make_node("threads")
    proxy = node.create(sp.WorkingPaglet)
    proxy.send("spin-thread")  # a non-daemon thread that never ends: a stop that waited for it would hang
    pid = proxy.send("pid")
    node.stop()
    assert not pid_alive(pid)


def test_module_that_starts_threads_at_import_still_works_and_is_not_preloaded(make_node):
    node = make_node("alpha", allow_modules=["tests.threaded_paglets"])  # named, never imported here
    # Threads do not survive fork: the import-time thread runs in a worker only if
    # the worker imported the module itself rather than inheriting it from the template.
    first = node.create("tests.threaded_paglets:ThreadedModulePaglet")
    assert "import-time-thread" in first.send("threads")
    second = node.create("tests.threaded_paglets:ThreadedModulePaglet")  # after the template was replaced
    assert "import-time-thread" in second.send("threads")
    echo = node.create(EchoPaglet)
    assert echo.send(Message("echo", arg=1)) == 1


def test_sending_one_message_object_twice_delivers_it_twice(node):
    proxy = node.create(sp.SerialEchoPaglet)
    message = Message("add", arg=1)
    assert proxy.send(message) == 1 and proxy.send(message) == 2
    for _ in range(3):
        proxy.send_oneway(message)
    node.client.flush(node.address, 10)
    assert proxy.send(Message("add", arg=0)) == 5  # one handler: handled after the three oneway adds

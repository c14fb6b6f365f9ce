"""Paglets written for the HTTP paglets API run unchanged (issue 15): each test is such code, on real nodes."""

from __future__ import annotations

import threading
from concurrent.futures import Future, wait

import pytest

from paglets.core.agent import ACTIVE, INACTIVE, PagletContext
from paglets.core.errors import (
    AuthenticationError,
    HostError,
    LifecycleError,
    MessageQueuedError,
    PagletCrashedError,
)
from paglets.core.events import ContextEvent
from paglets.core.messages import DEACTIVATE, Message
from paglets.core.resources import ResourceRegistry
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.remote.client import HostClient
from tests import compat_paglets as cp

FAST = {"mesh_gossip_interval": 0.1, "mesh_offline_after": 0.6}
QUEUE_ONLY = DeactivationPolicy(activate_on_message=False)


def in_thread(fn, *args, **kwargs) -> Future:
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


# -- the context a paglet sees -------------------------------------------------------------------
def test_context_host_is_the_node_a_paglet_runs_on(node):
    node.set_property("color", "teal")
    proxy = node.create(cp.NodeAware)
    assert proxy.send("whoami") == {"name": "alpha", "address": node.address, "color": "teal"}


def test_work_dir_is_made_only_when_asked(node):
    proxy = node.create(cp.NodeAware)
    assert proxy.send("work_dir") == [False, True, True]


def test_available_hosts_and_waiting_for_a_host(make_node):
    alpha = make_node("alpha", **FAST)
    proxy = alpha.create(cp.NodeAware)
    with pytest.raises(HostError, match="'beta' was not seen online"):
        proxy.send(Message("wait_for", {"name": "beta", "timeout": 0.2}))
    beta = make_node("beta", peers=[alpha.address], **FAST)
    assert proxy.send(Message("wait_for", {"name": "beta", "timeout": 10.0})) == beta.address
    assert proxy.send("hosts") == ["alpha", "beta"]
    assert proxy.send(Message("hosts", {"include_self": False})) == ["beta"]


# -- PagletContext(host): host-side code ----------------------------------------------------------
def test_host_side_code_acts_through_a_paglet_context(node):
    context = PagletContext(node)
    assert (context.name, context.address, context.host) == ("alpha", node.address, node)
    proxy = context.create_paglet(cp.Counter, cp.CounterState(count=1))
    assert context.send(proxy.agent_id, Message("inc")) == 2
    assert [p.agent_id for p in context.get_proxies(ACTIVE)] == [proxy.agent_id]
    assert [h.name for h in context.available_hosts()] == ["alpha"]
    with pytest.raises(HostError, match=r"PagletContext\(host, agent_id\)"):
        context.work_dir()
    its_own = PagletContext(node, proxy.agent_id)
    assert its_own.work_dir().is_dir() and isinstance(its_own.resources(), ResourceRegistry)
    context.deactivate(proxy.agent_id, reason="night")
    assert proxy.is_state(INACTIVE)


# -- messages ----------------------------------------------------------------------------------------
def test_a_deactivate_message_parks_the_paglet_without_reaching_its_handler(node):
    proxy = node.create(cp.Counter)
    proxy.send("inc")
    request = DeactivationRequest(reason="quiet hours", policy=QUEUE_ONLY)
    reply = proxy.send(Message(DEACTIVATE).set_arg("request", request.to_wire()))
    assert reply == {"deactivated": True, "proxy": proxy.to_wire()}
    info = node.agent_info(proxy.agent_id)
    assert info["active"] is False and info["policy"]["activate_on_message"] is False
    assert node.get_state(proxy.agent_id)["seen"] == ["inc"]


def test_host_wait_message_is_woken_when_the_paglet_takes_mail(node):
    proxy = node.create(cp.NodeAware)
    assert node.wait_message(proxy.agent_id, timeout=0.1) is False
    woken = in_thread(node.wait_message, proxy.agent_id, timeout=30)
    for _ in range(100):  # the wait starts in the worker at a moment nobody can see: ping until it is woken
        proxy.send("ping")
        if wait([woken], timeout=0.1).done:
            break
    assert woken.result(0) is True


def test_host_side_mail_waits_are_bounded_so_the_paglet_stays_manageable(node):
    proxy = node.create(cp.NodeAware)
    waiters = [in_thread(node.wait_message, proxy.agent_id, timeout=30) for _ in range(4)]
    refused = None
    for _ in range(100):  # the four waits reach the worker at moments nobody can see: try until one is refused
        try:
            node.wait_message(proxy.agent_id, timeout=0.05)
        except LifecycleError as exc:
            refused = exc
            break
    assert refused is not None and proxy.agent_id in str(refused)
    assert proxy.send("ping") is not None and node.get_state(proxy.agent_id) is not None  # still served
    node.notify_all_messages(proxy.agent_id)
    assert [w.result(10) for w in waiters] == [True] * 4


def test_host_notify_wakes_a_paglet_waiting_for_mail(node):
    proxy = node.create(cp.NodeAware)
    waiting = proxy.send_future(Message("wait_mail", {"timeout": 30}))
    for _ in range(100):  # as above: notify until the paglet's wait has begun and is woken
        node.notify_all_messages(proxy.agent_id)
        if waiting.wait_for_reply(0.1):
            break
    assert waiting.get_reply(0) is True
    node.notify_message(proxy.agent_id)  # nobody waits: nothing happens


# -- lifecycle ------------------------------------------------------------------------------------
def test_create_remote_with_an_agent_id(make_node):
    alpha = make_node("alpha")
    beta = make_node("beta")
    proxy = alpha.create_remote(beta.address, cp.Counter, cp.CounterState(count=9), agent_id="counter-9")
    assert proxy.agent_id == "counter-9" and proxy.get_address() == beta.address
    assert beta.get_state("counter-9", cp.CounterState).count == 9
    assert proxy.is_remote(alpha.address) and not proxy.is_remote(beta.address)


def test_resources_for_is_the_paglets_registry_and_host_side_cleanups_run_when_it_goes(node):
    proxy = node.create(cp.NodeAware)
    registry = node.resources_for(proxy.agent_id)
    assert isinstance(registry, ResourceRegistry)
    closed: list[str] = []
    registry.register("sidecar", lambda: closed.append("sidecar"))
    assert node.resources_for(proxy.agent_id).status() == {"db": False, "sidecar": False}
    proxy.dispose()
    assert closed == ["sidecar"]


def test_a_proxy_tells_active_from_parked_by_flag(node):
    proxy = node.create(cp.Counter)
    assert proxy.is_state(flag=ACTIVE) and not proxy.is_state(INACTIVE)
    node.deactivate(proxy.agent_id)
    assert proxy.is_state(flag=INACTIVE) and proxy.is_state(ACTIVE | INACTIVE) and not proxy.is_active()


# -- listings ----------------------------------------------------------------------------------------
LISTING_KEYS = {"exitcode", "resources", "state_class_name", "queued_count"}


def test_info_list_and_mailbox_carry_the_fields_of_the_http_api(node):
    proxy = node.create(cp.NodeAware)
    proxy.send("ping")
    info = proxy.info()
    assert LISTING_KEYS <= info.keys() and {"agent_id", "class_name", "active", "mailbox"} <= info.keys()
    assert info["exitcode"] is None and info["resources"] == {"db": False}
    assert info["state_class_name"] == "tests.compat_paglets:CounterState" and info["queued_count"] == 0
    [listed] = node.list_agents()
    assert {key: listed[key] for key in LISTING_KEYS} == {key: info[key] for key in LISTING_KEYS}
    status = proxy.mailbox_status()
    assert status["queued_count"] == status["queued"] == 0 and status["delivered_count"] == 1
    assert node.mailbox_status(proxy.agent_id)["delivered_count"] == 1


def test_a_parked_paglet_lists_its_state_class_and_its_queued_mail(node):
    proxy = node.create(cp.Counter)
    node.deactivate(proxy.agent_id, DeactivationRequest(policy=QUEUE_ONLY))
    with pytest.raises(MessageQueuedError):  # raised once the message is on disk
        proxy.send("inc")
    [parked] = node.list_agents(active=False, inactive=True)
    assert parked["state_class_name"] == "tests.compat_paglets:CounterState"
    assert (parked["queued_count"], parked["exitcode"], parked["resources"]) == (1, None, {})


# -- clients ----------------------------------------------------------------------------------------
def test_a_client_takes_its_timeout_first_and_its_key_from_the_environment(make_node, monkeypatch):
    locked = make_node("locked", api_key="s3cret")
    monkeypatch.delenv("PAGLETS_API_KEY", raising=False)
    with pytest.raises(AuthenticationError):
        HostClient(10).create(locked.address, cp.Counter)
    monkeypatch.setenv("PAGLETS_API_KEY", "s3cret")
    proxy = HostClient(10).create(locked.address, cp.Counter)
    assert proxy.send("inc") == 1


# -- the two deliberate differences, one class attribute away (docs/compatibility.md) ---------------
def test_a_failing_run_leaves_the_paglet_running_by_default(node):
    since = node.events.last_event_id
    proxy = node.create(cp.FailingRun)
    done = node.events.wait_for(kind="run-finished", agent_id=proxy.agent_id, since=since, timeout=30)
    assert done is not None and done.details.get("ok") is False
    assert proxy.send("hello") == "still here" and proxy.is_active()


def test_run_failure_crash_marks_the_paglet_crashed(node):
    since = node.events.last_event_id
    proxy = node.create(cp.CrashingRun)
    crash = node.events.wait_for(kind="crash", agent_id=proxy.agent_id, since=since, timeout=30)
    assert crash is not None and "ValueError: the route file is missing" in crash.error
    with pytest.raises(PagletCrashedError, match="route file is missing"):
        proxy.send("hello")
    info = node.agent_info(proxy.agent_id)
    assert info["crashed"] is True and info["active"] is False
    assert proxy.is_state(ACTIVE | INACTIVE) is False


def recorded(proxy) -> dict:
    return proxy.send("log")


def assert_never_overlapped(log: list[str], count: int) -> None:
    assert len(log) == 2 * count
    for index in range(0, len(log), 2):
        assert log[index].startswith("enter") and log[index + 1] == log[index].replace("enter", "exit"), log


def test_mailbox_workers_1_runs_one_message_at_a_time_including_mail_delivered_on_activation(node):
    proxy = node.create(cp.SerialRecorder)
    node.deactivate(proxy.agent_id, DeactivationRequest(policy=QUEUE_ONLY))
    for n in range(4):
        proxy.send_oneway(Message("work", {"n": n}))
    node.activate(proxy.agent_id)
    result = recorded(proxy)  # queued behind the parked mail: it runs once that has run
    assert result["most_inside"] == 1
    assert_never_overlapped(result["log"], 4)


def test_by_default_handlers_run_concurrently(node):
    # The same mail to the same paglet but for MAILBOX_WORKERS (4): its handlers do overlap.
    proxy = node.create(cp.ConcurrentRecorder)
    node.deactivate(proxy.agent_id, DeactivationRequest(policy=QUEUE_ONLY))
    for n in range(4):
        proxy.send_oneway(Message("work", {"n": n}))
    node.activate(proxy.agent_id)
    replies = [proxy.send_future(Message("work", {"n": n})) for n in range(4, 6)]
    assert all(reply.wait_for_reply(30) for reply in replies)
    assert recorded(proxy)["most_inside"] > 1


# -- events ----------------------------------------------------------------------------------------
def test_a_listener_sees_each_lifecycle_step_as_a_context_event(make_node):
    alpha, beta = make_node("alpha"), make_node("beta")
    seen: list[ContextEvent] = []
    alpha.add_listener(seen.append)
    beta.add_listener(seen.append)
    proxy = alpha.create(cp.Counter)
    alpha.deactivate(proxy.agent_id)
    alpha.activate(proxy.agent_id)
    moved = alpha.dispatch(proxy.agent_id, beta.address)
    moved.dispose()
    steps_kinds = {"create", "deactivate", "activate", "dispatch", "arrival", "dispose"}
    mine = [event for event in seen if event.agent_id == proxy.agent_id and event.kind in steps_kinds]
    on_alpha = [event.kind for event in mine if event.host_name == "alpha"]
    assert on_alpha == ["create", "deactivate", "activate", "dispatch"]
    assert [event.kind for event in mine if event.host_name == "beta"] == ["arrival", "dispose"]
    for event in mine:
        assert event.class_name == "tests.compat_paglets:Counter" and event.timestamp > 0
        assert event.error is None and event.message_id is None and event.service_name is None
        assert isinstance(event.event_id, int) and isinstance(event.details, dict)
    dispatched = next(event for event in mine if event.kind == "dispatch")
    assert dispatched.details["target"] == beta.address

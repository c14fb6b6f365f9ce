"""Lifecycle order as paglet authors expect it: resources released before a paglet leaves, work dirs
removed behind it, run() begun before its first message, no checkpoint outliving a departure."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from paglets.core.agent import INACTIVE
from paglets.core.errors import LifecycleError, NodeUnreachableError
from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationRequest
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.remote.transfer import TransferTicket
from tests import lifecycle_paglets as lp
from tests.conftest import wait_until


@pytest.fixture
def two(make_node):
    return make_node("alpha"), make_node("beta")


def open_resource(proxy: PagletProxy, name: str, *, fail: bool = False, suppress: bool = False) -> None:
    assert proxy.send(Message("open", {"name": name, "fail": fail, "suppress": suppress})) == name


def log_of(proxy: PagletProxy) -> list[str]:
    return proxy.send("log")


def work_dir(node, agent_id: str) -> Path:
    return Path(node.persistence_dir) / "work" / agent_id


# -- resources are released before the paglet leaves -----------------------------------------
def test_resources_are_released_after_on_dispatching_and_before_the_state_leaves(two):
    alpha, beta = two
    proxy = alpha.create(lp.TidyPaglet)
    open_resource(proxy, "db")
    open_resource(proxy, "cache")
    moved = alpha.dispatch(proxy.agent_id, beta.address)
    # Newest first, after the hook; what the cleanups wrote to the state travelled with it.
    assert log_of(moved) == ["on_dispatching", "cleanup cache", "cleanup db", "on_arrival"]


def test_resources_are_released_before_a_retract_pulls_the_paglet_back(two):
    alpha, beta = two
    proxy = alpha.dispatch(alpha.create(lp.TidyPaglet).agent_id, beta.address)
    open_resource(proxy, "db")
    back = alpha.retract(beta.address, proxy.agent_id)
    assert back.host_url == alpha.address
    assert log_of(back) == ["on_dispatching", "on_arrival", "on_reverting", "cleanup db", "on_arrival"]


def test_resources_are_released_before_a_paglet_is_parked(node):
    proxy = node.create(lp.TidyPaglet)
    open_resource(proxy, "db")
    node.deactivate(proxy.agent_id, DeactivationRequest(reason="test"))
    node.activate(proxy.agent_id)
    assert log_of(proxy) == ["on_deactivating", "cleanup db", "on_activation"]


def test_a_failing_cleanup_cancels_the_dispatch_and_the_paglet_stays_active(two):
    alpha, beta = two
    proxy = alpha.create(lp.TidyPaglet)
    open_resource(proxy, "db", fail=True)
    with pytest.raises(LifecycleError, match=r"'?db'?: RuntimeError: db is still busy"):
        alpha.dispatch(proxy.agent_id, beta.address)
    assert proxy.send("where") == "alpha"  # still here, and its mailbox flows
    assert alpha.agent_info(proxy.agent_id)["active"]
    assert beta.list_agents() == []
    assert log_of(proxy) == ["on_dispatching", "cleanup db"]


def test_a_failing_cleanup_registered_with_suppress_does_not_stop_the_dispatch(two):
    alpha, beta = two
    proxy = alpha.create(lp.TidyPaglet)
    open_resource(proxy, "db", fail=True, suppress=True)
    moved = alpha.dispatch(proxy.agent_id, beta.address)
    assert moved.send("where") == "beta"
    assert log_of(moved) == ["on_dispatching", "cleanup db", "on_arrival"]


def test_a_failing_cleanup_cancels_a_retract_and_the_paglet_stays_where_it_is(two):
    alpha, beta = two
    proxy = alpha.dispatch(alpha.create(lp.TidyPaglet).agent_id, beta.address)
    open_resource(proxy, "db", fail=True)
    with pytest.raises(LifecycleError, match="db is still busy"):
        alpha.retract(beta.address, proxy.agent_id)
    assert proxy.send("where") == "beta"
    assert alpha.list_agents() == []


def test_a_failing_cleanup_cancels_the_deactivation_and_the_paglet_stays_active(node):
    proxy = node.create(lp.TidyPaglet)
    open_resource(proxy, "db", fail=True)
    with pytest.raises(LifecycleError, match="db is still busy"):
        node.deactivate(proxy.agent_id, DeactivationRequest(reason="test"))
    assert node.agent_info(proxy.agent_id)["active"]
    assert log_of(proxy) == ["on_deactivating", "cleanup db"]
    assert node.agent_ids(INACTIVE) == []


def test_a_failing_cleanup_cancels_the_disposal_and_the_paglet_stays_active(node):
    proxy = node.create(lp.TidyPaglet)
    open_resource(proxy, "db", fail=True)
    with pytest.raises(LifecycleError, match="db is still busy"):
        node.dispose(proxy.agent_id)
    assert node.agent_info(proxy.agent_id)["active"]
    assert log_of(proxy) == ["on_disposing", "cleanup db"]


# -- work directories -----------------------------------------------------------------------------
def test_the_work_dir_is_removed_behind_a_dispatched_paglet(two):
    alpha, beta = two
    proxy = alpha.create(lp.TidyPaglet)
    scratch = Path(proxy.send("scratch"))
    assert scratch.parent == work_dir(alpha, proxy.agent_id) and scratch.exists()
    alpha.dispatch(proxy.agent_id, beta.address)
    assert not work_dir(alpha, proxy.agent_id).exists()


def test_the_work_dir_is_removed_behind_a_retracted_paglet(two):
    alpha, beta = two
    proxy = alpha.dispatch(alpha.create(lp.TidyPaglet).agent_id, beta.address)
    assert Path(proxy.send("scratch")).parent == work_dir(beta, proxy.agent_id)
    alpha.retract(beta.address, proxy.agent_id)
    assert not work_dir(beta, proxy.agent_id).exists()


def test_the_work_dir_of_a_parked_paglet_goes_when_it_is_disposed_of(node):
    proxy = node.create(lp.TidyPaglet)
    assert Path(proxy.send("scratch")).parent == work_dir(node, proxy.agent_id)
    node.deactivate(proxy.agent_id, DeactivationRequest(reason="test"))
    node.dispose(proxy.agent_id)
    assert not work_dir(node, proxy.agent_id).exists()


# -- run() first -----------------------------------------------------------------------------------
def test_run_has_begun_before_the_first_message_is_handled(node):
    """A message sent the moment ``create`` returns is handled only once ``run()`` has begun."""
    futures = [node.create(lp.TidyPaglet).send_future("run-began") for _ in range(20)]
    assert [future.get_reply(20) for future in futures] == [True] * len(futures)


# -- checkpoints ---------------------------------------------------------------------------------
def test_no_checkpoint_brings_back_a_paglet_that_left_before_its_old_node_crashed(node_process):
    """The old node dies the moment the paglet has arrived, before it hears so; it comes back without it."""
    alpha = node_process("alpha", "--checkpoint-interval", "0.1")
    beta = node_process("beta")
    client = HostClient()
    proxy = client.create(alpha.address, "tests.lifecycle_paglets:TidyPaglet", {"kill_on_arrival": alpha.pid})
    checkpoint = alpha.log_path.parent / "alpha-data" / "checkpoints" / f"{proxy.agent_id}.mpk"
    wait_until(checkpoint.exists, 10, "alpha's first checkpoint of the paglet")
    ticket = TransferTicket(beta.address, timeout=10).to_wire()
    with pytest.raises(NodeUnreachableError):  # alpha dies while it waits for beta's answer
        client.request(alpha.address, "dispatch", {"agent": proxy.agent_id, "ticket": ticket}, watch_connection=True)
    assert alpha.proc.wait(10) == -signal.SIGKILL
    assert PagletProxy(beta.address, proxy.agent_id, client).send("where") == "beta"
    again = node_process("alpha")  # the same data dir: a checkpoint left there would come back as a paglet
    assert client.list_agents(again.address, inactive=True) == []

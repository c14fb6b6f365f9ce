"""Paglets moving between nodes: dispatch, clone, retract, itineraries, forwarding, files."""

from __future__ import annotations

import os
import threading

import pytest

from paglets.core.errors import TransferError
from paglets.core.messages import UNQUEUED_PRIORITY, Message
from paglets.remote.proxy import PagletProxy
from paglets.remote.transfer import TransferTicket
from tests import sample_paglets as sp
from tests.conftest import pid_alive, wait_until


@pytest.fixture
def two(make_node):
    return make_node("alpha"), make_node("beta")


def hooks(node, agent_id):
    return [(e["hook"], e["node"]) for e in node.get_state(agent_id)["events"]]


def last_event(node, agent_id, hook):
    return [e for e in node.get_state(agent_id)["events"] if e["hook"] == hook][-1]


# -- dispatch ---------------------------------------------------------------------
def test_dispatch_runs_hooks_with_the_right_event_fields(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    moved = alpha.dispatch(proxy.agent_id, beta.address)
    assert moved.host_url == beta.address and moved.send("where") == "beta"
    assert hooks(beta, proxy.agent_id) == [
        ("on_creation", "alpha"),
        ("on_dispatching", "alpha"),
        ("on_arrival", "beta"),
    ]
    leaving = last_event(beta, proxy.agent_id, "on_dispatching")
    arriving = last_event(beta, proxy.agent_id, "on_arrival")
    for event, here in ((leaving, alpha), (arriving, beta)):
        assert event["event"] == "MobilityEvent" and event["reason"] == "dispatch"
        assert (event["host_name"], event["host_address"]) == (here.name, here.address)
        assert (event["source_host_name"], event["source_host_address"]) == ("alpha", alpha.address)
        assert (event["target_host_name"], event["target_host_address"]) == ("beta", beta.address)
    assert alpha.list_agents() == []


def test_state_and_mailbox_counts_travel(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    for _ in range(5):
        proxy.send("count")
    alpha.dispatch(proxy.agent_id, beta.address)
    assert PagletProxy(beta.address, proxy.agent_id).send("count") == 6


def test_old_proxy_follows_the_paglet_through_several_moves(make_node):
    alpha, beta, gamma = make_node("alpha"), make_node("beta"), make_node("gamma")
    proxy = alpha.create(sp.TravellerPaglet)
    stale = PagletProxy(alpha.address, proxy.agent_id)
    alpha.dispatch(proxy.agent_id, beta.address)
    beta.dispatch(proxy.agent_id, gamma.address)
    assert stale.send("where") == "gamma"
    assert stale.host_url == gamma.address  # the chain collapsed in one step
    assert stale.send("where") == "gamma"
    gamma.dispatch(proxy.agent_id, alpha.address)
    assert stale.send("where") == "alpha" and stale.host_url == alpha.address
    assert stale.send("count") == 1


def test_self_dispatch_returns_the_handlers_reply_and_the_old_worker_exits(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    old_pid = alpha.agent_info(proxy.agent_id)["pid"]
    reply = proxy.send(Message("go", arg=beta.address))
    assert reply == {"left": True, "now_at": beta.address}
    assert proxy.host_url == beta.address  # the reply told the proxy where it went
    assert proxy.send("where") == "beta"
    wait_until(lambda: not pid_alive(old_pid), 5, "the source worker to exit")
    assert alpha.list_agents() == []


def test_queued_messages_travel_in_order(two):
    alpha, beta = two
    gated = alpha.create(sp.GatedPaglet)
    held = gated.send_future(Message("hold", arg="first"))
    queued = [gated.send_future(Message("note", arg=i)) for i in range(10)]
    # The paglet answers once the hold runs; sent after the notes, the answer also proves them queued.
    assert gated.send_future(Message("until-running", arg=1, priority=UNQUEUED_PRIORITY)).get_reply(30) is True
    assert gated.mailbox_status()["queued"] == 10
    mover = threading.Thread(target=lambda: alpha.dispatch(gated.agent_id, beta.address))
    mover.start()
    # Nothing announces that a move has frozen the mailbox: the phase can only be read.
    phase = lambda: alpha.agent_info(gated.agent_id, resources=False)["phase"]  # noqa: E731
    wait_until(lambda: phase() == "moving", 5, "the move to wait for the handler")
    gated.send(Message("open", priority=UNQUEUED_PRIORITY))
    mover.join(20)
    assert not mover.is_alive(), "the move did not finish"
    assert held.get_reply(10) == "first"
    assert [f.get_reply(10) for f in queued] == list(range(10))
    state = beta.get_state(gated.agent_id)
    assert state["order"] == ["first", *map(str, range(10))]
    assert state["handled_on"] == ["alpha"] + ["beta"] * 10  # the queued ten travelled before they ran


# -- clone and retract -----------------------------------------------------------------
def test_clone_is_independent_and_hooks_see_both_ids(two):
    alpha, beta = two
    original = alpha.create(sp.TravellerPaglet)
    original.send("count")
    copy = alpha.clone(original.agent_id, beta.address)
    assert copy.agent_id != original.agent_id and copy.host_url == beta.address
    assert copy.send("count") == 2 and copy.send("count") == 3
    assert original.send("count") == 2
    assert [h for h, _ in hooks(alpha, original.agent_id)] == ["on_creation", "on_cloning", "on_cloned"]
    assert [h for h, _ in hooks(beta, copy.agent_id)] == ["on_creation", "on_cloning", "on_clone"]
    for node, agent_id, hook in ((alpha, original.agent_id, "on_cloned"), (beta, copy.agent_id, "on_clone")):
        event = last_event(node, agent_id, hook)
        assert (event["source_agent_id"], event["clone_agent_id"]) == (original.agent_id, copy.agent_id)
        assert (event["source_host_address"], event["target_host_address"]) == (alpha.address, beta.address)


def test_clone_on_the_same_node_and_through_a_proxy(node):
    original = node.create(sp.TravellerPaglet)
    here = original.clone()
    assert here.host_url == node.address and here.send("where") == "alpha"
    assert len(node.list_agents()) == 2
    assert hooks(node, here.agent_id)[-1] == ("on_clone", "alpha")


def test_retract_pulls_a_paglet_home(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    alpha.dispatch(proxy.agent_id, beta.address)
    back = alpha.retract(beta.address, proxy.agent_id)
    assert back.host_url == alpha.address and back.send("where") == "alpha"
    reverting = last_event(alpha, proxy.agent_id, "on_reverting")
    assert reverting["reason"] == "retract" and reverting["host_name"] == "beta"
    assert reverting["target_host_address"] == alpha.address
    assert beta.list_agents() == []


def test_proxy_dispatch_follows_the_paglet(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    assert proxy.dispatch(beta.address) is proxy
    assert proxy.host_url == beta.address and proxy.send("where") == "beta"


# -- itineraries ---------------------------------------------------------------------
def test_itinerary_driven_from_run_ends_with_the_full_history(two):
    alpha, beta = two
    since = beta.events.last_seq
    proxy = alpha.create(sp.TravellerPaglet)
    proxy.send(Message("tour", arg=[beta.address, alpha.address, beta.address]))

    def on_beta(kind: str, after: int):
        event = beta.events.wait_for(lambda e: e.kind == kind and e.agent_id == proxy.agent_id, 20, since=after)
        assert event is not None, f"no {kind} on beta after event #{after}"
        return event

    first_visit = on_beta("arrival", since)
    last_visit = on_beta("arrival", first_visit.seq)
    on_beta("run-finished", last_visit.seq)  # run() at the last stop ended the tour
    state = beta.get_state(proxy.agent_id)
    assert state["touring"] is False
    assert state["stops"] == ["beta", "alpha", "beta"]
    assert state["itinerary"]["completed"] and state["itinerary"]["current_index"] == 3
    assert [(e["hook"], e["node"]) for e in state["events"] if e["hook"] == "on_arrival"] == [
        ("on_arrival", "beta"), ("on_arrival", "alpha"), ("on_arrival", "beta"),
    ]  # fmt: skip


# -- refusals and failures -----------------------------------------------------------
def test_ticket_needing_a_missing_capability_is_refused_and_the_paglet_stays(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    proxy.send("count")
    ticket = TransferTicket(beta.address, required_capabilities=("gpu",))
    with pytest.raises(TransferError, match="gpu"):
        alpha.dispatch(proxy.agent_id, ticket)
    assert proxy.send("count") == 2 and proxy.send("where") == "alpha"
    assert beta.list_agents() == []


def test_ticket_expecting_another_code_version_is_refused(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    with pytest.raises(TransferError, match="code version"):
        alpha.dispatch(proxy.agent_id, TransferTicket(beta.address, expected_code_version="9.9-nope"))
    assert proxy.send("where") == "alpha"


def test_unreachable_target_fails_the_move_and_keeps_the_paglet(node):
    proxy = node.create(sp.TravellerPaglet)
    with pytest.raises(TransferError, match="cannot reach"):
        node.dispatch(proxy.agent_id, TransferTicket("tcp://127.0.0.1:9", timeout=1.0, retries=1, retry_interval=0.1))
    assert proxy.send("count") == 1


def test_failing_arrival_hook_keeps_the_paglet_at_the_source(two):
    alpha, beta = two
    proxy = alpha.create(sp.FussyTravellerPaglet)
    proxy.send("count")
    with pytest.raises(TransferError, match="will not land"):
        alpha.dispatch(proxy.agent_id, beta.address)
    assert proxy.send("count") == 2
    assert beta.list_agents() == []


def test_unknown_node_name_is_a_transfer_error(node):
    proxy = node.create(sp.TravellerPaglet)
    with pytest.raises(TransferError, match="no known node"):
        node.dispatch(proxy.agent_id, "nowhere")


# -- under load ---------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_sync_sender_loses_nothing_while_the_paglet_moves_twenty_times(two):
    alpha, beta = two
    proxy = alpha.create(sp.TravellerPaglet)
    sender = PagletProxy(alpha.address, proxy.agent_id)
    acked = 0
    errors: list[BaseException] = []
    stop = threading.Event()

    def send_forever() -> None:
        nonlocal acked
        while not stop.is_set():
            try:
                sender.send("count", timeout=20)
            except BaseException as exc:  # collected for the assertion
                errors.append(exc)
                return
            acked += 1

    thread = threading.Thread(target=send_forever)
    thread.start()
    here, there = alpha, beta
    for _ in range(20):
        here.dispatch(proxy.agent_id, there.address)
        here, there = there, here
    stop.set()
    thread.join(30)
    assert not thread.is_alive(), "the sender is still running"
    assert errors == []
    assert acked > 20
    assert PagletProxy(here.address, proxy.agent_id).send("count") == acked + 1


# -- registered files ------------------------------------------------------------------
def test_registered_file_travels_and_move_mode_removes_the_original(two, tmp_path):
    alpha, beta = two
    kept = tmp_path / "kept.txt"
    kept.write_text("copy me")
    taken = tmp_path / "taken.txt"
    taken.write_text("move me")
    proxy = alpha.create(sp.TravellerPaglet)
    proxy.send(Message("register", {"path": str(kept)}))
    proxy.send(Message("register", {"path": str(taken), "mode": "move"}))
    proxy.dispatch(beta.address)
    assert proxy.send(Message("read-file", arg="kept.txt")) == "copy me"
    assert proxy.send(Message("read-file", arg="taken.txt")) == "move me"
    assert kept.exists() and not taken.exists()
    landed = beta.registered_file_path_for(proxy.agent_id, "kept.txt")
    assert landed.parent == beta.work_dir_for(proxy.agent_id)


def test_registered_file_goes_with_a_clone(two, tmp_path):
    alpha, beta = two
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    proxy = alpha.create(sp.TravellerPaglet)
    proxy.send(Message("register", {"path": str(data)}))
    copy = proxy.clone(beta.address)
    assert beta.registered_file_path_for(copy.agent_id, "data.bin").read_bytes() == data.read_bytes()
    assert alpha.registered_file_path_for(proxy.agent_id, "data.bin") == data


def test_file_over_the_targets_limit_fails_clearly_and_the_paglet_stays(make_node, tmp_path):
    alpha = make_node("alpha")
    beta = make_node("beta", artifact_max_bytes=1024)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 4096)
    proxy = alpha.create(sp.TravellerPaglet)
    proxy.send(Message("register", {"path": str(big)}))
    with pytest.raises(TransferError, match="over this node's limit"):
        alpha.dispatch(proxy.agent_id, beta.address)
    assert proxy.send("where") == "alpha"
    assert beta.list_agents() == []

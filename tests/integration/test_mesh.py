"""Nodes that find each other by gossip and move paglets by node name."""

from __future__ import annotations

import pytest

from paglets.core.errors import HostError, TransferError
from paglets.core.messages import Message
from paglets.remote.proxy import PagletProxy
from tests import sample_paglets as sp
from tests.conftest import wait_until

FAST = {"mesh_gossip_interval": 0.1, "mesh_offline_after": 0.6}


@pytest.fixture
def mesh(make_node):
    alpha = make_node("alpha", **FAST)
    beta = make_node("beta", peers=[alpha.address], **FAST)
    gamma = make_node("gamma", peers=[beta.address], **FAST)
    for node in (alpha, beta, gamma):
        for other in ("alpha", "beta", "gamma"):
            assert node.mesh.wait_for_host(other, 5) is not None, f"{node.name} never heard of {other}"
    return alpha, beta, gamma


def test_every_node_learns_every_other_by_gossip(mesh):
    alpha, _beta, gamma = mesh
    hosts = {ref.name: ref for ref in alpha.list_hosts()}
    assert set(hosts) == {"alpha", "beta", "gamma"}
    assert hosts["gamma"].url == gamma.address and hosts["gamma"].online
    assert hosts["gamma"].code_version == gamma.mesh_version
    assert [ref.name for ref in gamma.list_hosts(include_self=False)] == ["alpha", "beta"]


def test_counts_tags_and_properties_travel(make_node):
    alpha = make_node("alpha", tags=["gpu"], properties={"zone": "eu"}, **FAST)
    beta = make_node("beta", peers=[alpha.address], **FAST)
    alpha.create(sp.TravellerPaglet)

    def seen_from_beta():
        ref = beta.mesh.lookup("alpha")
        return ref is not None and ref.active_count == 1 and ref

    # The mesh offers a wait for a node (wait_for_host), not for news about it: read the table.
    ref = wait_until(seen_from_beta, 5, "beta to see alpha's paglet")
    assert ref.tags == ("gpu",) and ref.properties == {"zone": "eu"}


def test_a_node_that_goes_away_is_offline_and_recognised_when_it_comes_back(make_node, tmp_path):
    alpha = make_node("alpha", **FAST)
    beta = make_node("beta", peers=[alpha.address], persistence_dir=tmp_path / "beta", **FAST)
    assert alpha.mesh.wait_for_host("beta", 5) is not None
    old_url = beta.address
    beta.stop()
    # Offline is silence for offline_after seconds: no event marks it, it can only be read.
    wait_until(lambda: not alpha.mesh.lookup("beta").online, 5, "beta to be marked offline")
    assert [r.name for r in alpha.list_hosts(online_only=True)] == ["alpha"]
    back = make_node("beta", peers=[alpha.address], persistence_dir=tmp_path / "beta", **FAST)
    ref = alpha.mesh.wait_for_host("beta", 5)
    assert ref is not None and ref.url == back.address != old_url


def test_paglets_move_by_node_name(mesh):
    alpha, beta, _gamma = mesh
    proxy = alpha.create(sp.TravellerPaglet)
    alpha.dispatch(proxy.agent_id, "gamma")
    assert proxy.send("where") == "gamma"
    reply = proxy.send(Message("go", arg="beta"))  # Paglet.dispatch by name, from a handler
    assert reply["now_at"] == beta.address and proxy.send("where") == "beta"
    copy = beta.clone(proxy.agent_id, "alpha")
    assert copy.send("where") == "alpha"


def test_a_node_with_another_code_version_is_listed_but_not_a_target(make_node):
    alpha = make_node("alpha", **FAST)
    other = make_node("other", peers=[alpha.address], mesh_version="2.0-elsewhere", **FAST)
    ref = alpha.mesh.wait_for_host("other", 5)
    assert ref is not None and ref.code_version == "2.0-elsewhere"
    proxy = alpha.create(sp.TravellerPaglet)
    with pytest.raises(TransferError, match="code version"):
        alpha.dispatch(proxy.agent_id, "other")
    with pytest.raises(TransferError, match="code version"):
        alpha.dispatch(proxy.agent_id, other.address)
    assert proxy.send("where") == "alpha"


def test_paglets_see_the_mesh_from_inside(mesh):
    alpha, _beta, _gamma = mesh
    proxy = alpha.create(sp.MeshWatcherPaglet)
    assert sorted(proxy.send("hosts")) == ["alpha", "beta", "gamma"]
    assert proxy.send(Message("online", arg="gamma")) is True
    assert proxy.send(Message("online", arg="nowhere")) is False
    assert proxy.send(Message("wait", {"name": "beta", "timeout": 2})) == "beta"
    with pytest.raises(HostError, match="'nowhere' was not seen online"):  # a timeout is an error (issue 15)
        proxy.send(Message("wait", {"name": "nowhere", "timeout": 0.3}))


def test_wait_for_host_is_woken_by_gossip(make_node):
    alpha = make_node("alpha", **FAST)
    assert alpha.mesh.wait_for_host("late", 0.2) is None
    late = make_node("late", peers=[alpha.address], **FAST)
    assert alpha.mesh.wait_for_host("late", 5).url == late.address


def test_an_old_proxy_follows_a_paglet_moved_by_name(mesh):
    alpha, _beta, gamma = mesh
    proxy = alpha.create(sp.TravellerPaglet)
    stale = PagletProxy(alpha.address, proxy.agent_id)
    alpha.dispatch(proxy.agent_id, "gamma")
    assert stale.send("where") == "gamma" and stale.host_url == gamma.address

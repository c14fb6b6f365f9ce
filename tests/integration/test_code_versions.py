"""A paglet moves only between nodes on the same code version, unless its ticket expects the target's.

The source refuses a target the mesh knows to run another version; the target
refuses a paglet from another version when the mesh did not know (a move by
address, no gossip). Both name the two versions.
"""

from __future__ import annotations

import pytest

from paglets.client.transfer import TransferTicket
from paglets.core.errors import TransferError
from tests import sample_paglets as sp

FAST = {"mesh_gossip_interval": 0.2, "mesh_offline_after": 5.0}


def test_the_target_refuses_a_paglet_from_another_version_naming_both(make_node):
    alpha = make_node("alpha", mesh=False, mesh_version="1.0-old")
    beta = make_node("beta", mesh=False, mesh_version="2.0-new")
    proxy = alpha.create(sp.TravellerPaglet)
    with pytest.raises(TransferError, match=r"runs code version '2\.0-new'.*from code version '1\.0-old'"):
        alpha.dispatch(proxy.agent_id, beta.address)
    with pytest.raises(TransferError, match=r"'2\.0-new'.*'1\.0-old'"):
        alpha.clone(proxy.agent_id, beta.address)
    assert proxy.send("where") == "alpha" and beta.list_agents() == []


def test_the_source_refuses_a_target_the_mesh_knows_on_another_version_naming_both(make_node):
    alpha = make_node("alpha", mesh_version="1.0-old", **FAST)
    make_node("beta", peers=[alpha.address], mesh_version="2.0-new", **FAST)
    assert alpha.mesh.wait_for_host("beta", 5) is not None
    proxy = alpha.create(sp.TravellerPaglet)
    with pytest.raises(TransferError, match=r"node beta runs code version '2\.0-new', node alpha runs '1\.0-old'"):
        alpha.dispatch(proxy.agent_id, "beta")
    assert proxy.send("where") == "alpha"


@pytest.mark.parametrize("mesh", [False, True])
def test_a_ticket_expecting_the_targets_version_allows_the_move(make_node, mesh):
    alpha = make_node("alpha", mesh=mesh, mesh_version="1.0-old", **FAST)
    beta = make_node("beta", mesh=mesh, peers=[alpha.address] if mesh else [], mesh_version="2.0-new", **FAST)
    if mesh:
        assert alpha.mesh.wait_for_host("beta", 5) is not None
    proxy = alpha.create(sp.TravellerPaglet)
    alpha.dispatch(proxy.agent_id, TransferTicket(beta.address, expected_code_version="2.0-new"))
    assert proxy.send("where") == "beta"

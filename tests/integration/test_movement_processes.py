"""Moves between separate paglets-node processes, including a target killed mid-move."""

from __future__ import annotations

import os
import signal
import textwrap
import threading

import pytest

from paglets.core.errors import TransferError
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from tests import sample_paglets as sp
from tests.conftest import wait_until

TRAVELLER = "tests.sample_paglets:TravellerPaglet"


def test_moves_across_three_node_processes(node_process):
    alpha, beta, gamma = node_process("alpha"), node_process("beta"), node_process("gamma")
    client = HostClient()
    proxy = client.create(alpha.address, TRAVELLER)
    stale = PagletProxy(alpha.address, proxy.agent_id)
    proxy.send("count")
    assert proxy.dispatch(beta.address).send("where") == "beta"
    assert proxy.dispatch(gamma.address).send("count") == 2
    assert stale.send("where") == "gamma" and stale.host_url == gamma.address
    copy = proxy.clone(alpha.address)
    assert copy.send("where") == "alpha" and copy.send("count") == 3
    assert client.retract(gamma.address, proxy.agent_id, beta.address) == beta.address
    assert stale.send("where") == "beta"
    events = client.get_state(beta.address, proxy.agent_id)["events"]
    assert [e["hook"] for e in events][-2:] == ["on_reverting", "on_arrival"]


def test_class_missing_on_the_target_is_refused_and_the_paglet_stays(node_process, tmp_path):
    code = tmp_path / "only_on_alpha"
    code.mkdir()
    (code / "local_paglets.py").write_text(
        textwrap.dedent(
            """
            from paglets.core.agent import Paglet, PagletState

            class LocalPaglet(Paglet[PagletState]):
                def handle_message(self, message):
                    return "still here"
            """
        )
    )
    pythonpath = os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")])
    alpha = node_process("alpha", "--allow-module", "local_paglets", env={"PYTHONPATH": pythonpath})
    beta = node_process("beta", "--allow-module", "local_paglets")  # allowed, but not there
    client = HostClient()
    proxy = client.create(alpha.address, "local_paglets:LocalPaglet")
    with pytest.raises(TransferError, match="cannot import"):
        proxy.dispatch(beta.address)
    assert proxy.send("ping") == "still here" and proxy.host_url == alpha.address


@pytest.mark.timeout(120)
def test_target_killed_during_a_50_mib_file_transfer_leaves_the_paglet_at_the_source(make_node, node_process, tmp_path):
    alpha = make_node("alpha")
    beta = node_process("beta")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(50 * 1024 * 1024))
    proxy = alpha.create(sp.TravellerPaglet)
    proxy.send("count")
    proxy.send(Message("register", {"path": str(big)}))
    artifacts = tmp_path / "beta-data" / "artifacts"
    outcome: list[BaseException | object] = []

    def move() -> None:
        try:
            outcome.append(alpha.dispatch(proxy.agent_id, beta.address))
        except BaseException as exc:  # collected for the assertion
            outcome.append(exc)

    mover = threading.Thread(target=move)
    mover.start()
    wait_until(
        lambda: any(p.stat().st_size > 0 for p in artifacts.glob("*.part")) if artifacts.exists() else False,
        30,
        "the upload to start",
        interval=0.002,
    )
    beta.proc.send_signal(signal.SIGKILL)
    mover.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], TransferError), outcome
    assert alpha.agent_info(proxy.agent_id)["phase"] == "ready"
    assert proxy.send("count") == 2 and proxy.send("where") == "alpha"
    assert alpha.registered_file_path_for(proxy.agent_id, "big.bin") == big

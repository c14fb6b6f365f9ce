"""One running node per data directory: a second refuses to start, a dead holder never blocks a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from paglets.core.errors import HostError
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.runtime.host import Host
from tests.conftest import ROOT

STUCK = "tests.sample_paglets:StuckPaglet"


def run_node_to_exit(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "paglets.cli.node", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30)


def test_a_second_node_on_a_held_data_dir_refuses_and_the_first_keeps_its_work(node_process, tmp_path):
    alpha = node_process("alpha")
    data_dir = tmp_path / "alpha-data"
    client = HostClient(timeout=30)
    agent_id = client.create(alpha.address, STUCK).agent_id
    kept = Path(client.send(alpha.address, agent_id, Message("touch", arg="mine")))
    assert kept.is_relative_to(data_dir)

    second = run_node_to_exit("--name", "alpha", "--port", "0", "--no-http", "--data-dir", str(data_dir))
    assert second.returncode == 1, second.stderr
    errors = [line for line in second.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, second.stderr
    assert f"pid {alpha.pid}" in errors[0] and str(data_dir) in errors[0]
    assert "--data-dir" in errors[0] and "--name" in errors[0]
    assert "Traceback" not in second.stderr and second.stdout == ""

    assert kept.read_text() == "mine"  # its work directory was not wiped
    assert client.send(alpha.address, agent_id, Message("note", arg=1)) == [1]

    assert alpha.stop(signal.SIGKILL) == -signal.SIGKILL
    again = node_process("alpha")  # the same data directory: the dead holder's lock is gone with it
    assert client.ping(again.address)["name"] == "alpha"


def test_a_host_in_the_same_process_cannot_take_a_held_data_dir(make_node, tmp_path):
    data_dir = tmp_path / "shared"
    make_node("alpha", persistence_dir=data_dir)
    other = Host("beta", persistence_dir=data_dir, mesh_lan_discovery=False)
    with pytest.raises(HostError, match=f"pid {os.getpid()}"):
        other.start_background()
    assert not other.running

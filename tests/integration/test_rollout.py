"""Code rollout: nodes that follow a git checkout update, reinstall and restart on ``update``.

Every test builds a real bare repository in tmp_path and a clone of it as the
node's checkout, holding a tiny package (``fleetpkg``) whose paglet reports a
marker version file read when its module is imported. Nodes run as real
``paglets-node`` processes; the install command is overridden to append a
line to a file, so no test runs pip.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from paglets.core.errors import ForbiddenError, HostError, ProtocolError
from paglets.core.messages import Message
from paglets.node.host import Host
from paglets.remote.client import HostClient
from tests.conftest import ROOT, NodeProcess, wait_until

KEY_VAR = "PAGLETS_ROLLOUT_KEY"
KEY = "rollout-s3cret"
FAST = ("--gossip-interval", "0.2", "--offline-after", "5")

PAGLET_CODE = """\
from dataclasses import dataclass
from pathlib import Path

from paglets.core.agent import Paglet, PagletState

VERSION = (Path(__file__).parent / "version.txt").read_text().strip()  # read once, when imported


@dataclass
class CounterState(PagletState):
    count: int = 0


class VersionPaglet(Paglet[CounterState]):
    State = CounterState

    def handle_message(self, message):
        if message.kind == "add":
            with self.locked():
                self.state.count += int(message.arg)
                return self.state.count
        if message.kind == "version":
            return VERSION
        return super().handle_message(message)
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=fleet", "-c", "user.email=fleet@example.org", "-c", "init.defaultBranch=main", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


class Fleet:
    """A bare 'origin', a working clone to commit from, and a clone the node runs from."""

    def __init__(self, root: Path):
        self.root = root
        self.origin = root / "origin.git"
        self.work = root / "work"
        self.checkout = root / "checkout"
        self.installs = root / "installs.log"
        self.origin.mkdir(parents=True)
        git(self.origin, "init", "--bare", "--quiet")
        self.work.mkdir()
        git(self.work, "init", "--quiet")
        (self.work / "fleetpkg").mkdir()
        (self.work / "fleetpkg" / "__init__.py").write_text("")
        (self.work / "fleetpkg" / "paglet.py").write_text(PAGLET_CODE)
        self.commit("1")
        git(self.work, "remote", "add", "origin", str(self.origin))
        git(self.work, "push", "--quiet", "-u", "origin", "main")
        git(root, "clone", "--quiet", str(self.origin), str(self.checkout))

    def commit(self, version: str) -> str:
        (self.work / "fleetpkg" / "version.txt").write_text(version + "\n")
        git(self.work, "add", "-A")
        git(self.work, "commit", "--quiet", "-m", f"version {version}")
        return git(self.work, "rev-parse", "HEAD")

    def push(self, version: str) -> str:
        head = self.commit(version)
        git(self.work, "push", "--quiet", "origin", "main")
        return head

    def head(self) -> str:
        return git(self.checkout, "rev-parse", "HEAD")

    def node_args(self) -> tuple[str, ...]:
        install = shlex.join(["sh", "-c", f"echo installed >> {shlex.quote(str(self.installs))}"])
        return (
            "--auto-update-from-git", "--git-repo-root", str(self.checkout), "--update-install-command", install,
            "--allow-module", "fleetpkg", *FAST,
        )  # fmt: skip

    def env(self, **extra: str) -> dict[str, str]:
        return {"PYTHONPATH": os.pathsep.join([str(self.checkout), str(ROOT)]), **extra}


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path / "fleet")


def keyed_node(node_process, fleet: Fleet, name: str = "alpha", *extra: str) -> NodeProcess:
    return node_process(name, *fleet.node_args(), "--api-key-env", KEY_VAR, *extra, env=fleet.env(**{KEY_VAR: KEY}))


def read_announcement(node: NodeProcess, timeout: float) -> tuple[str, str]:
    """The address and http lines a (re)started node prints, up to its ``ready``; bounded by ``timeout``."""
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def read() -> None:  # a daemon thread: readline blocks, the test waits on the queue with a deadline
        for line in node.proc.stdout:
            lines.put(line)
            if line.startswith("ready"):
                return
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    address = http = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if not line:
            break
        if line.startswith("address "):
            address = line.split()[1]
        elif line.startswith("http "):
            http = line.split()[1]
        elif line.startswith("ready"):
            return address, http
    pytest.fail(f"node did not announce itself again within {timeout} s: {node.log_path.read_text()[-2000:]}")


def test_an_update_restarts_the_node_on_new_code_and_its_paglets_survive(fleet, node_process):
    node = keyed_node(node_process, fleet)
    client = HostClient(api_key=KEY)
    first = fleet.head()
    assert client.health(node.address)["code_version"] == first
    active = client.create(node.address, "fleetpkg.paglet:VersionPaglet", {"count": 40}, agent_id="busy")
    assert active.send(Message("add", arg=2)) == 42
    assert active.send(Message("version")) == "1"
    client.create(node.address, "fleetpkg.paglet:VersionPaglet", {"count": 7}, agent_id="sleeper")
    client.deactivate(node.address, "sleeper")

    second = fleet.push("2")
    answer = client.update(node.address, target=second[:12])
    assert (answer["before"], answer["after"], answer["changed"], answer["restarting"]) == (first, second, True, True)

    address, _ = read_announcement(node, 60)
    assert node.proc.poll() is None  # the same process, exec'ed on the new code
    assert fleet.installs.read_text() == "installed\n"
    assert client.health(address)["code_version"] == second
    proxy = client.proxy(address, "busy")
    assert proxy.send(Message("version")) == "2"  # the new module, imported afresh
    assert proxy.send(Message("add", arg=1)) == 43  # with the state it had
    parked = {a["agent_id"]: a for a in client.list_agents(address, active=False, inactive=True)}
    assert "sleeper" in parked  # parked before, parked after
    assert client.activate(address, "sleeper").send(Message("add", arg=1)) == 8


def test_the_new_version_is_advertised_in_the_mesh(fleet, node_process):
    alpha = keyed_node(node_process, fleet, "alpha")
    beta = keyed_node(node_process, fleet, "beta", "--peer", alpha.address)
    client = HostClient(api_key=KEY)
    first, second = fleet.head(), fleet.push("2")
    assert client.update(beta.address)["restarting"] is True
    beta_address, _ = read_announcement(beta, 60)
    assert client.health(beta_address)["code_version"] == second

    def alpha_sees_beta() -> dict | None:  # the mesh table changes on gossip: nothing to wait on but reads
        hosts = {h["name"]: h for h in client.request(alpha.address, "hosts", {}).header["hosts"]}
        beta_entry = hosts.get("beta") or {}
        return hosts if beta_entry.get("url") == beta_address and beta_entry.get("code_version") == second else None

    hosts = wait_until(alpha_sees_beta, 30, "alpha to hear beta's new code version")
    assert hosts["alpha"]["code_version"] == first  # alpha was not asked: it still runs the first commit


def test_a_node_refuses_to_start_on_a_dirty_checkout(fleet, tmp_path):
    (fleet.checkout / "fleetpkg" / "paglet.py").write_text(PAGLET_CODE + "# local change\n")
    cmd = [
        sys.executable, "-m", "paglets.cli.node", "--name", "dirty", "--port", "0", "--http-port", "0",
        "--data-dir", str(tmp_path / "dirty"), *fleet.node_args(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, **fleet.env()})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: cannot start node dirty")
    assert "uncommitted changes (fleetpkg/paglet.py)" in lines[-1]
    assert "Traceback" not in done.stderr


def test_updates_are_refused_without_a_key_or_curve(fleet, node_process):
    node = node_process("open", *fleet.node_args(), env=fleet.env())
    with pytest.raises(ForbiddenError, match="neither an API key nor CurveZMQ"):
        HostClient().update(node.address)
    assert fleet.head() == git(fleet.origin, "rev-parse", "HEAD")  # nothing was fetched, nothing ran
    assert not fleet.installs.exists()


def test_updates_are_refused_on_a_node_behind_a_relay(fleet, node_process, relay_process):
    relay = relay_process("relay", "--api-key-env", KEY_VAR, env={KEY_VAR: KEY})
    keyed_node(node_process, fleet, "natted", "--connect", relay.address)
    client = HostClient(api_key=KEY)
    address = f"relay+{relay.address}/natted"
    assert client.health(address)["name"] == "natted"
    with pytest.raises(ForbiddenError, match="reached through a relay"):
        client.update(address)


def test_a_node_without_auto_update_says_so(node_process):
    node = node_process("plain", "--api-key-env", KEY_VAR, env={KEY_VAR: KEY})
    with pytest.raises(HostError, match="does not follow a git checkout"):
        HostClient(api_key=KEY).update(node.address)


@pytest.mark.parametrize(
    "header",
    [{"target": 5}, {"target": "--upload-pack=touch /tmp/x"}, {"target": "AB" * 40}, {"target": "ab" * 2000}],
)
def test_a_hostile_update_is_refused_and_the_node_still_serves(fleet, node_process, header):
    node = keyed_node(node_process, fleet)
    client = HostClient(api_key=KEY)
    with pytest.raises(ProtocolError):
        client.request(node.address, "update", header)
    assert client.ping(node.address) is not None
    assert client.health(node.address)["code_version"] == fleet.head()
    assert not fleet.installs.exists()


def test_an_update_to_a_commit_not_pushed_yet_changes_nothing(fleet, node_process):
    node = keyed_node(node_process, fleet)
    client = HostClient(api_key=KEY)
    unpushed = fleet.commit("2")
    with pytest.raises(HostError, match="not pushed yet"):
        client.update(node.address, target=unpushed)
    assert client.health(node.address)["code_version"] != unpushed
    assert not fleet.installs.exists()


def test_a_node_started_behind_its_upstream_catches_up_before_it_serves(fleet, node_process):
    second = fleet.push("2")  # the node's checkout is still at the first commit
    node = keyed_node(node_process, fleet)
    client = HostClient(api_key=KEY)
    assert client.health(node.address)["code_version"] == second == fleet.head()
    assert fleet.installs.read_text() == "installed\n"
    proxy = client.create(node.address, "fleetpkg.paglet:VersionPaglet", {}, agent_id="fresh")
    assert proxy.send(Message("version")) == "2"


def test_paglets_update_asks_every_node_of_the_mesh(fleet, node_process):
    alpha = keyed_node(node_process, fleet, "alpha")
    beta = keyed_node(node_process, fleet, "beta", "--peer", alpha.address)
    client = HostClient(api_key=KEY)
    wait_until(lambda: len(client.request(alpha.address, "hosts", {"online": True}).header["hosts"]) == 2, 30,
               "alpha to hear of beta")  # fmt: skip
    cmd = [sys.executable, "-m", "paglets.cli.client", "--api-key-env", KEY_VAR, "--json", "update", alpha.address]
    env = {**os.environ, **fleet.env(**{KEY_VAR: KEY})}
    done = subprocess.run([*cmd, "--mesh"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    answers = {a["node"]: a for a in json.loads(done.stdout)}
    assert set(answers) == {"alpha", "beta"} and answers["beta"]["address"] == beta.address
    assert all(a["changed"] is False and a["restarting"] is False for a in answers.values())
    bad = subprocess.run([*cmd, "--target", "f" * 40], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 1 and "not pushed yet" in bad.stdout


def test_untracked_files_do_not_make_a_checkout_dirty_but_a_staged_change_does(fleet, tmp_path):
    (fleet.checkout / "build-output.log").write_text("made by a build\n")  # pip install -e leaves such files
    node = Host("tidy", persistence_dir=tmp_path / "tidy", auto_update_from_git=True, git_repo_root=fleet.checkout)
    assert node.mesh_version == fleet.head()
    (fleet.checkout / "fleetpkg" / "new.py").write_text("")
    git(fleet.checkout, "add", "fleetpkg/new.py")
    with pytest.raises(HostError, match=r"uncommitted changes \(fleetpkg/new\.py\)"):
        Host("staged", persistence_dir=tmp_path / "staged", auto_update_from_git=True, git_repo_root=fleet.checkout)

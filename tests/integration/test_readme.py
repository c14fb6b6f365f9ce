"""The README's example as a new user runs it: its own files, its own commands, real processes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_until

README = (ROOT / "README.md").read_text()


def code_block_after(marker: str, language: str) -> str:
    """The first ``language`` code block after ``marker`` in the README."""
    start = README.index(marker)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(README, start)
    assert match is not None, f"no {language} block after {marker!r}"
    return match.group(1)


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A directory holding the README's counter.py, as the user wrote it."""
    (tmp_path / "counter.py").write_text(code_block_after("Put this in `counter.py`", "python"))
    return tmp_path


def user_env() -> dict[str, str]:
    # The user installed paglets; here the checkout stands in for the installed package.
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_the_client_example_moves_the_counter_between_two_nodes(user_dir: Path):
    (user_dir / "client.py").write_text(code_block_after("and this in `client.py`", "python"))
    result = subprocess.run(
        [sys.executable, "client.py"], cwd=user_dir, capture_output=True, text=True, timeout=60, env=user_env()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["15", "beta", "16"]


def test_a_node_started_where_counter_py_lives_runs_it_once_allowed(user_dir: Path, tmp_path: Path):
    command = code_block_after("### Your paglets in a `paglets-node`", "sh").strip()
    assert command == ".venv/bin/paglets-node --allow-module counter"
    node = subprocess.Popen(
        [sys.executable, "-m", "paglets.cli.node", "--allow-module", "counter", "--name", "readme",
         "--port", "0", "--http-port", "0", "--data-dir", str(tmp_path / "data")],
        cwd=user_dir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=user_env(),
    )  # fmt: skip
    try:
        address = None
        for line in node.stdout:  # ends at "ready" (or when the node exits)
            if line.startswith("address "):
                address = line.split()[1]
            if line.startswith("ready"):
                break
        assert address is not None, "the node did not start"
        snippet = code_block_after("then, from any process:", "python").replace("tcp://127.0.0.1:7700", address)
        (tmp_path / "use_it.py").write_text(snippet)
        result = subprocess.run(
            [sys.executable, str(tmp_path / "use_it.py")], capture_output=True, text=True, timeout=60, env=user_env()
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["15"]
    finally:
        node.terminate()
        node.wait(30)


def test_every_python_example_imports_the_paglets_names_it_uses():
    names = ("HostClient", "Host", "Message", "Paglet", "PagletState", "dataclass")
    for block in re.findall(r"```python\n(.*?)```", README, re.S):
        for name in names:
            used = re.search(rf"(?<![\w.]){name}\b(?!\w)", re.sub(r"^(from|import) .*$", "", block, flags=re.M))
            if used:
                assert re.search(rf"^from [\w.]+ import .*\b{name}\b", block, re.M), f"{name} not imported in:\n{block}"


# -- more than one node, as the README shows: its commands run as written from a fresh "machine" ----------------
# The README's fixed ports (free on a fresh machine) become free ones here, HOME is a fresh directory (the
# default data directories live under it), and .venv/bin holds the two commands, as `pip install -e .` makes them.
README_PORTS = (7700, 7701, 7710, 7711)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Shell:
    """Runs README command lines with bash in the user's directory; stops the nodes it started."""

    def __init__(self, cwd: Path, home: Path):
        self.cwd = cwd
        bin_dir = cwd / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        for script, module in (("paglets", "paglets.cli.client"), ("paglets-node", "paglets.cli.node")):
            (bin_dir / script).write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
            (bin_dir / script).chmod(0o755)
        home.mkdir()
        self.env = dict(user_env(), HOME=str(home))
        self.ports = dict(zip(README_PORTS, free_ports(len(README_PORTS)), strict=True))
        self.nodes: list[subprocess.Popen] = []

    def local(self, line: str) -> str:
        """``line`` with the README's ports replaced by free ones."""
        return re.sub(r"\b(77[01][01])\b", lambda port: str(self.ports[int(port.group(1))]), line)

    def run(self, line: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", line], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=60
        )

    def start_node(self, line: str) -> str:
        """Start a node command line; its address once it printed ``ready``."""
        node = subprocess.Popen(
            ["bash", "-c", f"exec {line}"], cwd=self.cwd, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.nodes.append(node)
        address = None
        for output in node.stdout:  # ends at "ready" (or when the node exits)
            if output.startswith("address "):
                address = output.split()[1]
            if output.startswith("ready"):
                return address
        pytest.fail(f"{line!r} did not start (exit {node.wait(30)})")

    def stop(self) -> None:
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.wait(30)


@pytest.fixture
def shell(user_dir: Path, tmp_path: Path):
    started = Shell(user_dir, tmp_path / "home")
    yield started
    started.stop()


def done(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_second_node_on_the_same_machine_runs_as_the_readme_shows(shell: Shell):
    set_up = code_block_after("Start a node with embedded defaults", "sh").strip()
    assert set_up.endswith("&& .venv/bin/paglets-node")
    first = shell.start_node(shell.local(".venv/bin/paglets-node --port 7700 --http-port 7701"))
    assert first == shell.local("tcp://127.0.0.1:7700")

    command = code_block_after("Each node on a machine needs", "sh").strip()
    assert command == ".venv/bin/paglets-node --name beta --port 7710 --http-port 7711"
    same_name = shell.run(shell.local(command.replace("--name beta ", "")))
    assert same_name.returncode == 1 and "is in use by another running node" in same_name.stderr
    beta = shell.start_node(shell.local(command))
    assert beta == shell.local("tcp://127.0.0.1:7710")

    create, dispatch, send = code_block_after("With both running, move", "sh").strip().splitlines()
    assert done(shell.run(shell.local(create))).split() == ["agent_id", "traveller", "address", first]
    assert done(shell.run(shell.local(dispatch))) == f"{beta}\n"
    assert done(shell.run(shell.local(send))) == "hello from beta\n"


def test_two_nodes_with_an_api_key_run_as_the_readme_shows_for_two_machines(shell: Shell):
    export, alpha_node = code_block_after("on the first machine (here", "sh").strip().splitlines()
    shell.env["PAGLETS_API_KEY"] = key = done(shell.run(f'{export}\nprintf %s "$PAGLETS_API_KEY"'))
    assert len(key) >= 32
    without_key = shell.run(alpha_node.replace(" --api-key-env PAGLETS_API_KEY", ""))
    assert without_key.returncode == 1 and "with neither an API key nor CurveZMQ" in without_key.stderr

    def on_loopback(line: str) -> str:
        """Both "machines" on loopback: each node on its own ports, each host name standing for one of them."""
        line = line.replace("--bind 0.0.0.0", "--bind 127.0.0.1")
        line = line.replace("alpha.example.org:7700", "127.0.0.1:7700")
        line = line.replace("beta.example.org:7700", "127.0.0.1:7710")
        return shell.local(line)

    alpha = shell.start_node(on_loopback(f"{alpha_node} --port 7700 --http-port 7701"))
    beta_node = code_block_after("and on the second, with the same", "sh").strip()
    beta = shell.start_node(on_loopback(f"{beta_node} --port 7710 --http-port 7711"))

    hosts, create, dispatch = code_block_after("machine, with the key:", "sh").strip().splitlines()
    refused = shell.run(on_loopback(hosts.replace(" --api-key-env PAGLETS_API_KEY", "")))
    assert refused.returncode == 1 and "AuthenticationError" in refused.stderr

    def both_listed() -> bool:
        rows = done(shell.run(on_loopback(hosts))).splitlines()[1:]
        return sorted(row.split()[0] for row in rows) == ["alpha", "beta"]

    wait_until(both_listed, 30, "alpha to learn of beta by gossip")
    assert done(shell.run(on_loopback(create))).split() == ["agent_id", "voyager", "address", alpha]
    assert done(shell.run(on_loopback(dispatch))) == f"{beta}\n"

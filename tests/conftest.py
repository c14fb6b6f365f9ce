"""Shared fixtures: real nodes on loopback, real worker processes, real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from paglets.runtime.host import Host

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator:
    """Factory for in-process nodes on 127.0.0.1 with free ports; all stopped at teardown."""
    nodes: list[Host] = []

    def factory(name: str = "alpha", **options) -> Host:
        options.setdefault("persistence_dir", tmp_path / name)
        options.setdefault("mesh_lan_discovery", False)
        node = Host(name, **options)
        node.start_background()
        nodes.append(node)
        return node

    yield factory
    for node in reversed(nodes):
        node.stop()


@pytest.fixture
def node(make_node) -> Host:
    """One running node named alpha."""
    return make_node("alpha")


def child_pids(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc), for orphan checks."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Bounded wait for something observable only from outside (a process exiting).

    Only for conditions no Future or event can signal, such as another
    process's pid disappearing; fails the test naming ``what`` on timeout.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class NodeProcess:
    """A ``paglets-node`` running as its own process."""

    def __init__(self, proc: subprocess.Popen, address: str, http_address: str | None, log_path: Path):
        self.proc = proc
        self.address = address
        self.http_address = http_address
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)


def _start_cli(program: str, name: str, data_dir: Path, extra: tuple[str, ...], env: dict | None, kind: type):
    """Start ``paglets-<program>`` on free loopback ports; return once it printed its addresses and ready."""
    cmd = [
        sys.executable, "-m", f"paglets.cli.{program}", "--name", name, "--bind", "127.0.0.1",
        "--port", "0", "--http-port", "0", "--data-dir", str(data_dir), *extra,
    ]  # fmt: skip
    if program == "node":  # the tests' own paglets live in the tests package
        cmd += ["--allow-module", "tests"]
    proc_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc_env.update(env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{name}-{program}.log"
    with open(log_path, "ab") as log_file:  # a file, not a pipe: a chatty process must never block on stderr
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, env=proc_env, text=True)
    address = http = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("address "):
            address = line.split()[1]
        elif line.startswith("http "):
            http = line.split()[1]
        elif line.startswith("ready"):
            return kind(proc, address, http, log_path)
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"paglets-{program} {name} did not start: {log_path.read_text()[-2000:]}")


def start_node_process(name: str, data_dir: Path, *extra: str, env: dict | None = None) -> NodeProcess:
    """Start ``paglets-node`` on free loopback ports and wait for it to print its addresses."""
    return _start_cli("node", name, data_dir, extra, env, NodeProcess)


class RelayProcess(NodeProcess):
    """A ``paglets-relay`` running as its own process (``address`` and ``http_address`` as it printed them)."""


def start_relay_process(name: str, data_dir: Path, *extra: str, env: dict | None = None) -> RelayProcess:
    """Start ``paglets-relay`` on free loopback ports and wait for it to print its addresses."""
    return _start_cli("relay", name, data_dir, extra, env, RelayProcess)


def _process_factory(start: Callable[..., NodeProcess], default_name: str, data_suffix: str, tmp_path: Path):
    """A fixture body: a factory of started processes, all stopped (SIGKILL if need be) at teardown."""
    started: list[NodeProcess] = []

    def factory(name: str = default_name, *extra: str, env: dict | None = None) -> NodeProcess:
        proc = start(name, tmp_path / f"{name}{data_suffix}", *extra, env=env)
        started.append(proc)
        return proc

    yield factory
    for proc in started:
        proc.stop(signal.SIGKILL if proc.proc.poll() is None else signal.SIGTERM, timeout=10)


@pytest.fixture
def node_process(tmp_path: Path) -> Iterator:
    """Factory for ``paglets-node`` processes; all stopped (SIGKILL if need be) at teardown."""
    yield from _process_factory(start_node_process, "alpha", "-data", tmp_path)


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator:
    """Factory for ``paglets-relay`` processes; all stopped (SIGKILL if need be) at teardown."""
    yield from _process_factory(start_relay_process, "relay", "-relay-data", tmp_path)

"""A small kit to run test processes in Linux network namespaces.

A *lab* is a set of namespaces named ``pgl-<pid>-<lab>-n<i>``. The first
``count`` sit on one Linux bridge (which lives in its own namespace,
``pgl-<pid>-<lab>-br``, so the machine's own network is never touched);
``isolated`` more have the same layout but a link that leads nowhere. Each
member namespace has ``lo`` up, an ``eth0`` with an address from a private
/24 (``10.77.X.0/24``) and a multicast route ``224.0.0.0/4 dev eth0``::

    with netns_lab(3, isolated=1) as lab:
        a, b, c, lonely = lab.namespaces
        lab.restrict_routes(b, reachable=[a])   # b answers a only: c reaches b's node through the relay
        relay = lab.start_relay(a, "relay", tmp_path / "relay")            # bound to a.address
        node = lab.start_node(b, "beta", tmp_path / "beta", "--connect", relay.address)
        proc = lab.python(c, "print('hello')")   # sys.executable -c ... inside c, stdout piped
        ProcessLines(proc).wait_for(lambda line: "hello" in line, 5, "the greeting")

Leaving the ``with`` block (even on failure) kills every process started
through the lab, then deletes its namespaces, which takes the veth pairs
and the bridge with them. Tests use :func:`require_netns` (or the
``netns_lab_factory`` fixture, which calls it) to skip cleanly where there is
no root or no ``ip netns``. Every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, NodeProcess

PREFIX = f"pgl-{os.getpid()}-"
IP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
NODE_START_TIMEOUT = 30.0
_lab_numbers = itertools.count(1)


# -- running ip ---------------------------------------------------------------------------
def ip_command() -> str | None:
    return shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.access(p, os.X_OK)), None)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` (bounded); RuntimeError naming the command when it fails and ``check``."""
    command = [ip_command() or "ip", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


@functools.cache
def netns_available() -> bool:
    """True when this process is root, ``ip`` exists and a probe namespace can be made and removed."""
    if os.geteuid() != 0 or ip_command() is None or not sys.platform.startswith("linux"):
        return False
    probe = f"{PREFIX}probe"
    try:
        ip("netns", "add", probe)
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        return False
    try:
        ip("-n", probe, "link", "set", "lo", "up")
        return True
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        return False
    finally:
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            ip("netns", "del", probe, check=False)


def require_netns() -> None:
    """Skip the calling test unless network namespaces can be used here."""
    if not netns_available():
        pytest.skip("needs root and a working `ip netns` (network namespaces)")


def run_in(ns: str | Namespace, argv: Sequence[str], **popen_kwargs) -> subprocess.Popen:
    """Start ``argv`` inside namespace ``ns`` (``ip netns exec`` execs it: the Popen pid is the program's)."""
    name = ns.name if isinstance(ns, Namespace) else ns
    return subprocess.Popen([ip_command() or "ip", "netns", "exec", name, *argv], **popen_kwargs)


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python that must import this checkout's paglets and tests."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(extra or {})
    return env


# -- reading a child's stdout with deadlines ------------------------------------------------
class ProcessLines:
    """Reads a child's stdout (a binary pipe) line by line, never waiting past a deadline."""

    def __init__(self, proc: subprocess.Popen):
        if proc.stdout is None:
            raise ValueError("the process needs stdout=subprocess.PIPE")
        self.proc = proc
        self.lines: list[str] = []
        self._buffer = b""
        self._closed = False

    def read_available(self, timeout: float) -> list[str]:
        """Lines that arrive within ``timeout`` seconds (returns at the first chunk, or at EOF)."""
        if self._closed:
            return []
        fd = self.proc.stdout.fileno()
        readable, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not readable:
            return []
        chunk = os.read(fd, 65536)
        if not chunk:
            self._closed = True
            chunk = b"\n" if self._buffer else b""
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        new = [line.decode(errors="replace").rstrip("\r") for line in complete]
        self.lines.extend(new)
        return new

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        """The first line (seen before or arriving within ``timeout``) matching ``predicate``."""
        for line in self.lines:
            if predicate(line):
                return line
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0 and not self._closed:
            for line in self.read_available(remaining):
                if predicate(line):
                    return line
        state = "exited" if self._closed else "still running"
        raise TimeoutError(f"timed out after {timeout} s waiting for {what} (process {state}; saw {self.lines[-10:]})")

    def collect(self, duration: float) -> list[str]:
        """Every line that arrives within ``duration`` seconds."""
        deadline = time.monotonic() + duration
        while (remaining := deadline - time.monotonic()) > 0 and not self._closed:
            self.read_available(remaining)
        return list(self.lines)


# -- the lab ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Namespace:
    """One member namespace: its name, its eth0 address, and whether it is on the bridge."""

    name: str
    address: str
    bridged: bool
    interface: str = "eth0"

    def __str__(self) -> str:
        return self.name


@dataclass
class NetnsLab:
    """Namespaces on a bridge, and the processes started in them; :meth:`close` removes it all."""

    number: int
    subnet: str  # "10.77.X"
    namespaces: list[Namespace] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.number}-"

    @property
    def bridge_namespace(self) -> str:
        return f"{self.prefix}br"

    @property
    def all_namespaces(self) -> list[str]:
        return [self.bridge_namespace, *(ns.name for ns in self.namespaces)]

    # -- building ---------------------------------------------------------------------
    def build(self, count: int, isolated: int) -> None:
        br = self.bridge_namespace
        ip("netns", "add", br)
        ip("-n", br, "link", "set", "lo", "up")
        ip("-n", br, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "mcast_snooping", "0")
        ip("-n", br, "link", "set", "br0", "up")
        for index in range(count + isolated):
            self._add_member(index, bridged=index < count)

    def _add_member(self, index: int, *, bridged: bool) -> None:
        ns = Namespace(f"{self.prefix}n{index}", f"{self.subnet}.{index + 1}", bridged)
        ip("netns", "add", ns.name)
        self.namespaces.append(ns)
        ip("-n", ns.name, "link", "set", "lo", "up")
        if bridged:  # the outer end sits in the bridge namespace, enslaved to br0
            outer = f"v{index}"
            peer = ("peer", "name", ns.interface, "netns", ns.name)
            ip("-n", self.bridge_namespace, "link", "add", outer, "type", "veth", *peer)
            ip("-n", self.bridge_namespace, "link", "set", outer, "master", "br0")
            ip("-n", self.bridge_namespace, "link", "set", outer, "up")
        else:  # both ends stay inside: a link that is up but leads nowhere
            ip("-n", ns.name, "link", "add", ns.interface, "type", "veth", "peer", "name", "dead0")
            ip("-n", ns.name, "link", "set", "dead0", "up")
        ip("-n", ns.name, "addr", "add", f"{ns.address}/24", "dev", ns.interface)
        ip("-n", ns.name, "link", "set", ns.interface, "up")
        ip("-n", ns.name, "route", "add", "224.0.0.0/4", "dev", ns.interface)

    # -- running things inside ---------------------------------------------------------
    def run(self, ns: Namespace | str, argv: Sequence[str], **popen_kwargs) -> subprocess.Popen:
        """:func:`run_in`, with the process killed when the lab closes."""
        proc = run_in(ns, argv, **popen_kwargs)
        self.processes.append(proc)
        return proc

    def python(self, ns: Namespace | str, code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """``python -c code args`` inside ``ns``; stdout is a pipe (see :class:`ProcessLines`), stdin too."""
        return self.run(
            ns,
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env=python_env(env),
            cwd=str(ROOT),
        )

    def start_node(
        self,
        ns: Namespace,
        name: str,
        data_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        timeout: float = NODE_START_TIMEOUT,
    ) -> NodeProcess:
        """``paglets-node`` inside ``ns`` bound to its address, once it printed ``ready``.

        Same output protocol as ``tests/conftest.py:start_node_process``
        (``address ...``, ``http ...``, ``ready``); extra CLI flags go in
        ``extra`` (``"--connect", relay.address`` for a node behind a relay).
        """
        extra = (*extra, "--allow-module", "tests")  # the tests' own paglets live in the tests package
        return self.start_cli(ns, "paglets.cli.node", name, data_dir, *extra, env=env, timeout=timeout)

    def start_relay(
        self,
        ns: Namespace,
        name: str,
        data_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        timeout: float = NODE_START_TIMEOUT,
    ) -> NodeProcess:
        """``paglets-relay`` inside ``ns`` bound to its address (same output protocol as a node)."""
        return self.start_cli(ns, "paglets.cli.relay", name, data_dir, *extra, env=env, timeout=timeout)

    def start_cli(
        self,
        ns: Namespace,
        module: str,
        name: str,
        data_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        timeout: float = NODE_START_TIMEOUT,
    ) -> NodeProcess:
        """``python -m module --name NAME --bind ADDRESS --port 0 --http-port 0 --data-dir DIR --insecure ...``
        inside ``ns``, once it printed ``ready``; its stderr goes to ``DIR/../NAME-<module>.log``.

        ``--insecure``: the address is off loopback, and a lab's namespaces are the test's own,
        so a node or relay without a key or Curve may serve there (with a key it changes nothing).
        """
        cmd = [
            sys.executable, "-m", module, "--name", name, "--bind", ns.address,
            "--port", "0", "--http-port", "0", "--data-dir", str(data_dir), "--insecure", *extra,
        ]  # fmt: skip
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = data_dir.parent / f"{name}-{module.rsplit('.', 1)[-1]}.log"
        with open(log_path, "ab") as log_file:  # a file, not a pipe: a chatty process must never block
            proc = self.run(ns, cmd, stdout=subprocess.PIPE, stderr=log_file, env=python_env(env), cwd=str(ROOT))
        lines = ProcessLines(proc)
        try:
            lines.wait_for(lambda line: line.startswith("ready"), timeout, f"{module} {name} in {ns.name}")
        except TimeoutError as exc:
            _stop_process(proc)
            raise RuntimeError(f"{module} {name} did not start in {ns.name}: {log_path.read_text()[-2000:]}") from exc
        address = next((line.split()[1] for line in lines.lines if line.startswith("address ")), None)
        http = next((line.split()[1] for line in lines.lines if line.startswith("http ")), None)
        return NodeProcess(proc, address, http, log_path)

    def restrict_routes(self, ns: Namespace, reachable: Sequence[Namespace]) -> None:
        """Let ``ns`` exchange packets only with ``reachable`` on its segment (and multicast).

        The /24 route goes; host routes to the allowed namespaces come in. Others
        can still send to ``ns`` but get no answer, so a TCP connect from them
        fails: a node there is reachable only through, say, a relay in ``reachable``.
        """
        ip("-n", ns.name, "route", "del", f"{self.subnet}.0/24", "dev", ns.interface)
        for other in reachable:
            ip("-n", ns.name, "route", "add", f"{other.address}/32", "dev", ns.interface)

    # -- tearing down --------------------------------------------------------------------
    def close(self) -> None:
        """Kill what was started here, then delete every namespace (veths and bridge go with them)."""
        for proc in reversed(self.processes):
            _stop_process(proc)
        for name in self.all_namespaces:
            _kill_namespace_pids(name)
            with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
                ip("netns", "del", name, check=False)
        self.processes.clear()


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _kill_namespace_pids(name: str) -> None:
    """SIGKILL what is still inside one of our namespaces (a node's workers, say): only we start things there."""
    with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
        for pid in ip("netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def _pick_subnet(number: int) -> str:
    """A 10.77.X /24 that differs per process and lab and is not one of this machine's own subnets."""
    taken = set()
    with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
        for line in ip("-4", "-o", "addr", "show", check=False).stdout.splitlines():
            parts = line.split()
            if "inet" in parts:
                taken.add(parts[parts.index("inet") + 1].rsplit(".", 1)[0])
    start = (os.getpid() * 31 + number) % 250
    for step in range(250):
        subnet = f"10.77.{(start + step) % 250 + 1}"
        if subnet not in taken:
            return subnet
    return f"10.77.{start + 1}"


def sweep_stale_namespaces() -> None:
    """Delete ``pgl-<pid>-*`` namespaces whose test process is gone (a run killed before its teardown)."""
    with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
        for line in ip("netns", "list", check=False).stdout.splitlines():
            name = line.split()[0] if line.strip() else ""
            match = re.fullmatch(r"pgl-(\d+)-.+", name)
            if match and not _pid_exists(int(match.group(1))):  # only the name goes; no process is touched
                ip("netns", "del", name, check=False)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def netns_lab(count: int, *, isolated: int = 0) -> Iterator[NetnsLab]:
    """``count`` bridged namespaces plus ``isolated`` unbridged ones; all removed at exit."""
    if not 0 < count + isolated <= 200:
        raise ValueError(f"a lab holds 1-200 namespaces, not {count + isolated}")
    sweep_stale_namespaces()
    number = next(_lab_numbers)
    lab = NetnsLab(number, _pick_subnet(number))
    try:
        lab.build(count, isolated)
        yield lab
    finally:
        lab.close()


@pytest.fixture
def netns_lab_factory() -> Iterator[Callable[..., NetnsLab]]:
    """Skips without netns; else a factory ``(count, isolated=0) -> NetnsLab``, all removed at teardown."""
    require_netns()
    with contextlib.ExitStack() as stack:
        yield lambda count, isolated=0: stack.enter_context(netns_lab(count, isolated=isolated))


__all__ = [
    "Namespace",
    "NetnsLab",
    "ProcessLines",
    "ip",
    "netns_available",
    "netns_lab",
    "netns_lab_factory",
    "python_env",
    "require_netns",
    "run_in",
    "sweep_stale_namespaces",
]

"""Running a node: start its parts in order, stop them in reverse, park its paglets on shutdown.

:class:`NodeRunner` owns one node's run: the runtime directory (ipc sockets),
the :class:`~paglets.node.assembly.RunningParts` of the current run and LAN
discovery. The Host facade asks it to start and stop; any thread may, and a
lock makes start and stop one at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from typing import Any

from paglets.core.errors import PagletError
from paglets.node.assembly import (
    Foundation,
    RunningParts,
    assemble,
    bring_online,
    start_parts,
    stop_online,
    stop_parts,
)
from paglets.node.broker.commands import LOOP_DEADLINE
from paglets.node.flows.stopping import StopParking
from paglets.node.mesh.discovery import LanDiscovery
from paglets.node.storage.data_lock import DataDirLock
from paglets.waiting import wait_for

log = logging.getLogger("paglets.host")
WORKER_EXIT_GRACE = 2.0  # seconds stopped workers get to exit before they are killed


class NodeRunner:
    """Starts and stops the runs of one node."""

    def __init__(self, base: Foundation, facade: Any):
        self._base = base
        self._facade = facade
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._runtime_dir: str | None = None
        self._data_lock = DataDirLock(base.here.data_dir)
        self._hurry_lock = threading.Lock()
        self._hurried = False
        self._stopping: StopParking | None = None
        self.parts: RunningParts | None = None
        self.discovery: LanDiscovery | None = None

    def start(self) -> None:
        base = self._base
        with self._lock:
            if self.parts is not None:
                return
            self._data_lock.acquire()  # before anything in the data dir is touched (work/ is wiped next)
            try:
                run = self._start_parts()
            except BaseException:
                self._data_lock.release()
                raise
            self.parts = run
            self._stopped.clear()
            self._hurried = False
            base.here.started_at = time.time()
        try:
            bring_online(base, run)
            self._start_discovery()
        except BaseException:
            self.stop()
            raise
        name = base.here.name
        if base.config.allow_any_module:
            log.warning(
                "node %s: --allow-any-module is on: any process that can reach this node can make it import "
                "(and run) any module. Use it for development only.",
                name,
            )
        base.events.emit("context-start", address=base.here.address, http_address=base.here.http_address)
        log.info("node %s serving on %s (http %s)", name, base.here.address, base.here.http_address or "off")

    def _start_parts(self) -> RunningParts:
        base = self._base
        self._prepare_dirs()
        run = assemble(base, self._facade, self._runtime_dir)
        try:
            start_parts(base, run, self._facade)
        except BaseException:
            stop_parts(base, run, lambda: None)
            self._remove_runtime_dir()
            raise
        return run

    def wait_stopped(self) -> None:
        self._stopped.wait()

    def stop(self, *, deactivate_active: bool = False) -> list[str]:
        """Stop the run (parking active paglets first with ``deactivate_active``); the ids not parked."""
        base = self._base
        with self._lock:
            run = self.parts
            if run is None:
                return []
            lost: list[str] = []
            failure: PagletError | None = None
            run.idle.stop()  # no idle parking from here on: what follows parks or stops every paglet
            if deactivate_active:
                try:
                    lost = self._park_all_for_restart(run)
                except PagletError as exc:  # the broker did not even list its paglets: stop all the same
                    failure = exc
            self.parts = None
        base.events.emit("context-stop", deactivate_active=deactivate_active)
        if self.discovery is not None:
            self.discovery.stop()
            self.discovery = None
        stop_online(base, run)
        stop_parts(base, run, lambda: self._stop_all_workers(run))
        self._remove_runtime_dir()
        self._data_lock.release()
        self._stopped.set()
        if failure is not None:
            raise failure
        return lost

    def _prepare_dirs(self) -> None:
        here = self._base.here
        here.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(here.work_root)
        here.work_root.mkdir(parents=True, exist_ok=True)
        self._base.artifacts.prepare()
        self._runtime_dir = tempfile.mkdtemp(prefix=f"pgl-{here.name[:16]}-", dir=_short_tmp())

    def _remove_runtime_dir(self) -> None:
        if self._runtime_dir:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
            self._runtime_dir = None

    def hurry(self) -> None:
        """Make a stop that parks paglets (now or next) stop waiting for handlers and hooks."""
        with self._hurry_lock:
            self._hurried = True
            if self._stopping is not None:
                self._stopping.hurry()

    def _park_all_for_restart(self, run: RunningParts) -> list[str]:
        """Park every active paglet to wake on startup (see paglets.node.flows.stopping); the ids not parked."""
        base = self._base
        stopping = StopParking(run.commands, run.inspection, run.parking, base.here, grace=base.config.stop_grace)
        with self._hurry_lock:
            self._stopping = stopping
            if self._hurried:
                stopping.hurry()
        try:
            return stopping.park_all()
        finally:
            with self._hurry_lock:
                self._stopping = None

    def _stop_all_workers(self, run: RunningParts) -> None:
        processes = self._base.processes
        try:
            agent_ids = [s["agent_id"] for s in wait_for(run.commands.summaries(), LOOP_DEADLINE, "the broker")]
            for agent_id in agent_ids:
                wait_for(run.commands.stop_worker(agent_id), LOOP_DEADLINE, "the broker")
        except (PagletError, RuntimeError) as exc:
            log.warning("node %s: could not ask workers to stop: %s", self._base.here.name, exc)
        if not processes.wait_all_gone(WORKER_EXIT_GRACE):
            processes.kill_all()

    def _start_discovery(self) -> None:
        """LAN discovery: announce ourselves by multicast; nodes heard of become gossip peers."""
        base = self._base
        config = base.config
        if not (config.mesh and config.mesh_lan_discovery and config.mesh_multicast) or base.connect_to:
            return
        self.discovery = LanDiscovery(
            base.here.name,
            lambda: base.here.address,
            lambda name, url: base.mesh.add_peer(url),
            interval=config.mesh_gossip_interval,
        )
        self.discovery.start()


def _short_tmp() -> str:
    """A directory short enough for ipc socket paths (about 100 bytes at most)."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if candidate and len(candidate) < 60 and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


__all__ = ["NodeRunner"]

"""Host: the public facade of a paglets node.

A Host holds named parts and delegates; it owns only the node's properties
and the running flag. Its options are the fields of
:class:`~paglets.node.config.NodeConfig` (``Host("alpha", port=0,
api_key=...)``); the parts are put together in :mod:`paglets.node.assembly`:

* long-lived (the :class:`~paglets.node.assembly.Foundation`): ``here`` (name,
  addresses), ``client``, ``events``, ``files``, ``artifacts``, ``parked``
  (records of parked paglets), ``mesh``, ``processes``;
* per run (:class:`~paglets.node.assembly.RunningParts`): the ``broker`` loop
  and its commands, the template process (``zygote``), and the flows —
  lifecycle, inspection, movement, arrivals, parking, checkpoints, messaging —
  plus the surfaces that answer front requests, host calls and HTTP.

Any thread may call a Host method; the facade reaches the broker loop only
through Futures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from paglets.client.hosts import HostRef
from paglets.client.proxy import PagletProxy
from paglets.client.transfer import TransferTicket
from paglets.core.agent import ACTIVE, Paglet, PagletState
from paglets.core.errors import HostError, InvalidAgentError, PagletError
from paglets.core.events import ContextEvent
from paglets.core.files import PagletFileRef
from paglets.core.messages import Message, ReplySet
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
from paglets.node.config import DEFAULT_DATA_ROOT, NodeConfig
from paglets.node.flows.lifecycle import WorkerResources
from paglets.node.mesh.discovery import LanDiscovery
from paglets.persistence.persistency import DeactivationRequest
from paglets.persistence.storage import ManagedStorage, class_storage_dir
from paglets.threads import ThreadPool
from paglets.waiting import wait_for
from paglets.wire import codec

log = logging.getLogger("paglets.host")
WORKER_EXIT_GRACE = 2.0  # seconds stopped workers get to exit before they are killed
PARK_THREADS = 8  # paglets parked at once when the node shuts down


class Host:
    """A paglets node: runs paglets in worker processes and serves their mailboxes."""

    def __init__(self, name: str, host: str | Sequence[str] = "127.0.0.1", port: int = 0, **options: Any):
        """``options``: any field of :class:`~paglets.node.config.NodeConfig` (``http_port=None``: no HTTP)."""
        if not isinstance(host, str):
            host = (list(host) or ["127.0.0.1"])[0]
        if "http_port" in options and options["http_port"] is None:
            del options["http_port"]
            options["http"] = False
        self.config = NodeConfig.from_options(name=name, host=host, port=port, **options)
        codec.POLICY.allow(*self.config.allow_modules, *self.config.preload)
        if self.config.allow_any_module:
            codec.POLICY.allow_any = True
        base = self._base = Foundation.build(self.config, self._mesh_entry)
        self.here = base.here
        self.client = base.client
        self.events = base.events
        self.files = base.files
        self.artifacts = base.artifacts
        self.parked = base.parked
        self.mesh = base.mesh
        self.processes = base.processes
        self.ready = base.ready  # set once parked paglets are loaded: unknown ids are really unknown
        self.discovery: LanDiscovery | None = None
        self._run: RunningParts | None = None
        self._properties: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._runtime_dir: str | None = None
        self._stopped = threading.Event()

    # -- who this node is ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.here.name

    @property
    def address(self) -> str:
        return self.here.address

    @property
    def http_address(self) -> str | None:
        return self.here.http_address

    @property
    def api_key(self) -> str | None:
        return self.config.api_key

    @property
    def max_message_size(self) -> int:
        return self.config.max_message_size

    @property
    def persistence_dir(self) -> Path:
        return self.here.data_dir

    @property
    def mesh_version(self) -> str:
        return self.here.code_version

    @property
    def running(self) -> bool:
        return self._run is not None

    def _parts(self) -> RunningParts:
        run = self._run
        if run is None:
            raise HostError(f"node {self.name} is not running")
        return run

    @property
    def broker(self) -> Any:
        """The broker loop of the current run (None while stopped)."""
        return self._run.broker if self._run is not None else None

    @property
    def zygote(self) -> Any:
        """The template process that forks workers (None while stopped)."""
        return self._run.templates if self._run is not None else None

    @property
    def arrivals(self) -> Any:
        return self._parts().arrivals

    @property
    def http(self) -> Any:
        """The HTTP shim of the current run (None while stopped or without HTTP)."""
        return self._run.http if self._run is not None else None

    # -- running ------------------------------------------------------------------------
    def start_background(self) -> None:
        """Open the sockets, start the template process, load parked paglets, and return."""
        with self._lock:
            if self._run is not None:
                return
            self._prepare_dirs()
            run = assemble(self._base, self, self._runtime_dir)
            try:
                start_parts(self._base, run, self)
            except BaseException:
                stop_parts(self._base, run, lambda: None)
                self._remove_runtime_dir()
                raise
            self._run = run
            self._stopped.clear()
            self.here.started_at = time.time()
        try:
            bring_online(self._base, run)
            self._start_discovery()
        except BaseException:
            self.stop()
            raise
        if self.config.allow_any_module:
            log.warning(
                "node %s: --allow-any-module is on: any process that can reach this node can make it import "
                "(and run) any module. Use it for development only.",
                self.name,
            )
        self.events.emit("node-start", address=self.address)
        log.info("node %s serving on %s (http %s)", self.name, self.address, self.http_address or "off")

    def _prepare_dirs(self) -> None:
        data_dir = self.here.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.here.work_root)
        self.here.work_root.mkdir(parents=True, exist_ok=True)
        self.artifacts.prepare()
        self._runtime_dir = tempfile.mkdtemp(prefix=f"pgl-{self.name[:16]}-", dir=_short_tmp())

    def _remove_runtime_dir(self) -> None:
        if self._runtime_dir:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
            self._runtime_dir = None

    def serve_forever(self) -> None:
        """Start and block until :meth:`stop` or :meth:`shutdown` is called."""
        self.start_background()
        self._stopped.wait()

    def shutdown(self) -> None:
        """Park every active paglet on disk, then stop: a restart on the same data dir brings them back."""
        self.stop(deactivate_active=True)

    def stop(self, *, deactivate_active: bool = False) -> None:
        """Stop every worker, close the sockets and stop the template process.

        Without ``deactivate_active`` active paglets are simply gone (parked
        ones stay on disk); with it they are parked first, to wake on restart.
        """
        with self._lock:
            run = self._run
            if run is None:
                return
            if deactivate_active:
                self._park_all_for_restart(run)
            self._run = None
        self.events.emit("node-stop")
        if self.discovery is not None:
            self.discovery.stop()
            self.discovery = None
        stop_online(self._base, run)
        stop_parts(self._base, run, lambda: self._stop_all_workers(run))
        self._remove_runtime_dir()
        self._stopped.set()

    def _park_all_for_restart(self, run: RunningParts) -> None:
        request = DeactivationRequest(reason="shutdown", source="node")
        wake_on_start = {"activate_on_startup": True}
        pool = ThreadPool(f"paglets-park-{self.name}", PARK_THREADS)
        try:
            futures = {
                agent_id: pool.submit(run.parking.deactivate, agent_id, request, force_policy=wake_on_start)
                for agent_id in run.inspection.agent_ids(ACTIVE)
            }
            deadline = time.monotonic() + self.client.timeout + 5
            for agent_id, future in futures.items():
                try:
                    wait_for(future, max(0.0, deadline - time.monotonic()), f"{agent_id} to park")
                except PagletError as exc:
                    log.warning("node %s: could not park %s for restart: %s", self.name, agent_id, exc)
        finally:
            pool.shutdown()

    def _stop_all_workers(self, run: RunningParts) -> None:
        try:
            agent_ids = [s["agent_id"] for s in wait_for(run.commands.summaries(), LOOP_DEADLINE, "the broker")]
            for agent_id in agent_ids:
                wait_for(run.commands.stop_worker(agent_id), LOOP_DEADLINE, "the broker")
        except (PagletError, RuntimeError) as exc:
            log.warning("node %s: could not ask workers to stop: %s", self.name, exc)
        if not self.processes.wait_all_gone(WORKER_EXIT_GRACE):
            self.processes.kill_all()

    def __enter__(self) -> Host:
        self.start_background()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _start_discovery(self) -> None:
        """LAN discovery: announce ourselves by multicast; nodes heard of become gossip peers."""
        config = self.config
        if not (config.mesh and config.mesh_lan_discovery and config.mesh_multicast) or self._base.connect_to:
            return
        self.discovery = LanDiscovery(
            self.name,
            lambda: self.address,
            lambda name, url: self.mesh.add_peer(url),
            interval=config.mesh_gossip_interval,
        )
        self.discovery.start()

    def _mesh_entry(self) -> HostRef:
        run = self._run
        counts = run.inspection.counts() if run is not None else (0, 0)
        here = self.here
        return HostRef(
            name=here.name,
            url=here.address,
            code_version=here.code_version,
            active_count=counts[0],
            inactive_count=counts[1],
            tags=tuple(here.tags),
            properties=dict(here.properties),
            http_url=here.http_address,
        )

    def capabilities(self) -> list[str]:
        return self.here.capabilities()

    # -- lifecycle ------------------------------------------------------------------------
    def create(
        self,
        cls: type[Paglet[Any]] | str,
        state: PagletState | dict[str, Any] | None = None,
        init: Any = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        """Start a new paglet here; returns its proxy once ``on_creation`` has run."""
        return self.get_proxy_for(self._parts().lifecycle.create(cls, state, init, agent_id))

    def start_paglet(self, class_name: str, payload: list[bytes], **options: Any) -> str:
        return self._parts().lifecycle.start_paglet(class_name, payload, **options)

    def dispose(self, agent_id: str) -> None:
        """Run ``on_disposing``, clean up and stop the paglet (or forget a parked one)."""
        run = self._parts()
        if agent_id in self.parked:
            run.parking.dispose(agent_id)
        else:
            run.lifecycle.dispose(agent_id)

    def run_hook(self, agent_id: str, name: str, event: dict[str, Any], timeout: float) -> None:
        self._parts().lifecycle.run_hook(agent_id, name, event, timeout)

    # -- parking -----------------------------------------------------------------------------
    def deactivate(self, agent_id: str, request: DeactivationRequest | None = None) -> PagletProxy:
        """Park a paglet on disk; messages may wake it or wait for it, as its policy says."""
        return self._parts().parking.deactivate(agent_id, request)

    def activate(self, agent_id: str) -> PagletProxy:
        """Wake a parked paglet; its queued mail is delivered in order."""
        return self._parts().parking.activate(agent_id)

    # -- movement -----------------------------------------------------------------------------
    def dispatch(self, agent_id: str, target: Any) -> PagletProxy:
        """Move a paglet to another node (address, mesh name or TransferTicket); returns its new proxy."""
        return self._parts().movement.dispatch(agent_id, target)

    def clone(self, agent_id: str, target: Any = None) -> PagletProxy:
        """Copy a paglet, here or to ``target``; returns the copy's proxy."""
        return self._parts().movement.clone(agent_id, target)

    def retract(self, remote_address: str, agent_id: str) -> PagletProxy:
        """Pull a paglet that lives on ``remote_address`` back to this node."""
        return self._parts().movement.retract(remote_address, agent_id)

    def create_remote(self, target: Any, cls: Any, state: Any = None, init: Any = None) -> PagletProxy:
        """Create a paglet on another node (address, mesh name or TransferTicket)."""
        if isinstance(cls, type):
            codec.trust_class(cls)  # this process hands the class over: its other hosts may import it too
        ticket = TransferTicket.of(target)
        address = self._parts().movement.resolve(ticket.destination)
        return self.client.create(address, cls, state, init, timeout=ticket.timeout)

    def address_of(self, name: str) -> str | None:
        """The address of a node the mesh knows by this name, or None."""
        return self._parts().movement.address_of(name)

    # -- inspection -------------------------------------------------------------------------
    def get_proxy_for(self, agent_id: str) -> PagletProxy:
        return PagletProxy(self.address, agent_id, self.client)

    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> PagletProxy | None:
        try:
            info = self.agent_info(agent_id)
        except InvalidAgentError:
            return None
        if info.get("crashed") or (not info.get("active") and not include_inactive):
            return None
        return self.get_proxy_for(agent_id)

    def get_proxies(self, state: int = ACTIVE) -> list[PagletProxy]:
        return [self.get_proxy_for(agent_id) for agent_id in self.agent_ids(state)]

    def agent_ids(self, state: int = ACTIVE) -> list[str]:
        return self._parts().inspection.agent_ids(state)

    def get_state(self, agent_id: str, state_cls: type[PagletState] | None = None) -> Any:
        """The paglet's current state, typed when ``state_cls`` is given (plain data otherwise)."""
        data = self.state_bytes(agent_id)
        return codec.decode(data, expected=state_cls) if state_cls is not None else codec.decode_plain(data)

    def state_bytes(self, agent_id: str) -> bytes:
        return self._parts().inspection.state_bytes(agent_id)

    def agent_info(self, agent_id: str, *, include_state: bool = False) -> dict[str, Any]:
        return self._parts().inspection.agent_info(agent_id, include_state=include_state)

    def list_agents(
        self, *, active: bool = True, inactive: bool = False, include_state: bool = False
    ) -> list[dict[str, Any]]:
        return self._parts().inspection.list_agents(active=active, inactive=inactive, include_state=include_state)

    def health(self) -> dict[str, Any]:
        return self._parts().inspection.health()

    def list_hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[HostRef]:
        """The nodes of the mesh this node knows (itself included unless told otherwise)."""
        return self.mesh.hosts(online_only=online_only, include_self=include_self)

    def mailbox_status(self, agent_id: str) -> dict[str, int]:
        summary = wait_for(self._parts().commands.summary(agent_id), LOOP_DEADLINE, "the broker")
        return dict(summary["mailbox"])

    # -- messages -------------------------------------------------------------------
    def deliver_message(
        self,
        agent_id: str,
        message: Message | str,
        *,
        oneway: bool = False,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Deliver a message from inside the node process; returns the handler's reply.

        A sync message that a parked paglet queues instead of waking raises
        :class:`~paglets.core.errors.MessageQueuedError` (with its
        ``message_id``) once the message is on disk: no handler ran.
        """
        return self._parts().messaging.deliver(
            agent_id, message, oneway=oneway, activate_if_inactive=activate_if_inactive,
            no_delay=no_delay, timeout=timeout,
        )  # fmt: skip

    def multicast_message(
        self, kind: str | Message, args: dict[str, Any] | None = None, *, exclude: set[str] | None = None
    ) -> ReplySet:
        """Send to every active paglet here; the ReplySet completes as they answer."""
        return self._parts().messaging.multicast(kind, args, exclude=exclude)

    # -- properties and events --------------------------------------------------------
    def get_property(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._properties.get(key, default)

    def set_property(self, key: str, value: Any) -> None:
        with self._lock:
            if value is None:
                self._properties.pop(key, None)
            else:
                self._properties[key] = value

    def add_listener(self, listener: Callable[[ContextEvent], Any]) -> None:
        self.events.add_listener(listener)

    def remove_listener(self, listener: Callable[[ContextEvent], Any]) -> None:
        self.events.remove_listener(listener)

    def list_events(self, *, since: int = 0, limit: int = 100) -> list[ContextEvent]:
        return self.events.events_since(since, limit=limit)

    # -- per paglet -------------------------------------------------------------------
    def resources_for(self, agent_id: str) -> WorkerResources:
        return WorkerResources(self._parts().commands, agent_id)

    def work_dir_for(self, agent_id: str, *, create: bool = True, check: bool = True) -> Path:
        if check:
            self.agent_info(agent_id)
        path = self._parts().lifecycle.work_path(agent_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def persistent_storage_for(self, agent_id: str, *, quota_bytes: int | None = None) -> ManagedStorage:
        """The quota-limited storage directory shared by the paglet's class."""
        class_name = self.agent_info(agent_id)["class_name"]
        quota = self.config.persistent_storage_quota_bytes if quota_bytes is None else quota_bytes
        return ManagedStorage(class_storage_dir(self.here.storage_root, class_name), quota)

    def register_file_for(
        self, agent_id: str, path: str | Path, *, name: str | None = None, mode: str = "copy"
    ) -> PagletFileRef:
        self.agent_info(agent_id)
        return self.files.register(agent_id, path, name, mode)

    def registered_files_for(self, agent_id: str) -> list[PagletFileRef]:
        return self.files.files(agent_id)

    def unregister_file_for(self, agent_id: str, name: str | PagletFileRef) -> None:
        self.files.unregister(agent_id, name.name if isinstance(name, PagletFileRef) else str(name))

    def registered_file_path_for(self, agent_id: str, name: str) -> Path:
        return self.files.path(agent_id, name)


def _short_tmp() -> str:
    """A directory short enough for ipc socket paths (about 100 bytes at most)."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if candidate and len(candidate) < 60 and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


__all__ = ["DEFAULT_DATA_ROOT", "Host", "NodeConfig", "WorkerResources"]

"""Host: the public facade of a paglets node.

A Host is a thin facade over named parts, each owning its own state:

* ``broker`` (:class:`~paglets.node.broker.loop.Broker`) — the sockets, the
  mailboxes and the worker slots;
* ``zygote`` (:class:`~paglets.node.procs.template_process.Zygote`) — starts workers;
* ``processes`` (:class:`~paglets.node.procs.processes.WorkerProcesses`) — which
  worker pids are alive, so stop and dispose can wait for them;
* ``ops`` (:class:`~paglets.node.flows.requests.NodeOps`) — answers front
  requests and paglets' host calls by calling back into this facade;
* ``lifecycle``, ``inspection``, ``movement``, ``parking`` — the flows that
  create and dispose, describe, move, and park and wake paglets;
* ``files`` and ``artifacts`` — registered files and the blobs that carry them;
* ``http`` (:class:`~paglets.node.http.shim.HttpShim`) — the HTTP shim;
* ``events`` (:class:`~paglets.core.events.ContextEventLog`).

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
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import zmq

import paglets
from paglets.client.host_client import HostClient, create_request
from paglets.client.hosts import HostRef
from paglets.client.proxy import PagletProxy
from paglets.client.security import CurveIdentity, CurveServer
from paglets.client.transfer import TransferTicket
from paglets.client.transport import check_address
from paglets.core.agent import ACTIVE, Paglet, PagletState
from paglets.core.errors import AuthenticationError, HostError, InvalidAgentError, PagletError
from paglets.core.events import ContextEvent, ContextEventLog
from paglets.core.messages import Message, ReplySet
from paglets.node.broker.loop import Broker
from paglets.node.flows.arrivals import Arrivals
from paglets.node.flows.checkpoints import Checkpointer
from paglets.node.flows.inspection import Inspection
from paglets.node.flows.lifecycle import Lifecycle, WorkerResources
from paglets.node.flows.messaging import Messaging
from paglets.node.flows.movement import Movement
from paglets.node.flows.parking import Parking
from paglets.node.flows.requests import NodeOps
from paglets.node.mesh.binding import advertised_address, check_public_url, resolve_binding
from paglets.node.mesh.discovery import LanDiscovery
from paglets.node.mesh.registry import MeshRegistry
from paglets.node.procs.processes import WorkerProcesses
from paglets.node.procs.template_process import Zygote
from paglets.node.storage.files import ArtifactStore, FileRegistry, PagletFileRef, class_storage_dir
from paglets.persistence.persistency import DeactivationRequest
from paglets.persistence.storage import ManagedStorage
from paglets.waiting import wait_for
from paglets.wire import codec, protocol

log = logging.getLogger("paglets.host")

DEFAULT_DATA_ROOT = Path.home() / ".local" / "share" / "paglets"
DEFAULT_PERSISTENT_STORAGE_QUOTA_BYTES = 64 * 1024 * 1024
DEFAULT_ARTIFACT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES = 1024 * 1024 * 1024
DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS = 3600.0
CAPABILITIES = (
    "messages", "create", "dispose", "state", "http", "dispatch", "clone", "retract", "files",
    "deactivate", "activate", "storage",
)  # fmt: skip


class Host:
    """A paglets node: runs paglets in worker processes and serves their mailboxes."""

    def __init__(
        self,
        name: str,
        host: str | Sequence[str] = "127.0.0.1",
        port: int = 0,
        *,
        client: HostClient | None = None,
        api_key: str | None = None,
        public_url: str | None = None,
        connect_to: str | None = None,
        mesh: bool = True,
        peers: list[str] | None = None,
        mesh_multicast: bool = True,
        mesh_lan_discovery: bool = False,
        mesh_version: str | None = None,
        mesh_gossip_interval: float = 1.0,
        mesh_offline_after: float = 10.0,
        persistence_dir: str | Path | None = None,
        persistent_storage_quota_bytes: int | None = DEFAULT_PERSISTENT_STORAGE_QUOTA_BYTES,
        artifact_max_bytes: int | None = DEFAULT_ARTIFACT_MAX_BYTES,
        artifact_storage_quota_bytes: int | None = DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES,
        artifact_spool_ttl_seconds: float = DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS,
        launch_config: Any = None,
        tags: Sequence[str] | None = None,
        properties: dict[str, str] | None = None,
        http_port: int | None = 0,
        preload: Sequence[str] = (),
        heartbeat_interval: float = 0.5,
        max_message_size: int = protocol.DEFAULT_MAX_MESSAGE_SIZE,
        mailbox_limit: int = 10_000,
        start_timeout: float = 30.0,
        forward_ttl: float = 3600.0,
        worker_pool: int = 2,
        learn_preload: bool = True,
        checkpoint_interval: float | None = None,
        curve_secret: str | Path | None = None,
        curve_allow: str | Path | None = None,
        curve_server_key: str | Path | None = None,
        bind_public: bool = False,
    ):
        if not isinstance(name, str) or not protocol.AGENT_ID_PATTERN.match(name):
            raise ValueError(f"node name {name!r} must be 1-128 of A-Z a-z 0-9 . _ -")
        if not 0 <= int(port) < 65536:
            raise ValueError(f"port {port} out of range")
        self.name = name
        requested = host if isinstance(host, str) else (list(host) or ["127.0.0.1"])[0]
        self.binding = resolve_binding(requested, bind_public=bind_public, public_url=public_url, port=int(port))
        self.bind_host = self.binding.bind_host
        self.port = int(port)
        self.api_key = api_key or None
        self.public_url = check_public_url(public_url) if public_url else None
        self.connect_to = check_address(connect_to) if connect_to else None
        if self.connect_to:  # behind a relay: listen nowhere, be reached through it
            self.public_url = f"relay+{self.connect_to}/{name}"
            http_port = None
        self.address = self.public_url or advertised_address(self.binding, self.port)
        # CurveZMQ: serve with our key pair (clients must be in curve_allow), and connect to
        # servers that hold curve_server_key (by default our own public key: one cluster key).
        self.curve = CurveIdentity.from_files(curve_secret, curve_server_key) if curve_secret else None
        self.curve_server = (
            CurveServer(self.curve.public, self.curve.secret, curve_allow or _missing_allow_dir(), f"paglets-{name}")
            if self.curve is not None
            else None
        )
        self.client = client or HostClient(api_key=self.api_key, curve=self.curve)
        if self.api_key and self.client.api_key is None:
            self.client.api_key = self.api_key
        if self.curve is not None and self.client.curve is None:
            self.client.curve = self.curve
        self.mesh_enabled = mesh
        self.peers = list(peers or [])
        self.mesh_multicast = mesh_multicast
        self.mesh_lan_discovery = mesh_lan_discovery
        self.mesh_version = mesh_version or paglets.__version__
        self.mesh_gossip_interval = mesh_gossip_interval
        self.mesh_offline_after = mesh_offline_after
        self.persistence_dir = Path(persistence_dir).expanduser() if persistence_dir else DEFAULT_DATA_ROOT / name
        self.persistent_storage_quota_bytes = persistent_storage_quota_bytes
        self.artifact_max_bytes = artifact_max_bytes
        self.artifact_storage_quota_bytes = artifact_storage_quota_bytes
        self.artifact_spool_ttl_seconds = artifact_spool_ttl_seconds
        self.launch_config = launch_config
        self.tags = sorted({str(t) for t in tags or ()})
        self.host_properties = {str(k): str(v) for k, v in (properties or {}).items()}
        self.http_port = http_port
        self.http_address: str | None = None
        self.preload = list(preload)
        self.heartbeat_interval = heartbeat_interval
        self.max_message_size = max_message_size
        self.mailbox_limit = mailbox_limit
        self.start_timeout = start_timeout
        self.forward_ttl = forward_ttl
        self.worker_pool = worker_pool
        self.learn_preload = learn_preload
        self.discovery: LanDiscovery | None = None
        self.ready = threading.Event()  # set once parked paglets are loaded: unknown ids are really unknown
        self.events = ContextEventLog()
        self.files = FileRegistry(artifact_max_bytes)
        self.artifacts = ArtifactStore(
            self.persistence_dir / "artifacts", max_bytes=artifact_max_bytes, quota_bytes=artifact_storage_quota_bytes
        )
        self.movement = Movement(self)
        self.arrivals = Arrivals(self)
        self.lifecycle = Lifecycle(self)
        self.messaging = Messaging(self)
        self.inspection = Inspection(self)
        self.parking = Parking(self)
        self.checkpoints = Checkpointer(self, checkpoint_interval)
        self.mesh = MeshRegistry(
            self._mesh_entry,
            self.client,
            enabled=mesh,
            peers=self.peers,
            gossip_interval=mesh_gossip_interval,
            offline_after=mesh_offline_after,
        )
        self.processes = WorkerProcesses()
        self.ops = NodeOps(self)
        self.broker: Broker | None = None
        self.zygote: Zygote | None = None
        self.http: Any = None
        self._properties: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._runtime_dir: str | None = None
        self._tasks: ThreadPoolExecutor | None = None
        self.started_at = 0.0
        self._stopped = threading.Event()
        self._running = False

    # -- running ------------------------------------------------------------------
    @property
    def work_root(self) -> Path:
        return self.persistence_dir / "work"

    def start_background(self) -> None:
        """Open the sockets, start the template process, load parked paglets, and return."""
        with self._lock:
            if self._running:
                return
            self._prepare_dirs()
            try:
                self._start_parts()
            except BaseException:
                self._stop_parts()
                raise
            self._running = True
            self._stopped.clear()
            self.started_at = time.time()
        try:
            for agent_id in self.checkpoints.restore_into(self.parking.records.root):
                self.events.emit("paglet-restored", agent_id=agent_id, source="checkpoint")
            self.parking.start()
            self.checkpoints.start()
            self.broker.connect_relay()
            self.mesh.start()
            self._start_discovery()
            self.ready.set()
        except BaseException:
            self.stop()
            raise
        self.events.emit("node-start", address=self.address)
        log.info("node %s serving on %s (http %s)", self.name, self.address, self.http_address or "off")

    def _prepare_dirs(self) -> None:
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.work_root)
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.artifacts.prepare()
        self._runtime_dir = tempfile.mkdtemp(prefix=f"pgl-{self.name[:16]}-", dir=_short_tmp())

    def _start_parts(self) -> None:
        self._tasks = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"paglets-tasks-{self.name}")
        self.zygote = Zygote(
            self.preload,
            self._worker_forked,
            self._worker_exited,
            pool_size=self.worker_pool,
            learn=self.learn_preload,
        )
        self.zygote.start()
        self.broker = Broker(
            zmq.Context.instance(),
            self.ops,
            node_name=self.name,
            front_endpoint=None if self.connect_to else f"tcp://{self.bind_host}:{self.port}",
            back_endpoint=f"ipc://{self._runtime_dir}/back",
            relay_endpoint=self.connect_to,
            api_key=self.api_key,
            heartbeat_interval=self.heartbeat_interval,
            max_message_size=self.max_message_size,
            mailbox_limit=self.mailbox_limit,
            forward_ttl=self.forward_ttl,
            curve_server=self.curve_server,
            curve_client=self.curve,
        )
        self.broker.start()
        if self.broker.front_address:
            self.port = int(self.broker.front_address.rsplit(":", 1)[1])
        self.address = self.public_url or advertised_address(self.binding, self.port)
        if self.http_port is not None:
            from paglets.node.http.shim import HttpShim

            self.http = HttpShim(self, self.bind_host, self.http_port)
            self.http.start()
            self.http_address = self.http.address

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
            if not self._running:
                return
            if deactivate_active:
                self._park_all_for_restart()
            self._running = False
        self.ready.clear()
        self.events.emit("node-stop")
        if self.discovery is not None:
            self.discovery.stop()
            self.discovery = None
        self.mesh.stop()
        self.checkpoints.stop(keep=False)
        self.parking.stop()
        self._stop_parts()
        self._stopped.set()

    def _park_all_for_restart(self) -> None:
        request = DeactivationRequest(reason="shutdown", source="node")
        wake_on_start = {"activate_on_startup": True}
        futures = {
            agent_id: self._tasks.submit(self.parking.deactivate, agent_id, request, force_policy=wake_on_start)
            for agent_id in self.inspection.agent_ids(ACTIVE)
        }
        for agent_id, future in futures.items():
            try:
                future.result(self.client.timeout + 5)
            except (PagletError, FutureTimeout) as exc:
                log.warning("node %s: could not park %s for restart: %s", self.name, agent_id, exc)

    def _stop_parts(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.broker is not None and self.broker.running:
            self._stop_all_workers()
        if self.broker is not None:
            self.broker.stop()
        if self.zygote is not None:
            self.zygote.stop()  # it SIGKILLs any worker still there
        self.processes.forget_all()
        if self._tasks is not None:
            self._tasks.shutdown(wait=False, cancel_futures=True)
        if self._runtime_dir:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
            self._runtime_dir = None

    def _stop_all_workers(self, grace: float = 2.0) -> None:
        try:
            agent_ids = [s["agent_id"] for s in wait_for(self.broker.summaries(), 5, "the broker")]
            for agent_id in agent_ids:
                wait_for(self.broker.stop_worker(agent_id), 5, "the broker")
        except (PagletError, RuntimeError) as exc:
            log.warning("node %s: could not ask workers to stop: %s", self.name, exc)
        if not self.processes.wait_all_gone(grace):
            self.processes.kill_all()

    def __enter__(self) -> Host:
        self.start_background()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _start_discovery(self) -> None:
        """LAN discovery: announce ourselves by multicast; nodes heard of become gossip peers."""
        if not (self.mesh_enabled and self.mesh_lan_discovery and self.mesh_multicast) or self.connect_to:
            return
        self.discovery = LanDiscovery(
            self.name,
            lambda: self.address,
            lambda name, url: self.mesh.add_peer(url),
            interval=self.mesh_gossip_interval,
        )
        self.discovery.start()

    def require_running(self) -> Broker:
        if not self._running or self.broker is None:
            raise HostError(f"node {self.name} is not running")
        return self.broker

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` in the background (wake-ups, startup activations)."""
        try:
            self._tasks.submit(fn, *args)
        except RuntimeError:
            log.debug("node %s is stopping; dropped a background task", self.name)

    def _worker_forked(self, agent_id: str, pid: int) -> None:
        self.processes.forked(agent_id, pid)
        if self.broker is not None:
            self.broker.worker_forked(agent_id, pid)

    def _worker_exited(self, pid: int, code: int) -> None:
        self.processes.exited(pid)
        if self.broker is not None:
            with contextlib.suppress(RuntimeError):
                self.broker.worker_exited(pid, code)

    # -- lifecycle (see paglets.node.flows.lifecycle) -----------------------------------------
    def create(
        self,
        cls: type[Paglet[Any]] | str,
        state: PagletState | dict[str, Any] | None = None,
        init: Any = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        """Start a new paglet here; returns its proxy once ``on_creation`` has run."""
        header, payload = create_request(cls, state, init, agent_id)
        new_id = self.lifecycle.start_paglet(
            header["cls"], list(payload), agent_id=agent_id, plain=bool(header.get("plain"))
        )
        return self.get_proxy_for(new_id)

    def start_paglet(self, class_name: str, payload: list[bytes], **options: Any) -> str:
        return self.lifecycle.start_paglet(class_name, payload, **options)

    def dispose(self, agent_id: str) -> None:
        """Run ``on_disposing``, clean up and stop the paglet (or forget a parked one)."""
        if self.parking.record(agent_id) is not None:
            self.parking.dispose(agent_id)
            self.events.emit("paglet-disposed", agent_id=agent_id)
            return
        self.lifecycle.dispose(agent_id)

    def run_hook(self, agent_id: str, name: str, event: dict[str, Any], timeout: float) -> None:
        self.lifecycle.run_hook(agent_id, name, event, timeout)

    # -- parking (see paglets.node.flows.parking) -----------------------------------------------
    def deactivate(self, agent_id: str, request: DeactivationRequest | None = None) -> PagletProxy:
        """Park a paglet on disk; messages may wake it or wait for it, as its policy says."""
        return self.parking.deactivate(agent_id, request)

    def activate(self, agent_id: str) -> PagletProxy:
        """Wake a parked paglet; its queued mail is delivered in order."""
        return self.parking.activate(agent_id)

    # -- movement (see paglets.node.flows.movement) -----------------------------------------
    def dispatch(self, agent_id: str, target: Any) -> PagletProxy:
        """Move a paglet to another node (address, mesh name or TransferTicket); returns its new proxy."""
        return self.movement.dispatch(agent_id, target)

    def clone(self, agent_id: str, target: Any = None) -> PagletProxy:
        """Copy a paglet, here or to ``target``; returns the copy's proxy."""
        return self.movement.clone(agent_id, target)

    def retract(self, remote_address: str, agent_id: str) -> PagletProxy:
        """Pull a paglet that lives on ``remote_address`` back to this node."""
        return self.movement.retract(remote_address, agent_id)

    def create_remote(self, target: Any, cls: Any, state: Any = None, init: Any = None) -> PagletProxy:
        """Create a paglet on another node (address, mesh name or TransferTicket)."""
        ticket = TransferTicket.of(target)
        address = self.movement.resolve(ticket.destination)
        return self.client.create(address, cls, state, init, timeout=ticket.timeout)

    def address_of(self, name: str) -> str | None:
        """The address of a node the mesh knows by this name, or None."""
        if name == self.name:
            return self.address
        ref = self.mesh.lookup(name)
        return ref.url if ref is not None else None

    def _mesh_entry(self) -> HostRef:
        counts = self.inspection.counts() if self._running else (0, 0)
        return HostRef(
            name=self.name,
            url=self.address,
            code_version=self.mesh_version,
            active_count=counts[0],
            inactive_count=counts[1],
            tags=tuple(self.tags),
            properties=dict(self.host_properties),
            http_url=self.http_address,
        )

    def capabilities(self) -> list[str]:
        return [c for c in CAPABILITIES if c != "http" or self.http is not None]

    # -- inspection (see paglets.node.flows.inspection) -------------------------------------------
    def get_proxy_for(self, agent_id: str) -> PagletProxy:
        return PagletProxy(self.address, agent_id, self.client)

    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> PagletProxy | None:
        try:
            info = self.inspection.agent_info(agent_id)
        except InvalidAgentError:
            return None
        if info.get("crashed") or (not info.get("active") and not include_inactive):
            return None
        return self.get_proxy_for(agent_id)

    def get_proxies(self, state: int = ACTIVE) -> list[PagletProxy]:
        return [self.get_proxy_for(agent_id) for agent_id in self.inspection.agent_ids(state)]

    def agent_ids(self, state: int = ACTIVE) -> list[str]:
        return self.inspection.agent_ids(state)

    def get_state(self, agent_id: str, state_cls: type[PagletState] | None = None) -> Any:
        """The paglet's current state, typed when ``state_cls`` is given (plain data otherwise)."""
        data = self.inspection.state_bytes(agent_id)
        return codec.decode(data, expected=state_cls) if state_cls is not None else codec.decode_plain(data)

    def state_bytes(self, agent_id: str) -> bytes:
        return self.inspection.state_bytes(agent_id)

    def agent_info(self, agent_id: str, *, include_state: bool = False) -> dict[str, Any]:
        return self.inspection.agent_info(agent_id, include_state=include_state)

    def list_agents(
        self, *, active: bool = True, inactive: bool = False, include_state: bool = False
    ) -> list[dict[str, Any]]:
        return self.inspection.list_agents(active=active, inactive=inactive, include_state=include_state)

    def health(self) -> dict[str, Any]:
        return self.inspection.health()

    def list_hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[HostRef]:
        """The nodes of the mesh this node knows (itself included unless told otherwise)."""
        return self.mesh.hosts(online_only=online_only, include_self=include_self)

    def mailbox_status(self, agent_id: str) -> dict[str, int]:
        return dict(wait_for(self.require_running().summary(agent_id), 10, "the broker")["mailbox"])

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

        For a parked paglet that queues mail the reply is ``{"queued": True,
        "message_id": ...}``, given once the message is on disk.
        """
        return self.messaging.deliver(
            agent_id, message, oneway=oneway, activate_if_inactive=activate_if_inactive,
            no_delay=no_delay, timeout=timeout,
        )  # fmt: skip

    def multicast_message(
        self, kind: str | Message, args: dict[str, Any] | None = None, *, exclude: set[str] | None = None
    ) -> ReplySet:
        """Send to every active paglet here; the ReplySet completes as they answer."""
        return self.messaging.multicast(kind, args, exclude=exclude)

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
        return WorkerResources(self, agent_id)

    def work_path(self, agent_id: str) -> Path:
        return self.work_root / protocol.validate_agent_id(agent_id)

    def work_dir_for(self, agent_id: str, *, create: bool = True, check: bool = True) -> Path:
        if check:
            self.agent_info(agent_id)
        path = self.work_path(agent_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def persistent_storage_for(self, agent_id: str, *, quota_bytes: int | None = None) -> ManagedStorage:
        """The quota-limited storage directory shared by the paglet's class."""
        class_name = self.agent_info(agent_id)["class_name"]
        quota = self.persistent_storage_quota_bytes if quota_bytes is None else quota_bytes
        return ManagedStorage(class_storage_dir(self.persistence_dir / "storage", class_name), quota)

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


def _missing_allow_dir() -> str:
    raise AuthenticationError("curve_secret needs curve_allow: a directory of the client public keys to let in")


def _short_tmp() -> str:
    """A directory short enough for ipc socket paths (about 100 bytes at most)."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if candidate and len(candidate) < 60 and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


__all__ = ["Host", "WorkerResources"]

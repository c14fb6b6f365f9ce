"""Host: the public facade of a paglets node.

A Host is a thin facade over named parts, each owning its own state:

* ``broker`` (:class:`~paglets.runtime.broker.Broker`) — the sockets, the
  mailboxes and the worker slots;
* ``zygote`` (:class:`~paglets.runtime.zygote.Zygote`) — starts workers;
* ``processes`` (:class:`~paglets.runtime.processes.WorkerProcesses`) — which
  worker pids are alive, so stop and dispose can wait for them;
* ``ops`` (:class:`~paglets.runtime.node_ops.NodeOps`) — answers front
  requests and paglets' host calls by calling back into this facade;
* ``http`` (:class:`~paglets.runtime.http_shim.HttpShim`) — the HTTP shim;
* ``events`` (:class:`~paglets.core.events.ContextEventLog`).

Any thread may call a Host method; the facade reaches the broker loop only
through Futures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import zmq

import paglets
from paglets.core.agent import ACTIVE, INACTIVE, Paglet, PagletState
from paglets.core.errors import HostError, InvalidAgentError, PagletError, RequestTimeoutError
from paglets.core.events import ContextEvent, ContextEventLog, PersistencyEvent
from paglets.core.messages import FutureReply, Message, ReplySet
from paglets.remote.client import HostClient, create_request
from paglets.remote.proxy import PagletProxy
from paglets.remote.transfer import TransferTicket
from paglets.remote.transport import then
from paglets.runtime.broker import Broker
from paglets.runtime.files import ArtifactStore, FileRegistry, PagletFileRef
from paglets.runtime.movement import Movement
from paglets.runtime.node_ops import NodeOps
from paglets.runtime.processes import WorkerProcesses
from paglets.runtime.zygote import Zygote
from paglets.wire import codec, protocol
from paglets.wire.message_codec import encode_message

log = logging.getLogger("paglets.host")

DEFAULT_DATA_ROOT = Path.home() / ".local" / "share" / "paglets"
DEFAULT_PERSISTENT_STORAGE_QUOTA_BYTES = 64 * 1024 * 1024
DEFAULT_ARTIFACT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES = 1024 * 1024 * 1024
DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS = 3600.0
CAPABILITIES = ("messages", "create", "dispose", "state", "http", "dispatch", "clone", "retract", "files")


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
    ):
        if not isinstance(name, str) or not protocol.AGENT_ID_PATTERN.match(name):
            raise ValueError(f"node name {name!r} must be 1-128 of A-Z a-z 0-9 . _ -")
        if not 0 <= int(port) < 65536:
            raise ValueError(f"port {port} out of range")
        self.name = name
        self.bind_host = host if isinstance(host, str) else (list(host) or ["127.0.0.1"])[0]
        self.port = int(port)
        self.api_key = api_key or None
        self.public_url = public_url.rstrip("/") if public_url else None
        self.connect_to = connect_to
        self.address = self.public_url or f"tcp://{self._public_host()}:{self.port}"
        self.client = client or HostClient(api_key=self.api_key)
        if self.api_key and self.client.api_key is None:
            self.client.api_key = self.api_key
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
        self.events = ContextEventLog()
        self.files = FileRegistry(artifact_max_bytes)
        self.artifacts = ArtifactStore(
            self.persistence_dir / "artifacts", max_bytes=artifact_max_bytes, quota_bytes=artifact_storage_quota_bytes
        )
        self.movement = Movement(self)
        self.processes = WorkerProcesses()
        self.ops = NodeOps(self)
        self.broker: Broker | None = None
        self.zygote: Zygote | None = None
        self.http: Any = None
        self._properties: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._runtime_dir: str | None = None
        self._started_at = 0.0
        self._stopped = threading.Event()
        self._running = False

    # -- running ------------------------------------------------------------------
    @property
    def work_root(self) -> Path:
        return self.persistence_dir / "work"

    def start_background(self) -> None:
        """Open the sockets, start the template process and return."""
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
            self._started_at = time.time()
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
            front_endpoint=f"tcp://{self.bind_host}:{self.port}",
            back_endpoint=f"ipc://{self._runtime_dir}/back",
            api_key=self.api_key,
            heartbeat_interval=self.heartbeat_interval,
            max_message_size=self.max_message_size,
            mailbox_limit=self.mailbox_limit,
            forward_ttl=self.forward_ttl,
        )
        self.broker.start()
        self.port = int(self.broker.front_address.rsplit(":", 1)[1])
        self.address = self.public_url or f"tcp://{self._public_host()}:{self.port}"
        if self.http_port is not None:
            from paglets.runtime.http_shim import HttpShim

            self.http = HttpShim(self, self.bind_host, self.http_port)
            self.http.start()
            self.http_address = self.http.address

    def serve_forever(self) -> None:
        """Start and block until :meth:`stop` or :meth:`shutdown` is called."""
        self.start_background()
        self._stopped.wait()

    def shutdown(self) -> None:
        self.stop(deactivate_active=True)

    def stop(self, *, deactivate_active: bool = False) -> None:
        """Stop every worker, close the sockets and stop the template process."""
        with self._lock:
            if not self._running:
                return
            self._running = False
        self.events.emit("node-stop")
        self._stop_parts()
        self._stopped.set()

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
        if self._runtime_dir:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
            self._runtime_dir = None

    def _stop_all_workers(self, grace: float = 2.0) -> None:
        try:
            agent_ids = [s["agent_id"] for s in self.broker.summaries().result(5)]
            for agent_id in agent_ids:
                self.broker.stop_worker(agent_id).result(5)
        except (PagletError, FutureTimeout, RuntimeError) as exc:
            log.warning("node %s: could not ask workers to stop: %s", self.name, exc)
        if not self.processes.wait_all_gone(grace):
            self.processes.kill_all()

    def __enter__(self) -> Host:
        self.start_background()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _public_host(self) -> str:
        return "127.0.0.1" if self.bind_host in ("0.0.0.0", "*", "") else self.bind_host

    def _require_running(self) -> Broker:
        if not self._running or self.broker is None:
            raise HostError(f"node {self.name} is not running")
        return self.broker

    def _worker_forked(self, agent_id: str, pid: int) -> None:
        self.processes.forked(agent_id, pid)
        if self.broker is not None:
            self.broker.worker_forked(agent_id, pid)

    def _worker_exited(self, pid: int, code: int) -> None:
        self.processes.exited(pid)
        if self.broker is not None:
            with contextlib.suppress(RuntimeError):
                self.broker.worker_exited(pid, code)

    # -- lifecycle ------------------------------------------------------------------
    def create(
        self,
        cls: type[Paglet[Any]] | str,
        state: PagletState | dict[str, Any] | None = None,
        init: Any = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        """Start a new paglet here; returns its proxy once ``on_creation`` has run."""
        header, payload = create_request(cls, state, init, agent_id)
        new_id = self.start_paglet(header["cls"], list(payload), agent_id=agent_id, plain=bool(header.get("plain")))
        return self.get_proxy_for(new_id)

    def start_paglet(
        self,
        class_name: str,
        payload: list[bytes],
        *,
        agent_id: str | None = None,
        plain: bool = False,
        hook: str = "on_creation",
        event: dict[str, Any] | None = None,
        prepare_only: bool = False,
        token: str | None = None,
        source: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Fork a worker for ``class_name`` and run its start hook; returns the agent id.

        With ``prepare_only`` the worker only loads its class and waits for an
        arriving paglet's state (see :mod:`paglets.runtime.movement`).
        """
        broker = self._require_running()
        _check_class_name(class_name)
        agent_id = protocol.validate_agent_id(agent_id) if agent_id else uuid.uuid4().hex
        nonce = token or uuid.uuid4().hex
        limit = self.start_timeout if timeout is None else timeout
        start_header: dict[str, Any] | None = None
        if not prepare_only:
            start_header = {"hook": hook, "plain": plain}
            if event is not None:
                start_header["event"] = event
        started = broker.expect_worker(agent_id, nonce, class_name, start_header, payload, limit, source)
        try:
            self.zygote.fork(self._worker_spec(agent_id, nonce, class_name))
            self.zygote.note_class(class_name, list(sys.path))
        except BaseException:
            broker.stop_worker(agent_id)
            raise
        try:
            started.result(limit + 1)
        except FutureTimeout:
            self._remove_worker(agent_id)
            raise RequestTimeoutError(
                f"paglet {agent_id!r} ({class_name}) did not start within {limit:g} s on {self.name}"
            ) from None
        except BaseException:
            self._remove_worker(agent_id)
            raise
        if not prepare_only:
            self.events.emit("paglet-created", agent_id=agent_id, class_name=class_name, hook=hook)
        return agent_id

    def _worker_spec(self, agent_id: str, nonce: str, class_name: str) -> dict[str, Any]:
        return {
            "agent_id": agent_id,
            "nonce": nonce,
            "class_name": class_name,
            "back_endpoint": self.broker.back_endpoint,
            "node_name": self.name,
            "node_address": self.address,
            "heartbeat": self.heartbeat_interval,
            "heartbeat_misses": 3,
            "sys_path": list(sys.path),
            "cwd": os.getcwd(),
            "api_key": self.api_key,
            "work_dir": str(self.work_dir_for(agent_id, create=False, check=False)),
            "log_level": logging.getLevelName(logging.getLogger("paglets").getEffectiveLevel()),
        }

    def dispose(self, agent_id: str) -> None:
        """Run ``on_disposing``, clean up the paglet's resources and stop its worker."""
        broker = self._require_running()
        event = PersistencyEvent(agent_id, self.name, self.address, reason="dispose").to_wire()
        try:
            broker.call_worker(agent_id, {"op": "dispose", "event": event}).result(self.client.timeout)
        except InvalidAgentError:
            raise
        except (PagletError, FutureTimeout) as exc:
            log.warning("node %s: dispose hook of %s failed: %s", self.name, agent_id, exc)
        self._remove_worker(agent_id)
        self.files.drop(agent_id)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.work_dir_for(agent_id, create=False, check=False))
        self.events.emit("paglet-disposed", agent_id=agent_id)

    # -- movement (see paglets.runtime.movement) -----------------------------------------
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

    def run_hook(self, agent_id: str, name: str, event: dict[str, Any], timeout: float) -> None:
        """Run one of the paglet's lifecycle hooks in its worker."""
        future = self._require_running().call_worker(agent_id, {"op": "hook", "name": name, "event": event})
        _wait(future, timeout, f"hook {name} of paglet {agent_id}")

    def address_of(self, name: str) -> str | None:
        """The address of a node known by name (just this one until the mesh knows more)."""
        return self.address if name == self.name else None

    def capabilities(self) -> list[str]:
        return list(CAPABILITIES)

    # -- registered files -------------------------------------------------------------------
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

    def _remove_worker(self, agent_id: str, grace: float = 2.0) -> None:
        pid = self.broker.stop_worker(agent_id).result(5)
        if pid is not None and not self.processes.wait_gone(pid, grace):
            self.processes.kill(pid)

    # -- inspection -----------------------------------------------------------------
    def get_proxy_for(self, agent_id: str) -> PagletProxy:
        return PagletProxy(self.address, agent_id, self.client)

    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> PagletProxy | None:
        try:
            summary = self._require_running().summary(agent_id).result(5)
        except InvalidAgentError:
            return None
        return None if summary["crashed"] else self.get_proxy_for(agent_id)

    def get_proxies(self, state: int = ACTIVE) -> list[PagletProxy]:
        return [self.get_proxy_for(agent_id) for agent_id in self.agent_ids(state)]

    def agent_ids(self, state: int = ACTIVE) -> list[str]:
        ids: list[str] = []
        if state & ACTIVE:
            summaries = self._require_running().summaries().result(5)
            ids.extend(s["agent_id"] for s in summaries if s["phase"] == "ready")
        if state & INACTIVE:
            pass  # parked paglets arrive with persistence
        return ids

    def get_state(self, agent_id: str, state_cls: type[PagletState] | None = None) -> Any:
        """The paglet's current state (fetched from its worker), typed when ``state_cls`` is given."""
        data = self.state_bytes(agent_id)
        return codec.decode(data, expected=state_cls) if state_cls is not None else codec.decode_plain(data)

    def state_bytes(self, agent_id: str) -> bytes:
        _header, payload = self._require_running().call_worker(agent_id, {"op": "state"}).result(self.client.timeout)
        return payload[0] if payload else b""

    def agent_info(self, agent_id: str, *, include_state: bool = False) -> dict[str, Any]:
        summary = self._require_running().summary(agent_id).result(5)
        return self._describe(summary, include_state)

    def list_agents(
        self, *, active: bool = True, inactive: bool = False, include_state: bool = False
    ) -> list[dict[str, Any]]:
        agents: list[dict[str, Any]] = []
        if active:
            summaries = self._require_running().summaries().result(5)
            agents.extend(self._describe(s, include_state) for s in summaries)
        return agents

    def _describe(self, summary: dict[str, Any], include_state: bool) -> dict[str, Any]:
        info = dict(summary)
        info["host"] = self.name
        info["address"] = self.address
        info["active"] = summary["phase"] == "ready"
        if include_state and info["active"]:
            try:
                info["state"] = codec.decode_plain(self.state_bytes(summary["agent_id"]))
            except PagletError as exc:
                info["state_error"] = str(exc)
        return info

    def health(self) -> dict[str, Any]:
        summaries = self._require_running().summaries().result(5)
        return {
            "name": self.name,
            "address": self.address,
            "http_address": self.http_address,
            "version": paglets.__version__,
            "protocol": protocol.PROTOCOL_VERSION,
            "code_version": self.mesh_version,
            "active_count": sum(1 for s in summaries if s["phase"] == "ready"),
            "inactive_count": 0,
            "crashed_count": sum(1 for s in summaries if s["crashed"]),
            "capabilities": self.capabilities(),
            "tags": list(self.tags),
            "properties": dict(self.host_properties),
            "pid": os.getpid(),
            "uptime": round(time.time() - self._started_at, 3),
        }

    def list_hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[dict[str, Any]]:
        if not include_self:
            return []
        return [{"name": self.name, "url": self.address, "online": True, "code_version": self.mesh_version}]

    def mailbox_status(self, agent_id: str) -> dict[str, int]:
        return dict(self._require_running().summary(agent_id).result(5)["mailbox"])

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
        """Deliver a message from inside the node process; returns the handler's reply."""
        future = self._deliver_future(agent_id, message, oneway)
        limit = self.client.timeout if timeout is None else timeout
        try:
            _header, payload = future.result(limit)
        except FutureTimeout:
            raise RequestTimeoutError(
                f"paglet {agent_id!r} on {self.name} did not answer within {limit:g} s", op="send"
            ) from None
        if oneway or not payload or not payload[0]:
            return None
        return codec.decode(payload[0])

    def _deliver_future(self, agent_id: str, message: Message | str, oneway: bool) -> Any:
        message = Message(message) if isinstance(message, str) else message
        if message.sender is None:
            message.sender = self.address
        body = encode_message(message)
        return self._require_running().deliver(agent_id, body, oneway=oneway, priority=message.priority)

    def multicast_message(
        self, kind: str | Message, args: dict[str, Any] | None = None, *, exclude: set[str] | None = None
    ) -> ReplySet:
        """Send to every active paglet here; the ReplySet completes as they answer."""
        replies = ReplySet()
        for agent_id in self.agent_ids(ACTIVE):
            if exclude and agent_id in exclude:
                continue
            message = Message.from_wire(kind.to_wire()) if isinstance(kind, Message) else Message(kind, args or {})
            future = self._deliver_future(agent_id, message, False)
            replies.add_future_reply(FutureReply(then(future, _decode_payload)))
        return replies

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

    def work_dir_for(self, agent_id: str, *, create: bool = True, check: bool = True) -> Path:
        if check:
            self.agent_info(agent_id)
        path = self.work_root / protocol.validate_agent_id(agent_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path


class WorkerResources:
    """The node's view of a paglet's ResourceRegistry, which lives in its worker."""

    def __init__(self, host: Host, agent_id: str):
        self._host = host
        self.agent_id = agent_id

    def status(self) -> dict[str, bool]:
        _header, payload = self._host._require_running().call_worker(self.agent_id, {"op": "resources"}).result(10)
        return dict(codec.decode(payload[0])) if payload else {}

    def cleanup(self, *, reason: str = "lifecycle") -> None:
        self._host._require_running().call_worker(self.agent_id, {"op": "cleanup", "reason": reason}).result(30)


def _decode_payload(result: tuple[bytes, list[bytes]]) -> Any:
    _header, payload = result
    return codec.decode(payload[0]) if payload and payload[0] else None


def _wait(future: Any, timeout: float, what: str) -> Any:
    """A Future's result, or a RequestTimeoutError that says what was awaited."""
    try:
        return future.result(timeout)
    except FutureTimeout:
        raise RequestTimeoutError(f"timed out after {timeout:g} s waiting for {what}") from None


def _check_class_name(class_name: str) -> None:
    if not isinstance(class_name, str) or ":" not in class_name:
        raise HostError(f"paglet class name {class_name!r} must look like 'package.module:ClassName'")
    if class_name.startswith("__main__:"):
        raise HostError(
            f"paglet class {class_name!r} is defined in __main__; worker processes import paglet "
            "classes by name, so move it to an importable module"
        )


def _short_tmp() -> str:
    """A directory short enough for ipc socket paths (about 100 bytes at most)."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if candidate and len(candidate) < 60 and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


__all__ = ["Host", "WorkerResources"]

"""Host: the public facade of a paglets node.

A Host holds named parts and delegates; it owns only the node's properties
and the running flag. Its options are the fields of
:class:`~paglets.node.config.NodeConfig` (``Host("alpha", port=0,
api_key=...)``); the parts are put together in :mod:`paglets.node.assembly`:

* long-lived (the :class:`~paglets.node.assembly.Foundation`): ``here`` (name,
  addresses), ``client``, ``events``, ``files``, ``artifacts``, ``parked``
  (records of parked paglets), ``mesh``, ``processes``;
* per run (:class:`~paglets.node.assembly.RunningParts`): the ``broker`` loop
  and its commands, the template process (``template_process``), and the flows —
  lifecycle, inspection, movement, arrivals, parking, checkpoints, messaging —
  plus the surfaces that answer front requests, host calls and HTTP.

Any thread may call a Host method; the facade reaches the broker loop only
through Futures.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from paglets.client.hosts import HostRef
from paglets.client.proxy import PagletProxy
from paglets.client.transfer import TransferTicket
from paglets.core.agent import ACTIVE, Paglet, PagletState
from paglets.core.errors import HostError, InvalidAgentError
from paglets.core.events import ContextEvent
from paglets.core.messages import Message, ReplySet
from paglets.node import launch
from paglets.node.assembly import Foundation, RunningParts
from paglets.node.broker.commands import LOOP_DEADLINE
from paglets.node.config import DEFAULT_DATA_ROOT, NodeConfig
from paglets.node.flows.lifecycle import WorkerResources
from paglets.node.flows.startup import start_launch_paglets
from paglets.node.host_context import HostSideContext  # noqa: F401  (makes PagletContext(host) work)
from paglets.node.host_paglets import PagletFacilities
from paglets.node.host_services import NodeServices, delegate
from paglets.node.mesh.discovery import LanDiscovery
from paglets.node.observe.metrics import NodeMetrics
from paglets.node.rollout.updater import CodeRollout
from paglets.node.runner import NodeRunner
from paglets.persistence.persistency import DeactivationRequest
from paglets.waiting import wait_for
from paglets.wire import codec

log = logging.getLogger("paglets.host")


class Host:
    """A paglets node: runs paglets in worker processes and serves their mailboxes."""

    def __init__(
        self, name: str | None = None, host: str | Sequence[str] | None = None, port: int | None = None, **options: Any
    ):
        """``options``: any field of :class:`~paglets.node.config.NodeConfig` (``http_port=None``: no HTTP).

        ``launch_config`` (a TOML file's path, a parsed mapping or a
        :class:`~paglets.node.launch.LaunchConfig`) gives the node's options
        (the keywords given here win), its startup paglets and resident
        services; ``name``, ``host`` (default 127.0.0.1) and ``port`` (default
        0) may come from it too.

        ``resident_services``: the resident services this node runs, a list of
        any of: ``[[resident_services]]`` tables as read from TOML (dicts with
        the keys ``class``, ``agent_id``, ``lifecycle``, ``scope``,
        ``singleton``, ``idle_timeout``, ``state``), ResidentServiceSpec
        objects naming their ``paglet_class``, paglet classes declaring
        ``RESIDENT_SERVICE``, or ``"module:Class"`` paths. Checked here: a
        ValueError names the entry and key; a class whose module the node's
        module policy (``allow_modules``) does not allow is a ForbiddenError,
        and nothing is imported for it. ``idle_park``: seconds after which an
        idle paglet is parked (None: never).
        """
        if host is not None and not isinstance(host, str):
            host = (list(host) or ["127.0.0.1"])[0]
        if "http_port" in options and options["http_port"] is None:
            del options["http_port"]
            options["http"] = False
        self.config = NodeConfig.from_options(**launch.host_keywords(name, host, port, options))
        codec.POLICY.allow(*self.config.allow_modules, *self.config.preload)
        if self.config.allow_any_module:
            codec.POLICY.allow_any = True
        if self.config.launch_config is not None:  # before anything starts: a refused class stops the node here
            self.config.launch_config.check_modules(codec.POLICY.allows)
        self.rollout = CodeRollout(self.config)  # refuses a dirty checkout with auto_update_from_git
        if self.rollout.enabled:  # the checkout's HEAD is the code version this node advertises
            self.config = self.config.replace(mesh_version=self.rollout.code_version())
        base = self._base = Foundation.build(self.config, self._mesh_entry)
        self.here = base.here
        self.client = base.client
        self.events = base.events
        self.files = base.files
        self.artifacts = base.artifacts
        self.parked = base.parked
        self.mesh = base.mesh
        self.processes = base.processes
        self.services = base.services  # the service registry (records of this node's paglets)
        self.feed = base.feed  # reads of the event log from outside (the events op, GET /events)
        self.metrics = NodeMetrics(base, lambda: self._run)  # GET /metrics
        self.leases = base.leases  # the leases on this node's resident services
        self.ready = base.ready  # set once parked paglets are loaded: unknown ids are really unknown
        self._runner = NodeRunner(base, self)
        self._properties: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.per_paglet = PagletFacilities(
            self._parts, lambda agent_id: self.agent_info(agent_id, resources=False), self.config, base.here, base.files
        )
        self.events.add_listener(self.per_paglet.on_event)
        self.service_api = NodeServices(self._parts, base.here, base.client, base.resident_specs)

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
    def _run(self) -> RunningParts | None:
        return self._runner.parts

    @property
    def running(self) -> bool:
        return self._run is not None

    @property
    def discovery(self) -> LanDiscovery | None:
        return self._runner.discovery

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
    def template_process(self) -> Any:
        """The template process that forks workers (None while stopped)."""
        return self._run.templates if self._run is not None else None

    @property
    def arrivals(self) -> Any:
        return self._parts().arrivals

    @property
    def http(self) -> Any:
        """The HTTP shim of the current run (None while stopped or without HTTP)."""
        return self._run.http if self._run is not None else None

    # -- running (see paglets.node.runner) ----------------------------------------------------
    def start_background(self) -> None:
        """Open the sockets, start the template process, load parked paglets, create the startup
        paglets of the launch config, and return."""
        was_running = self.running
        self._runner.start()
        if not was_running:
            start_launch_paglets(self, self.config.launch_config)

    def serve_forever(self) -> None:
        """Start and block until :meth:`stop` or :meth:`shutdown` is called."""
        self.start_background()
        self._runner.wait_stopped()

    def shutdown(self) -> list[str]:
        """Park every active paglet on disk, then stop: a restart on the same data dir brings them back.

        Handlers still running after ``stop_grace`` seconds are cut short (their
        callers get HandlerInterruptedError) and their paglets parked all the
        same; :meth:`stop_now` ends that wait early. Returns the ids of the
        paglets that could not be parked (each logged as an error): empty
        unless one's state could not even be read.
        """
        return self.stop(deactivate_active=True)

    def update_code(self, target: str | None = None) -> dict[str, Any]:
        """Fetch and fast-forward this node's checkout; with new code, reinstall it and restart the node
        (its paglets parked across the restart). Needs ``auto_update_from_git``; see
        :mod:`paglets.node.rollout.updater`."""
        return self.rollout.update(self.name, target, self.shutdown)

    def stop_now(self) -> None:
        """Make a shutdown in progress (or the next one) stop waiting for handlers and hooks:
        park at once what can be parked. Any thread; a second stop signal calls it."""
        self._runner.hurry()

    def stop(self, *, deactivate_active: bool = False) -> list[str]:
        """Stop every worker, close the sockets and stop the template process.

        Without ``deactivate_active`` active paglets are simply gone (parked
        ones stay on disk); with it they are parked first, to wake on restart,
        as :meth:`shutdown` says. Returns the ids of the paglets not parked.
        """
        return self._runner.stop(deactivate_active=deactivate_active)

    def __enter__(self) -> Host:
        self.start_background()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _mesh_entry(self) -> HostRef:
        run = self._run
        return self.here.mesh_entry(*(run.inspection.counts() if run is not None else (0, 0)))

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

    def create_remote(
        self, target: Any, cls: Any, state: Any = None, init: Any = None, agent_id: str | None = None
    ) -> PagletProxy:
        """Create a paglet on another node (address, mesh name or TransferTicket), with ``agent_id`` if given."""
        if isinstance(cls, type):
            codec.trust_class(cls)  # this process hands the class over: its other hosts may import it too
        ticket = TransferTicket.of(target)
        address = self._parts().movement.resolve(ticket.destination, ticket)
        return self.client.create(address, cls, state, init, agent_id=agent_id, timeout=ticket.timeout)

    def address_of(self, name: str) -> str | None:
        """The address of a node the mesh knows by this name, or None."""
        return self._parts().movement.address_of(name)

    # -- inspection -------------------------------------------------------------------------
    def get_proxy_for(self, agent_id: str) -> PagletProxy:
        return PagletProxy(self.address, agent_id, self.client)

    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> PagletProxy | None:
        try:
            info = self.agent_info(agent_id, resources=False)
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

    def agent_info(self, agent_id: str, *, include_state: bool = False, resources: bool = True) -> dict[str, Any]:
        """Details of one paglet, active or parked (InvalidAgentError if unknown); ``resources=False``
        does not ask its worker for its resources."""
        return self._parts().inspection.agent_info(agent_id, include_state=include_state, resources=resources)

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

    # -- services: NodeServices (paglets.node.host_services) has their signatures and docs ----------
    advertise_service = delegate("service_api", NodeServices)
    unadvertise_service = delegate("service_api", NodeServices)
    lookup_services = delegate("service_api", NodeServices)
    lookup_service = delegate("service_api", NodeServices)
    advertise_contract = delegate("service_api", NodeServices)
    lookup_contracts = delegate("service_api", NodeServices)
    lookup_contract = delegate("service_api", NodeServices)
    require_contract = delegate("service_api", NodeServices)
    lease_contract = delegate("service_api", NodeServices)
    lease_service_handle = delegate("service_api", NodeServices)
    acquire_resident_service_lease = delegate("service_api", NodeServices)
    release_resident_service_lease = delegate("service_api", NodeServices)
    resident_services = delegate("service_api", NodeServices)
    create_parked = delegate("service_api", NodeServices)

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
        """Call ``listener(event)`` for each event of this node (on the emitting thread: keep it quick).

        A listener that raises is logged and produces a ``listener-failed`` event.
        """
        self.events.add_listener(listener)

    def remove_listener(self, listener: Callable[[ContextEvent], Any]) -> None:
        self.events.remove_listener(listener)

    def list_events(
        self, *, since: int = 0, limit: int = 100, kind: str | None = None, agent_id: str | None = None
    ) -> list[ContextEvent]:
        """Events with ``event_id > since``, oldest first; ``kind`` may be a kind or an old name of one."""
        return self.events.events_since(since, limit=limit, kind=kind, agent_id=agent_id)

    def node_agents(self, name: str, timeout: float = 5.0) -> list[dict[str, Any]] | None:
        """The paglets (active and parked) of this node or of a node of the mesh named ``name``; None if unknown.

        Another node is asked over ZeroMQ with this node's client: only a node
        the mesh knows by that name, never an address a caller gives.
        """
        if name == self.name:
            return self.list_agents(active=True, inactive=True)
        ref = self.mesh.lookup(name)
        if ref is None or ref.name != name:
            return None
        reply = self.client.request(ref.url, "list", {"active": True, "inactive": True}, timeout=timeout)
        return list(reply.header.get("agents") or [])

    # -- per paglet: PagletFacilities (paglets.node.host_paglets) has their signatures and docs ------
    resources_for = delegate("per_paglet", PagletFacilities)
    work_dir_for = delegate("per_paglet", PagletFacilities)
    persistent_storage_for = delegate("per_paglet", PagletFacilities)
    register_file_for = delegate("per_paglet", PagletFacilities)
    registered_files_for = delegate("per_paglet", PagletFacilities)
    unregister_file_for = delegate("per_paglet", PagletFacilities)
    registered_file_path_for = delegate("per_paglet", PagletFacilities)
    wait_message = delegate("per_paglet", PagletFacilities)
    notify_message = delegate("per_paglet", PagletFacilities)
    notify_all_messages = delegate("per_paglet", PagletFacilities)


__all__ = ["DEFAULT_DATA_ROOT", "Host", "NodeConfig", "WorkerResources"]

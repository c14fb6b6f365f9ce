"""How a node is put together: every part built from the parts it needs, in order.

This is the node's composition root, the one place that knows every part.
:class:`Foundation` holds what lives as long as the :class:`~paglets.node.host.Host`
object (its identity, client, event log, file registries, parked records,
mesh table). :func:`assemble` builds what lives for one run of the node —
the broker loop, the template process and the flows — each from its
collaborators; :func:`start_parts` and :func:`stop_parts` start and stop
them in order.

Dependency order of the flows (each takes only parts above it)::

    broker commands -> inspection -> checkpoints -> lifecycle -> parking
                    -> movement -> arrivals -> messaging -> idle parker -> resident services
    front requests, host calls (surfaces: the facade plus the flows they use)
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import zmq

import paglets
from paglets.binding import LOOPBACK, Binding, advertised_address, check_public_url, resolve_binding
from paglets.client.host_client import HostClient
from paglets.client.hosts import HostRef
from paglets.client.security import CurveIdentity, CurveServer
from paglets.client.transport import check_address
from paglets.core.errors import AuthenticationError
from paglets.core.event_kinds import MESSAGE_FAILED
from paglets.core.events import ContextEventLog
from paglets.exposure import check_exposure, exposure, is_loopback, url_host
from paglets.node.broker.commands import BrokerCommands
from paglets.node.broker.loop import Broker
from paglets.node.broker.relay_link import registration_secret
from paglets.node.broker.stats import FailedNote
from paglets.node.config import NodeConfig
from paglets.node.flows.arrivals import Arrivals
from paglets.node.flows.artifacts import FRONT_OPS as ARTIFACT_OPS
from paglets.node.flows.artifacts import HOST_CALLS as ARTIFACT_CALLS
from paglets.node.flows.artifacts import ArtifactExchange, release_on_dispose
from paglets.node.flows.checkpoints import Checkpointer
from paglets.node.flows.front_requests import FrontRequests
from paglets.node.flows.host_calls import HostCalls
from paglets.node.flows.idling import IdleParker
from paglets.node.flows.inspection import Inspection
from paglets.node.flows.lifecycle import Lifecycle
from paglets.node.flows.messaging import Messaging
from paglets.node.flows.movement import Movement
from paglets.node.flows.parking import Parking
from paglets.node.identity import NodeIdentity
from paglets.node.mesh.registry import MeshRegistry
from paglets.node.observe.feed import EventFeed
from paglets.node.procs.processes import WorkerProcesses
from paglets.node.procs.template_process import TemplateProcess
from paglets.node.services.directory import ServiceDirectory
from paglets.node.services.leases import LeaseTable
from paglets.node.services.mesh_query import MeshQuery
from paglets.node.services.registry import ServiceRegistry
from paglets.node.services.residents import ResidentServices, resolve_resident_services
from paglets.node.storage.files import ArtifactStore, FileRegistry
from paglets.node.storage.parked_records import ParkedRecords
from paglets.node.storage.spool import SpoolSweeper
from paglets.services.resident import ResidentServiceSpec
from paglets.wire import protocol

log = logging.getLogger("paglets.node")
AT_RISK = "create, move and inject paglets"  # what anyone could do to an open node
PARKED_MAIL_FACTOR = 10  # a parked paglet may have this many mailboxes' worth of mail on disk
PREPARE_TTL_SLACK = 30.0  # seconds a prepared arrival waits beyond the longest move a peer may ask for


@dataclass
class Foundation:
    """The parts of a node that outlive its runs: built once from its config."""

    config: NodeConfig
    binding: Binding
    here: NodeIdentity
    connect_to: str | None
    public_url: str | None
    curve: CurveIdentity | None
    curve_server: CurveServer | None
    client: HostClient
    events: ContextEventLog
    processes: WorkerProcesses
    files: FileRegistry
    artifacts: ArtifactStore
    parked: ParkedRecords
    mesh: MeshRegistry
    services: ServiceRegistry
    feed: EventFeed
    leases: LeaseTable
    resident_specs: list[ResidentServiceSpec]
    ready: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def build(cls, config: NodeConfig, describe_self: Any) -> Foundation:
        """``describe_self`` gives the node's current mesh entry (a HostRef) for gossip."""
        name = config.name
        if not isinstance(name, str) or not protocol.AGENT_ID_PATTERN.match(name):
            raise ValueError(f"node name {name!r} must be 1-128 of A-Z a-z 0-9 . _ -")
        # Refused here, before anything is bound: exposed off loopback without credentials.
        where = exposure(
            config.host, bind_public=config.bind_public, public_url=config.public_url, connect_to=config.connect_to
        )
        credentials = bool(config.api_key) or config.curve_secret is not None
        insecure = check_exposure(
            f"node {name}", where, credentials=credentials, insecure=config.insecure, at_risk=AT_RISK
        )
        binding = resolve_binding(
            config.host, bind_public=config.bind_public, public_url=config.public_url, port=config.port
        )
        public_url = check_public_url(config.public_url) if config.public_url else None
        connect_to = check_address(config.connect_to) if config.connect_to else None
        if connect_to:  # behind a relay: listen nowhere, be reached through it
            public_url = f"relay+{connect_to}/{name}"
        # CurveZMQ: serve with our key pair (clients must be in curve_allow), and connect to
        # servers that hold curve_server_key (by default our own public key: one cluster key).
        curve = CurveIdentity.from_files(config.curve_secret, config.curve_server_key) if config.curve_secret else None
        curve_server = None
        if curve is not None:
            if config.curve_allow is None:
                raise AuthenticationError("curve_secret needs curve_allow: a directory of the client public keys")
            curve_server = CurveServer(curve.public, curve.secret, config.curve_allow, f"paglets-{name}")
        # The node's own key, never $PAGLETS_API_KEY ("" sends none).
        client = config.client or HostClient(api_key=config.api_key or "", curve=curve)
        if config.api_key and not client.api_key:
            client.api_key = config.api_key
        if curve is not None and client.curve is None:
            client.curve = curve
        data_dir = config.data_dir
        here = NodeIdentity(
            name=name,
            address=public_url or advertised_address(binding, config.port),
            data_dir=data_dir,
            code_version=config.mesh_version or paglets.__version__,
            tags=tuple(sorted(set(config.tags))),
            properties=dict(config.properties),
            insecure=insecure,
        )
        events = ContextEventLog(config.event_log_size, host_name=name)
        artifacts = ArtifactStore(
            data_dir / "artifacts",
            max_bytes=config.artifact_max_bytes,
            quota_bytes=config.artifact_storage_quota_bytes,
            host=lambda: here.address,
            events=events,
        )
        events.add_listener(release_on_dispose(artifacts))  # a paglet's own artifacts go with it
        mesh = MeshRegistry(
            describe_self,
            client,
            enabled=config.mesh,
            peers=list(config.peers),
            gossip_interval=config.mesh_gossip_interval,
            offline_after=config.mesh_offline_after,
            on_change=lambda ref, online: peer_event(events, ref, online),
        )
        resident_specs = resolve_resident_services(config.resident_services)  # imports only what policy allows
        services = ServiceRegistry(events, name)
        events.add_listener(services.on_node_event)  # a paglet that leaves takes its records along
        return cls(
            config=config,
            binding=binding,
            here=here,
            connect_to=connect_to,
            public_url=public_url,
            curve=curve,
            curve_server=curve_server,
            client=client,
            events=events,
            feed=EventFeed(events),
            processes=WorkerProcesses(),
            files=FileRegistry(config.artifact_max_bytes),
            artifacts=artifacts,
            parked=ParkedRecords(data_dir, name, config.mailbox_limit * PARKED_MAIL_FACTOR),
            mesh=mesh,
            services=services,
            leases=LeaseTable(events, name),
            resident_specs=resident_specs,
        )

    @property
    def http_enabled(self) -> bool:
        return self.config.http and self.connect_to is None


@dataclass
class RunningParts:
    """The parts of one run of a node: built by :func:`assemble`, started and stopped together."""

    broker: Broker
    commands: BrokerCommands
    templates: TemplateProcess
    inspection: Inspection
    checkpoints: Checkpointer
    lifecycle: Lifecycle
    parking: Parking
    movement: Movement
    arrivals: Arrivals
    messaging: Messaging
    front: FrontRequests
    host_calls: HostCalls
    services: ServiceDirectory
    events: ContextEventLog
    idle: IdleParker
    residents: ResidentServices
    http: Any = None
    artifacts: ArtifactExchange | None = None
    spool: SpoolSweeper | None = None

    # -- the broker's services: what its loop hands off ------------------------------------
    def handle_front(self, request: protocol.Request) -> Any:
        if request.op in ARTIFACT_OPS and self.artifacts is not None:
            return self.artifacts.handle_front(request)
        return self.front.handle(request)

    def route_unknown(self, request: protocol.Request) -> Any:
        return self.front.route_unknown(request)

    def handle_host_call(self, agent_id: str, ident: bytes, header: dict[str, Any], payload: list[bytes]) -> Any:
        if header.get("op") in ARTIFACT_CALLS and self.artifacts is not None:
            return self.artifacts.handle_host_call(agent_id, header)
        return self.host_calls.handle(agent_id, ident, header, payload)

    def worker_crashed(self, agent_id: str, pid: int | None, reason: str) -> None:
        self.lifecycle.worker_crashed(agent_id, pid, reason)

    def worker_event(self, agent_id: str, header: dict[str, Any]) -> None:
        self.lifecycle.worker_event(agent_id, header)

    def wake_parked(self, agent_id: str) -> None:
        self.parking.wake_for_message(agent_id)

    def queue_for_parked(self, agent_id: str, delivery: Any) -> Any:
        return self.parking.queue(agent_id, delivery)

    def record_failures(self, notes: list[FailedNote], suppressed: int) -> None:
        """Failed messages the broker noted: one ``message-failed`` event each (and one for those not noted)."""
        for note in notes:
            self.events.emit(
                MESSAGE_FAILED, note.agent_id, class_name=note.class_name, message_id=note.message_id,
                error=note.error, count=note.count,
            )  # fmt: skip
        if suppressed:
            self.events.emit(
                MESSAGE_FAILED, error=f"{suppressed} more messages failed (not recorded one by one)",
                count=suppressed, suppressed=True,
            )  # fmt: skip


def assemble(base: Foundation, facade: Any, runtime_dir: str) -> RunningParts:
    """Build one run's parts, nothing started yet; ``facade`` is the Host the surfaces call."""
    config, here, events, client = base.config, base.here, base.events, base.client
    call_timeout = client.timeout
    broker = Broker(
        zmq.Context.instance(),
        None,
        node_name=here.name,
        front_endpoint=None if base.connect_to else f"tcp://{base.binding.bind_host}:{config.port}",
        back_endpoint=f"ipc://{runtime_dir}/back",
        relay_endpoint=base.connect_to,
        relay_secret=registration_secret(config.data_dir) if base.connect_to else None,
        api_key=config.api_key,
        heartbeat_interval=config.heartbeat_interval,
        max_message_size=config.max_message_size,
        mailbox_limit=config.mailbox_limit,
        forward_ttl=config.forward_ttl,
        max_slow_ops=config.max_slow_ops,
        curve_server=base.curve_server,
        curve_client=base.curve,
    )
    commands = BrokerCommands(broker)

    def forked(agent_id: str, pid: int) -> None:
        base.processes.forked(agent_id, pid)
        commands.worker_forked(agent_id, pid)

    def exited(pid: int, code: int) -> None:
        base.processes.exited(pid)
        commands.worker_exited(pid, code)

    templates = TemplateProcess(
        list(config.preload), forked, exited, pool_size=config.worker_pool, learn=config.learn_preload
    )
    inspection = Inspection(commands, base.parked, here, call_timeout)
    checkpoints = Checkpointer(inspection, here, events, config.checkpoint_interval)
    lifecycle = Lifecycle(
        commands, templates, base.processes, events, here, config,
        files=base.files, checkpoints=checkpoints, curve=base.curve, call_timeout=call_timeout,
    )  # fmt: skip
    parking = Parking(
        commands, lifecycle, inspection, base.parked, events, here,
        files=base.files, checkpoints=checkpoints, client=client, start_timeout=config.start_timeout,
    )  # fmt: skip
    movement = Movement(
        commands, lifecycle, inspection, events, here,
        files=base.files, checkpoints=checkpoints, client=client, mesh=base.mesh,
    )  # fmt: skip
    arrivals = Arrivals(
        commands, lifecycle, parking, events, here,
        files=base.files, artifacts=base.artifacts, start_timeout=config.start_timeout,
        max_ttl=config.max_transfer_timeout + PREPARE_TTL_SLACK, max_message_size=config.max_message_size,
    )  # fmt: skip
    messaging = Messaging(commands, inspection, here, call_timeout)
    services = ServiceDirectory(
        base.services, commands, here, MeshQuery(base.mesh, client, here.name, max_records=base.services.max_records)
    )
    front = FrontRequests(
        facade, commands, movement, arrivals, base.artifacts, base.mesh,
        ready=base.ready, start_timeout=config.start_timeout, call_timeout=call_timeout,
        max_transfer_timeout=config.max_transfer_timeout, services=services,
    )  # fmt: skip
    host_calls = HostCalls(facade, movement, parking, base.mesh, services)
    idle = IdleParker(commands, parking, events, here.name, default=config.idle_park)
    residents = ResidentServices(
        base.resident_specs, base.services, base.leases, lifecycle, parking, idle, events, here
    )
    parts = RunningParts(
        broker=broker, commands=commands, templates=templates, inspection=inspection, checkpoints=checkpoints,
        lifecycle=lifecycle, parking=parking, movement=movement, arrivals=arrivals, messaging=messaging,
        front=front, host_calls=host_calls, services=services, events=events, idle=idle, residents=residents,
    )  # fmt: skip
    parts.artifacts = ArtifactExchange(base.artifacts, client, here, max_message_size=config.max_message_size)
    parts.spool = SpoolSweeper(base.artifacts, config.artifact_spool_ttl_seconds, here.name)
    broker.attach(parts)
    return parts


def start_parts(base: Foundation, parts: RunningParts, facade: Any) -> None:
    """Start the template process, the broker loop and the HTTP shim; learn the real addresses."""
    here, config = base.here, base.config
    parts.templates.start()
    parts.broker.start()
    port = config.port
    if parts.broker.front_address:
        port = int(parts.broker.front_address.rsplit(":", 1)[1])
    here.address = base.public_url or advertised_address(base.binding, port)
    if base.http_enabled:
        from paglets.node.http.shim import HttpShim

        bind_host, advertised = http_binding(base)
        public_host = url_host(base.public_url) if base.public_url else None
        parts.http = HttpShim(
            facade, bind_host, config.http_port,
            max_body=config.http_max_body, advertised_host=advertised, public_host=public_host,
        )  # fmt: skip
        parts.http.start()
        here.http_address = parts.http.address


def http_binding(base: Foundation) -> tuple[str, str | None]:
    """Where the HTTP shim listens and the host it advertises: the node's, or loopback only.

    A node with CurveZMQ and no API key serves HTTP on loopback only: plain
    HTTP must not let anyone on the network around the encryption and the
    client keys its ZeroMQ side requires.
    """
    binding, config = base.binding, base.config
    if base.curve_server is None or config.api_key or is_loopback(binding.bind_host):
        return binding.bind_host, binding.advertised_host
    loopback = "::1" if ":" in binding.bind_host else LOOPBACK
    log.warning(
        "node %s: HTTP shim on %s only: CurveZMQ without an API key must not be bypassed over plain HTTP "
        "(give the node an API key to serve HTTP on %s)",
        config.name, loopback, binding.bind_host,
    )  # fmt: skip
    return loopback, None


def peer_event(events: ContextEventLog, ref: HostRef, online: bool) -> None:
    """Record that another node of the mesh came online (``peer-online``) or fell silent (``peer-offline``)."""
    if online:
        events.emit("peer-online", peer=ref.name, url=ref.url, code_version=ref.code_version)
    else:
        events.emit("peer-offline", peer=ref.name, url=ref.url)


def bring_online(base: Foundation, parts: RunningParts) -> None:
    """Once the sockets serve: restore checkpoints, load parked paglets, then join the mesh."""
    for agent_id in parts.checkpoints.restore_into(base.parked.root):
        base.events.emit("restore", agent_id=agent_id, source="checkpoint")
    parts.parking.start()
    parts.checkpoints.start()
    base.services.start()
    if parts.spool is not None:
        parts.spool.start()
    base.events.add_listener(parts.residents.on_node_event)
    parts.residents.start()  # after parked paglets are loaded: a resident parked here already keeps its state
    parts.idle.start()
    parts.commands.connect_relay()
    base.mesh.start()
    base.ready.set()
    parts.residents.wake_eager()  # after ready: requests for other paglets need not wait for these starts


def stop_parts(base: Foundation, parts: RunningParts, stop_workers: Any) -> None:
    """Stop the HTTP shim, every worker (``stop_workers``), the broker and the template process."""
    if parts.http is not None:
        parts.http.stop()
        parts.http = None
        base.here.http_address = None
    if parts.broker.running:
        stop_workers()
    parts.broker.stop()
    parts.templates.stop()  # it SIGKILLs any worker still there
    base.processes.forget_all()
    base.services.clear("node-stopped")  # no paglet of this run is left to offer anything


def stop_online(base: Foundation, parts: RunningParts) -> None:
    """The reverse of :func:`bring_online`."""
    base.ready.clear()
    if parts.spool is not None:
        parts.spool.stop()
    base.mesh.stop()
    parts.idle.stop()
    parts.residents.stop()
    base.events.remove_listener(parts.residents.on_node_event)
    base.leases.clear()
    base.services.stop()
    parts.checkpoints.stop(keep=False)
    parts.parking.stop()


__all__ = [
    "Foundation",
    "RunningParts",
    "assemble",
    "bring_online",
    "http_binding",
    "start_parts",
    "stop_online",
    "stop_parts",
]

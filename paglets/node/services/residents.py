"""The node's resident services: paglets it runs itself, one per declaration, under stable agent ids.

Declared by ``Host(resident_services=[...])`` (checked into
:class:`~paglets.services.resident.ResidentServiceSpec` objects by
:mod:`paglets.services.resident_config`). At node start each one that is
not parked here already is *created parked* (nothing runs; its first start
runs ``on_creation`` with the declared state) and its record is advertised
*pinned*: it survives parking and crashes, so the service is discoverable
before it runs and while it is parked. Then:

* ``eager``: woken at once; after a crash it is created again and woken
  after a backoff (0.5 s doubling to 30 s), at most ``MAX_RESTARTS`` times in
  a row (a run of ``HEALTHY_AFTER`` seconds resets the count). Events
  ``service-restarting`` (attempt, delay) and ``service-restart-abandoned``.
* ``lazy``: its first message (or lease) wakes it; after a crash it is
  created parked again, so the next call starts a fresh one.
* Idle: the idle parker (:mod:`paglets.node.flows.idling`) uses the spec's
  ``idle_timeout``; a live lease (:mod:`paglets.node.services.leases`)
  keeps it up.

Owns the specs by agent id, the restart counts and one restart thread per
pending restart. Any thread; node events arrive through :meth:`on_node_event`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from paglets.core.errors import ForbiddenError, PagletError, ServiceNotFoundError
from paglets.core.events import ContextEvent, ContextEventLog
from paglets.core.runtime_values import ResidentLifecycle
from paglets.node.flows.idling import IdleParker
from paglets.node.flows.lifecycle import Lifecycle
from paglets.node.flows.parking import Parking
from paglets.node.identity import NodeIdentity
from paglets.node.services.leases import LeaseTable
from paglets.node.services.registry import ServiceRegistry
from paglets.services.contracts import ServiceContract
from paglets.services.records import ServiceRecord
from paglets.services.resident import ResidentServiceSpec, check_lease_ttl
from paglets.services.resident_config import resident_specs
from paglets.wire import codec
from paglets.wire.codec.names import allow_hint

log = logging.getLogger("paglets.services")
MAX_RESTARTS = 5
FIRST_BACKOFF = 0.5  # seconds; doubled per attempt
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0  # seconds up that reset the restart count


# node event kinds that take a resident away -> why its leases end
_GONE = {"dispose": "disposed", "dispatch": "dispatched", "retract": "retracted"}


class ResidentServices:
    """Runs the resident services of one node."""

    def __init__(
        self,
        specs: list[ResidentServiceSpec],
        registry: ServiceRegistry,
        leases: LeaseTable,
        lifecycle: Lifecycle,
        parking: Parking,
        idle: IdleParker,
        events: ContextEventLog,
        here: NodeIdentity,
    ):
        self._specs = {spec.resolved_agent_id: spec for spec in specs}
        self._registry = registry
        self.leases = leases
        self._lifecycle = lifecycle
        self._parking = parking
        self._idle = idle
        self._events = events
        self._here = here
        self._lock = threading.Lock()
        self._restarts: dict[str, tuple[int, float]] = {}  # agent id -> (attempts in a row, when it last started)
        self._stopped = threading.Event()
        idle.add_keeper(leases.held)

    def spec(self, agent_id: str) -> ResidentServiceSpec | None:
        return self._specs.get(agent_id)

    def specs(self) -> list[ResidentServiceSpec]:
        return list(self._specs.values())

    # -- node start and stop --------------------------------------------------------------
    def start(self) -> None:
        """Create (parked) what is not here yet and advertise every service (then :meth:`wake_eager`)."""
        self._stopped.clear()
        for agent_id, spec in self._specs.items():
            self._idle.set_timeout(agent_id, spec.idle_timeout)
            try:
                if agent_id not in self._parking.parked:
                    self._create_parked(agent_id, spec)
                self._advertise(agent_id, spec)
            except (PagletError, ValueError) as exc:
                log.error("node %s: resident service %s could not be set up: %s", self._here.name, agent_id, exc)
                self._events.emit("service-setup-failed", agent_id=agent_id, reason=str(exc))

    def wake_eager(self) -> None:
        """Start the eager services, one after another (the node serves already: see assembly.bring_online)."""
        for agent_id, spec in self._specs.items():
            if spec.lifecycle is ResidentLifecycle.EAGER and not self._stopped.is_set():
                self._start_eager(agent_id)

    def stop(self) -> None:
        self._stopped.set()

    def _create_parked(self, agent_id: str, spec: ResidentServiceSpec) -> None:
        state = spec.state
        plain = isinstance(state, dict)
        data = codec.encode(state, root="state") if state or not plain else b""
        self._parking.create_parked(agent_id, str(spec.paglet_class), data, plain=plain, reason="resident service")

    def _advertise(self, agent_id: str, spec: ResidentServiceSpec) -> ServiceRecord:
        contract = spec.contract
        if isinstance(contract, ServiceContract):
            capabilities, metadata = tuple(contract.capabilities()), contract.metadata()
        else:
            capabilities, metadata = (), {}
        record = ServiceRecord(
            name=spec.service_name, agent_id=agent_id, host_name=self._here.name, host_url=self._here.address,
            capabilities=capabilities, metadata={**metadata, "resident": spec.lifecycle.value}, scope=spec.scope,
        )  # fmt: skip
        return self._registry.put(record, pinned=True)

    def _start_eager(self, agent_id: str) -> None:
        try:
            self._parking.activate(agent_id, "eager")
            with self._lock:
                attempts, _ = self._restarts.get(agent_id, (0, 0.0))
                self._restarts[agent_id] = (attempts, time.monotonic())
        except PagletError as exc:
            log.warning("node %s: eager service %s did not start: %s", self._here.name, agent_id, exc)
            self._schedule_restart(agent_id, f"start failed: {exc}")

    # -- leases -----------------------------------------------------------------------------
    def acquire(self, agent_id: str, service_name: str, ttl: Any) -> dict[str, Any]:
        """Lease a resident service of this node (starting it if it is parked); the grant as a map."""
        ttl = check_lease_ttl(ttl)  # ValueError first: what came in is checked before anything is looked up
        spec = self._specs.get(agent_id)
        if spec is None or spec.service_name != service_name:
            raise ServiceNotFoundError(
                f"paglet {agent_id!r} on node {self._here.name} is not a resident service offering "
                f"{service_name!r}: only resident services can be leased"
            )
        lease = self.leases.grant(agent_id, service_name, ttl)
        if agent_id in self._parking.parked:
            try:
                self._parking.activate(agent_id, "lease")
            except BaseException:
                self.leases.release(lease.lease_id)
                raise
        return lease.to_wire()

    def release(self, lease_id: Any) -> dict[str, Any]:
        lease = self.leases.release(lease_id)
        return {"lease_id": lease_id, "released": lease is not None}

    # -- crashes and endings -------------------------------------------------------------------
    def on_node_event(self, event: ContextEvent) -> None:
        """Listener on the node's event log (never blocks: restarts run on their own thread)."""
        agent_id = event.agent_id
        if agent_id is None or agent_id not in self._specs:
            return
        if event.kind == "crash":
            self._schedule_restart(agent_id, event.error or str(event.details.get("reason", "crashed")))
        elif event.kind in _GONE:
            self._idle.set_timeout(agent_id, None)
            self.leases.drop_agent(agent_id, _GONE[event.kind])

    def _schedule_restart(self, agent_id: str, reason: str) -> None:
        spec = self._specs[agent_id]
        eager = spec.lifecycle is ResidentLifecycle.EAGER
        with self._lock:
            attempts, started = self._restarts.get(agent_id, (0, 0.0))
            if started and time.monotonic() - started >= HEALTHY_AFTER:
                attempts = 0
            attempts += 1
            self._restarts[agent_id] = (attempts, 0.0)
        if eager and attempts > MAX_RESTARTS:
            self._events.emit("service-restart-abandoned", agent_id=agent_id, attempts=attempts - 1, reason=reason)
            return
        delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (attempts - 1)) if eager else 0.0
        self._events.emit("service-restarting", agent_id=agent_id, attempt=attempts, delay=delay, reason=reason)
        threading.Thread(
            target=self._restart, args=(agent_id, spec, delay), name=f"paglets-restart-{agent_id[:32]}", daemon=True
        ).start()

    def _restart(self, agent_id: str, spec: ResidentServiceSpec, delay: float) -> None:
        if self._stopped.wait(delay):
            return
        try:
            self._lifecycle.remove_worker(agent_id)  # the crashed slot
        except PagletError:
            pass  # gone already
        try:
            if agent_id not in self._parking.parked:
                self._create_parked(agent_id, spec)
            self._advertise(agent_id, spec)
        except (PagletError, ValueError) as exc:
            log.error("node %s: resident service %s could not be created again: %s", self._here.name, agent_id, exc)
            return
        if spec.lifecycle is ResidentLifecycle.EAGER and not self._stopped.is_set():  # the node may be stopping
            self._start_eager(agent_id)


def load_resident_class(path: str) -> Any:
    """Import a resident service's class ``"module:Class"`` — only if the node's module policy allows its module.

    ForbiddenError if it does not (nothing is imported); ValueError if it cannot be imported.
    """
    module = path.split(":", 1)[0]
    if not codec.POLICY.allows(module):
        hint = allow_hint(module)
        raise ForbiddenError(f"resident service class {path!r}: module {module!r} is not allowed; {hint}")
    try:
        cls = codec.import_by_name(path)
    except PagletError as exc:
        raise ValueError(f"cannot import resident service class {path!r}: {exc}") from None
    if isinstance(cls, type):
        codec.trust_class(cls)  # the node runs it: its workers may import it too
    return cls


def resolve_resident_services(items: Any) -> list[ResidentServiceSpec]:
    """What ``Host(resident_services=[...])`` declares, checked and resolved (see resident_config)."""
    if not items:
        return []
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"resident_services must be a list, got {type(items).__name__}")
    return resident_specs(items, load_resident_class)


__all__ = ["ResidentServices", "load_resident_class", "resolve_resident_services"]

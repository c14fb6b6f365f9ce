"""Paglets for the resident-service and idle-parking tests (importable: workers import classes by name)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.contracts import EmptyPayload, ServiceContract, ServiceOperation
from paglets.services.resident import ResidentServiceSpec


@dataclass
class Tally:
    count: int
    region: str
    pid: int
    woken: int


@dataclass
class Add:
    amount: int = 1


COUNT = ServiceOperation("count", Add, Tally)
READ = ServiceOperation("read", EmptyPayload, Tally)
COUNTER = ServiceContract("counter", operations=(COUNT, READ))


@dataclass
class CounterState(PagletState):
    count: int = 0
    region: str = "nowhere"
    created: int = 0  # on_creation runs
    woken: int = 0  # on_activation runs


class CounterService(Paglet[CounterState]):
    """A lazy resident service: counts; its state survives idle parking."""

    State = CounterState
    RESIDENT_SERVICE = ResidentServiceSpec(COUNTER, scope=ServiceScope.MESH, idle_timeout=0.5, state={"region": "eu"})

    def on_creation(self, event: Any) -> None:
        self.state.created += 1

    def on_activation(self, event: Any) -> None:
        self.state.woken += 1

    def tally(self) -> Tally:
        return Tally(self.state.count, self.state.region, os.getpid(), self.state.woken)

    def handle_message(self, message: Message) -> Any:
        if message.kind == "crash":
            raise SystemExit("crashing on purpose")
        if message.kind == "created":
            return self.state.created
        return COUNTER.route(message, {COUNT: self._count, READ: lambda request: self.tally()})

    def _count(self, request: Add) -> Tally:
        with self.locked():
            self.state.count += request.amount
        return self.tally()


class EagerCounter(CounterService):
    """The same service, started with the node and never idle-parked."""

    RESIDENT_SERVICE = ResidentServiceSpec(
        COUNTER, lifecycle=ResidentLifecycle.EAGER, idle_timeout=0, agent_id="service.eager-counter"
    )


class NotResident(Paglet[PagletState]):
    """A paglet class that declares no RESIDENT_SERVICE."""


@dataclass
class NapState(PagletState):
    hits: int = 0
    pids: list[int] = field(default_factory=list)


class Napper(Paglet[NapState]):
    """Parks itself after 0.3 s without a message; remembers every process it ran in."""

    State = NapState
    IDLE_TIMEOUT = 0.3

    def handle_message(self, message: Message) -> Any:
        with self.locked():
            self.state.hits += 1
            if os.getpid() not in self.state.pids:
                self.state.pids.append(os.getpid())
            return {"hits": self.state.hits, "pids": list(self.state.pids)}


class Insomniac(Napper):
    """Never idle-parked, whatever the node's default."""

    IDLE_TIMEOUT = 0


class PlainNapper(Paglet[NapState]):
    """No IDLE_TIMEOUT of its own: the node's idle_park decides."""

    State = NapState

    def handle_message(self, message: Message) -> Any:
        with self.locked():
            self.state.hits += 1
            return self.state.hits


@dataclass
class LesseeState(PagletState):
    lease_ids: list[str] = field(default_factory=list)


class Lessee(Paglet[LesseeState]):
    """Leases the counter service from inside a worker (LOCAL or MESH), calls it, gives leases back."""

    State = LesseeState

    def on_creation(self, event: Any) -> None:
        self._leases: dict[str, Any] = {}

    def on_activation(self, event: Any) -> None:
        self._leases = {}

    def handle_message(self, message: Message) -> Any:
        args = message.args
        if message.kind == "lease":
            scope = ServiceScope(args.get("scope", "local"))
            lease = self.lease_contract(COUNTER, scope=scope, ttl=args.get("ttl", 60))
            self._leases[lease.lease_id] = lease
            tally = lease.handle.call(COUNT, Add(1))
            return {"lease_id": lease.lease_id, "agent_id": lease.handle.record.agent_id, "count": tally.count}
        if message.kind == "release":
            self._leases.pop(args["lease_id"]).release()
            return "released"
        if message.kind == "lease-error":
            try:
                self.lease_contract(COUNTER, scope=ServiceScope(args.get("scope", "local")))
            except Exception as exc:  # the test reads the type's name
                return type(exc).__name__
            return "leased"
        raise LookupError(message.kind)

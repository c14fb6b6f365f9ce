"""Paglets and payloads for the services tests (importable: workers import paglet classes by name)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from paglets.client.references import PagletProxyRef
from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import PagletError
from paglets.core.messages import Message
from paglets.examples.quotes import QUOTE, QUOTES, Quote, QuoteRequest, QuoteService
from paglets.services.contracts import EmptyPayload, ServiceContract, ServiceOperation


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Leg:
    venue: str
    colour: Colour
    weights: tuple[float, ...] = ()


@dataclass
class Rich:
    """Every kind of field a contract payload may hold."""

    title: str
    raw: bytes
    buffer: bytearray
    colour: Colour
    legs: list[Leg] = field(default_factory=list)
    by_name: dict[str, Leg] = field(default_factory=dict)
    maybe: Leg | None = None
    count: int = 0
    ratio: float = 0.0
    tags: frozenset[str] = frozenset()


ECHO = ServiceOperation("echo", Rich, Rich)
PING = ServiceOperation("ping")  # EmptyPayload both ways
RICH = ServiceContract("rich", operations=(ECHO, PING), version="2")


class RichService(Paglet[PagletState]):
    """Echoes a Rich request as its reply; answers PING with nothing."""

    def on_creation(self, event: Any) -> None:
        self.advertise_contract(RICH)

    def handle_message(self, message: Message) -> Any:
        return RICH.route(message, {ECHO: lambda request: request, PING: lambda request: None})


class WrongReplyQuoteService(QuoteService):
    """A provider whose handler returns a plain dict instead of a Quote."""

    def quote(self, request: QuoteRequest) -> Any:
        return {"symbol": request.symbol, "price": 1.0}


@dataclass
class UserState(PagletState):
    kept: PagletProxyRef | None = None
    places: list[str] = field(default_factory=list)


class ServiceUser(Paglet[UserState]):
    """Drives the service API from inside a worker, one message per call; errors come back as values."""

    State = UserState

    def handle_message(self, message: Message) -> Any:
        args = message.args
        try:
            return self._handle(message.kind, args)
        except (PagletError, ValueError) as exc:
            return {"error": type(exc).__name__, "message": str(exc)}

    def _handle(self, kind: str, args: dict[str, Any]) -> Any:
        if kind == "advertise":
            return self.advertise_service(args.pop("name"), **args).to_wire()
        if kind == "advertise-for":  # through the context, naming another paglet
            return self.context.advertise_service(args["name"], agent_id=args["agent_id"]).to_wire()
        if kind == "raw-advertise":  # straight to the node, skipping the worker's checks
            return self.context.host_call("advertise", **args)
        if kind == "raw-lease":
            return self.context.host_call("lease", **args)
        if kind == "advertise-many":
            names = []
            for number in range(args["count"]):
                self.advertise_service(f"{args['prefix']}-{number}")
                names.append(number)
            return names
        if kind == "unadvertise":
            return self.unadvertise_service(args["name"])
        if kind == "lookup":
            return [record.to_wire() for record in self.lookup_services(args.get("name"), **_lookup_args(args))]
        if kind == "lookup-one":
            return self.lookup_service(args["name"], **_lookup_args(args))
        if kind == "quote":  # a typed call to a provider found by contract
            handle = self.require_contract(QUOTES, operation=QUOTE, **_scope(args))
            return handle.call(QUOTE, QuoteRequest(args["symbol"], args.get("quantity", 1)))
        if kind == "quote-wrong-request":
            handle = self.require_contract(QUOTES, **_scope(args))
            return handle.call(QUOTE, Quote("ACME", 1, 1.0, "nowhere"))
        if kind == "keep":  # keep a reference to the provider of a service in state
            with self.locked():
                self.state.kept = self.lookup_service(args["name"], **_lookup_args(args))
            return self.state.kept
        if kind == "call-kept":
            with self.locked():
                kept = self.state.kept
            return kept.resolve(self.context).send(Message(args["kind"], args.get("args") or {}))
        if kind == "where":
            return self.context.name
        if kind == "go":
            return self.dispatch(args["to"]).host_url
        if kind == "park":
            self.deactivate()
            return "parking"
        if kind == "crash":
            raise SystemExit("crashing on purpose")
        if kind == "hello":
            return f"hello from {self.context.name}"
        raise LookupError(f"unknown kind {kind}")


def _lookup_args(args: dict[str, Any]) -> dict[str, Any]:
    return {key: args[key] for key in ("capability", "scope") if key in args}


def _scope(args: dict[str, Any]) -> dict[str, Any]:
    return {"scope": args["scope"]} if "scope" in args else {}


__all__ = ["ECHO", "PING", "RICH", "Colour", "EmptyPayload", "Leg", "Rich", "RichService", "ServiceUser"]

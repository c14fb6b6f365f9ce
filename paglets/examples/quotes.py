"""Services, worked through: quote services on exchange nodes and a tourist that collects quotes.

Each exchange node runs a :class:`QuoteService` that advertises the
:data:`QUOTES` contract mesh-wide. A :class:`QuoteTourist` is given a list
of nodes and a symbol; at each stop it looks up the quote service that lives
*there* (a LOCAL lookup: the resident of the node it is visiting), asks it
for a quote with a typed call, keeps the quote and a reference to the
provider in its state, and moves on. ``docs/services.md`` walks through it.

Run it on one machine::

    for n in 1 2 3; do paglets-node --name ex$n --port 770$n --peer tcp://127.0.0.1:7701 & done
    python -m paglets.examples.quotes tcp://127.0.0.1:7701 tcp://127.0.0.1:7702 tcp://127.0.0.1:7703
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from paglets.client.references import PagletProxyRef
from paglets.core.agent import Paglet, PagletState
from paglets.core.itinerary import ItineraryAgentMixin, ItineraryPlan
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.services.contracts import ServiceContract, ServiceOperation


@dataclass
class QuoteRequest:
    symbol: str
    quantity: int = 1


@dataclass
class Quote:
    symbol: str
    quantity: int
    price: float
    venue: str


QUOTE = ServiceOperation("quote", QuoteRequest, Quote)
QUOTES = ServiceContract("quotes", operations=(QUOTE,), version="1")


@dataclass
class QuoteServiceState(PagletState):
    venue: str = ""
    prices: dict[str, float] = field(default_factory=dict)


class QuoteService(Paglet[QuoteServiceState]):
    """Quotes the prices of one venue; advertises QUOTES to the whole mesh while it runs here."""

    State = QuoteServiceState

    def on_creation(self, event: Any) -> None:
        self.advertise_contract(QUOTES, scope=ServiceScope.MESH, metadata={"venue": self.state.venue})

    def on_arrival(self, event: Any) -> None:  # a record belongs to its node: advertise again where we land
        self.on_creation(event)

    def on_activation(self, event: Any) -> None:  # parked and woken: records do not outlive a parking
        self.on_creation(event)

    def handle_message(self, message: Message) -> Any:
        return QUOTES.route(message, {QUOTE: self.quote})

    def quote(self, request: QuoteRequest) -> Quote:
        price = self.state.prices.get(request.symbol)
        if price is None:
            raise LookupError(f"{self.state.venue} does not quote {request.symbol}")
        return Quote(request.symbol, request.quantity, round(price * request.quantity, 4), self.state.venue)


@dataclass
class TourState(PagletState):
    symbol: str = ""
    itinerary: ItineraryPlan = field(default_factory=ItineraryPlan)
    touring: bool = False
    quotes: list[Quote] = field(default_factory=list)
    providers: list[PagletProxyRef] = field(default_factory=list)  # who quoted: plain data, travels along
    no_service: list[str] = field(default_factory=list)  # stops where nobody quoted


class QuoteTourist(ItineraryAgentMixin, Paglet[TourState]):
    """Visits nodes, asks the quote service living on each, and keeps what it was told."""

    State = TourState

    def handle_message(self, message: Message) -> Any:
        if message.kind == "tour":
            with self.locked():
                self.state.symbol = message.args["symbol"]
                for stop in message.args["stops"]:
                    self.state.itinerary.add_destination(stop)
                self.state.touring = True
            self.go_to_next_destination()
            return "touring"
        if message.kind == "quotes":
            with self.locked():
                return list(self.state.quotes)
        if message.kind == "requote":  # ask every provider met on the way again, from wherever we are now
            with self.locked():
                providers, symbol = list(self.state.providers), self.state.symbol
            return [self._ask(ref.resolve(self.context), symbol) for ref in providers]
        return self.not_handled()

    def run(self) -> None:
        if not self.state.touring:
            return
        handle = self.lookup_contract(QUOTES, operation=QUOTE)  # LOCAL: the service that lives on this node
        quote = None if handle is None else handle.call(QUOTE, QuoteRequest(self.state.symbol))
        with self.locked():
            if handle is None:
                self.state.no_service.append(self.context.name)
            else:
                self.state.quotes.append(quote)
                self.state.providers.append(handle.ref)
        if self.go_to_next_destination() is None:
            with self.locked():
                self.state.touring = False

    @staticmethod
    def _ask(proxy: Any, symbol: str) -> Quote:
        return QUOTE.decode_reply(proxy.send(QUOTE.to_message(QuoteRequest(symbol))))


def main(addresses: list[str]) -> None:
    """Start a quote service on each node, send a tourist around them, print what it collected."""
    from paglets.client.host_client import HostClient

    client = HostClient()
    for number, address in enumerate(addresses):
        state = QuoteServiceState(venue=f"venue-{number}", prices={"ACME": 10.0 + number})
        client.create(address, QuoteService, state)
    tourist = client.create(addresses[0], QuoteTourist)
    tourist.send(Message("tour", {"symbol": "ACME", "stops": addresses}))
    print("touring; ask it later with: paglets send ADDR", tourist.agent_id, "quotes")


if __name__ == "__main__":
    main(sys.argv[1:])

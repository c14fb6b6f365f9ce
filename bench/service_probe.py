"""Paglets for ``bench/services.py`` (a module of their own: workers import paglet classes by name)."""

from __future__ import annotations

import time
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.examples.quotes import QuoteService


class PlainQuoteService(QuoteService):
    """The quote service, also answering ``plain-quote``: the same work with a hand-written, untyped handler."""

    def handle_message(self, message: Message) -> Any:
        if message.kind == "plain-quote":
            args = message.args
            symbol, quantity = args["symbol"], args["quantity"]
            price = self.state.prices[symbol]
            venue = self.state.venue
            return {"symbol": symbol, "quantity": quantity, "price": round(price * quantity, 4), "venue": venue}
        return super().handle_message(message)


class LookupProbe(Paglet[PagletState]):
    """Times its own service lookups (host calls to its node), in seconds each."""

    def handle_message(self, message: Message) -> Any:
        if message.kind != "time-lookups":
            return self.not_handled()
        name, scope, count = message.args["name"], message.args["scope"], message.args["count"]
        times = []
        found = 0
        for _ in range(count):
            started = time.perf_counter()
            found = len(self.lookup_services(name, scope=scope))
            times.append(time.perf_counter() - started)
        return {"times": times, "found": found}

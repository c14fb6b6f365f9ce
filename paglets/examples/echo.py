"""A paglet that ships with paglets, so the README flow needs no user code.

``EchoPaglet`` answers:

* ``echo`` — returns its argument (``arg``, or the ``args`` dict when no arg);
* ``count`` — returns how many messages it has handled;
* ``add`` — adds ``arg`` (default 1) to a counter in its state and returns it;
* ``history`` — returns the last messages' kinds;
* ``sleep`` — sleeps ``arg`` seconds (at most 60), then returns ``arg``;
* ``fail`` — raises ``ValueError(arg)``;
* anything else — refused, so the sender gets ``NotHandledError``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CreationEvent
from paglets.core.messages import Message

HISTORY_LIMIT = 20


@dataclass
class EchoState(PagletState):
    greeting: str = "hello"
    handled: int = 0
    total: int = 0
    history: list[str] = field(default_factory=list)
    created_with: Any = None


class EchoPaglet(Paglet[EchoState]):
    State = EchoState

    def on_creation(self, event: CreationEvent) -> None:
        self.state.created_with = event.init

    def handle_message(self, message: Message) -> Any:
        with self.locked():
            self.state.handled += 1
            self.state.history = ([*self.state.history, message.kind])[-HISTORY_LIMIT:]
        kind = message.kind
        if kind == "echo":
            return message.arg if message.arg is not None else message.args
        if kind == "count":
            return self.state.handled
        if kind == "add":
            with self.locked():
                self.state.total += 1 if message.arg is None else int(message.arg)
                return self.state.total
        if kind == "history":
            return list(self.state.history)
        if kind == "sleep":
            seconds = min(float(message.get_arg() or 0), 60.0)
            time.sleep(seconds)
            return seconds
        if kind == "fail":
            raise ValueError(str(message.get_arg() or "asked to fail"))
        return self.not_handled()

"""Paglets for the hostile-input tests: code that raises what it should not, and big states.

They live in an importable module because workers import paglet classes by
qualified name (the test nodes allow the ``tests`` package).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import PagletError
from paglets.core.events import CreationEvent, MobilityEvent
from paglets.core.messages import Message


class Doom(BaseException):
    """A BaseException of the paglet's own, neither SystemExit nor KeyboardInterrupt."""


RAISABLE: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "Doom": Doom,
    "ValueError": ValueError,
}


def raise_named(name: str) -> None:
    raise RAISABLE[name](f"{name} from the paglet")


@dataclass
class FragileState(PagletState):
    """``raise_in``: a hook (or ``run``) that raises ``raise_what``; ``open``: the gate ``hold`` and run() wait for."""

    raise_in: str = ""
    raise_what: str = "SystemExit"
    open: bool = False
    running: int = 0
    blob: bytes = b""
    handled: list[str] = field(default_factory=list)


class FragilePaglet(Paglet[FragileState]):
    """Raises on demand: a message ``raise`` (arg: the exception's name), or in the hook its state names.

    ``hold`` waits (at most 30 s) until an unqueued ``open``; ``until-running``
    (unqueued, arg N) answers once N handlers hold; ``grow`` (arg: bytes)
    makes the state that big; ``hcall`` (args ``op`` and ``fields``) makes
    a raw host call and answers its result, or its error's type and message.
    """

    State = FragileState
    MAILBOX_WORKERS = 4

    def on_creation(self, event: CreationEvent) -> None:
        if isinstance(event.init, dict):
            self.state.raise_in = str(event.init.get("raise_in", ""))
            self.state.raise_what = str(event.init.get("raise_what", "SystemExit"))
        self._maybe_raise("on_creation")

    def on_dispatching(self, event: MobilityEvent) -> None:
        self._maybe_raise("on_dispatching")

    def run(self) -> None:
        if self.state.raise_in == "run":  # raises once the gate opens: after create has returned
            self.wait_state(lambda s: s.open, timeout=30)
            raise_named(self.state.raise_what)

    def _maybe_raise(self, where: str) -> None:
        if self.state.raise_in == where:
            raise_named(self.state.raise_what)

    def handle_message(self, message: Message) -> Any:
        kind = message.kind
        if kind == "echo":
            return message.arg
        if kind == "raise":
            raise_named(message.arg)
        if kind == "arm":  # the next time hook ``arg`` runs, it raises ``raise_what``
            with self.locked():
                self.state.raise_in = message.arg
                self.state.raise_what = message.args.get("what", "SystemExit")
            return True
        if kind == "open":
            with self.locked():
                self.state.open = True
            self.notify_all_state_changed()
            return True
        if kind == "until-running":
            return self.wait_state(lambda s: s.running >= message.arg, timeout=30)
        if kind == "hold":
            return self._hold(message.arg)
        if kind == "grow":
            with self.locked():
                self.state.blob = b"x" * int(message.arg)
            return len(self.state.blob)
        if kind == "note":
            with self.locked():
                self.state.handled.append(str(message.arg))
            return len(self.state.handled)
        if kind == "hcall":
            try:
                return self.context.host_call(message.args["op"], **message.args["fields"])
            except PagletError as exc:
                return {"type": type(exc).__name__, "message": str(exc)}
        return self.not_handled()

    def _hold(self, arg: Any) -> Any:
        with self.locked():
            self.state.running += 1
        self.notify_all_state_changed()
        try:
            if not self.wait_state(lambda s: s.open, timeout=30):
                raise TimeoutError("the gate never opened")
            return arg
        finally:
            with self.locked():
                self.state.running -= 1


@dataclass
class ExitOnDecode:
    """A message argument whose decoding runs code that raises (``x``: 1 SystemExit, 2 KeyboardInterrupt)."""

    x: int = 0

    def __post_init__(self) -> None:
        if self.x == 1:
            raise SystemExit("raised while decoding")
        if self.x == 2:
            raise KeyboardInterrupt("raised while decoding")


def exit_on_decode(x: int) -> ExitOnDecode:
    """An instance that encodes with ``x`` set (building one with it would raise here already)."""
    value = ExitOnDecode()
    value.x = x
    return value


__all__ = ["Doom", "ExitOnDecode", "FragilePaglet", "FragileState", "exit_on_decode", "raise_named"]

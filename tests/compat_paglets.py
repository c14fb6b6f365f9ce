"""Paglet classes for the compatibility tests (issue 15): written as code for the HTTP paglets API is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message

OVERLAP_WINDOW = 0.3  # seconds a handler stays inside, watching for another one to come in


@dataclass
class CounterState(PagletState):
    count: int = 0
    seen: list[str] = field(default_factory=list)


class Counter(Paglet[CounterState]):
    State = CounterState

    def handle_message(self, message: Message) -> Any:
        self.state.seen.append(message.kind)
        if message.same_kind("inc"):
            with self.locked():
                self.state.count += message.get_arg("by", 1)
            return self.state.count
        if message.same_kind("get"):
            return self.state.count
        if message.same_kind("leave"):
            return self.dispatch(message.get_arg("to"))
        return self.not_handled()


@dataclass
class NeedsNameState(PagletState):
    name: str  # no default: the runtime (or the test) must give the state


class NeedsName(Paglet[NeedsNameState]):
    State = NeedsNameState

    def handle_message(self, message: Message) -> Any:
        return f"hello {self.state.name}"


class NodeAware(Paglet[CounterState]):
    """Asks its node about itself and the mesh through ``self.context`` and ``self.context.host``."""

    State = CounterState

    def on_creation(self, event: Any) -> None:
        self.resources.register("db", lambda: None)

    def handle_message(self, message: Message) -> Any:
        kind, arg = message.kind, message.get_arg
        if kind == "whoami":
            host = self.context.host
            return {"name": host.name, "address": host.address, "color": host.get_property("color")}
        if kind == "hosts":
            hosts = self.context.available_hosts(online_only=True, include_self=arg("include_self", True))
            return sorted(h.name for h in hosts)
        if kind == "wait_for":
            return self.context.wait_for_host(arg("name"), timeout=arg("timeout"), interval=0.1).url
        if kind == "work_dir":
            before = self.work_dir(create=False).exists()
            return [before, self.work_dir().is_dir(), self.work_dir(create=False).exists()]
        if kind == "wait_mail":
            return self.wait_message(arg("timeout"))
        if kind == "ping":
            return "pong"
        return self.not_handled()


@dataclass
class OverlapState(PagletState):
    inside: int = 0
    most_inside: int = 0
    log: list[str] = field(default_factory=list)


class ConcurrentRecorder(Paglet[OverlapState]):
    """Records each handler's enter and exit; a handler waits a moment for another one to come in."""

    State = OverlapState
    MAILBOX_BATCH = 1  # one message per handler, so that several handlers could take the mail

    def handle_message(self, message: Message) -> Any:
        if message.same_kind("log"):
            with self.locked():
                return {"log": list(self.state.log), "most_inside": self.state.most_inside}
        with self.locked():
            self.state.inside += 1
            self.state.most_inside = max(self.state.most_inside, self.state.inside)
            self.state.log.append(f"enter {message.get_arg('n')}")
            self.notify_all_state_changed()
        self.wait_state(lambda state: state.inside > 1, OVERLAP_WINDOW)
        with self.locked():
            self.state.inside -= 1
            self.state.log.append(f"exit {message.get_arg('n')}")
        return None


class SerialRecorder(ConcurrentRecorder):
    """The same, with strictly one message at a time."""

    MAILBOX_WORKERS = 1


class FailingRun(Paglet[CounterState]):
    """run() raises; the paglet lives on (our default)."""

    State = CounterState

    def run(self) -> None:
        raise ValueError("the route file is missing")

    def handle_message(self, message: Message) -> Any:
        return "still here"


class CrashingRun(FailingRun):
    """run() raises, and the class asks for the paglet to be crashed by it."""

    RUN_FAILURE = "crash"


__all__ = [
    "ConcurrentRecorder",
    "Counter",
    "CounterState",
    "CrashingRun",
    "FailingRun",
    "NeedsName",
    "NeedsNameState",
    "NodeAware",
    "OverlapState",
    "SerialRecorder",
]

"""Paglets used by the tests. They live in an importable module because workers
import paglet classes by qualified name."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import PagletError
from paglets.core.events import CreationEvent
from paglets.core.itinerary import ItineraryAgentMixin, ItineraryPlan
from paglets.core.messages import Message
from paglets.examples.echo import EchoPaglet


@dataclass
class GateState(PagletState):
    open: bool = False
    order: list[str] = field(default_factory=list)
    handled_on: list[str] = field(default_factory=list)  # the node each entry of ``order`` was handled on
    running: int = 0
    max_running: int = 0


class GatedPaglet(Paglet[GateState]):
    """Handlers of kind ``hold`` wait until an unqueued ``open`` message arrives.

    Every handled message's ``arg`` is appended to ``order`` (and the node's
    name to ``handled_on``); ``max_running`` records the most handlers that
    ever ran at once. An unqueued ``until-running`` (arg N) answers True once
    N handlers are running, so a test waits for a blocked handler without
    polling; sent after other messages on the same connection, its reply also
    proves the node has queued them.
    """

    State = GateState
    MAILBOX_WORKERS = 1

    def handle_message(self, message: Message) -> Any:
        if message.kind == "open":
            with self.locked():
                self.state.open = True
            self.notify_all_state_changed()
            return True
        if message.kind == "until-running":
            return self.wait_state(lambda s: s.running >= message.arg, timeout=20)
        with self.locked():
            self.state.running += 1
            self.state.max_running = max(self.state.max_running, self.state.running)
        self.notify_all_state_changed()
        try:
            if message.kind == "hold":
                if not self.wait_state(lambda s: s.open, timeout=20):
                    raise TimeoutError("gate never opened")
            with self.locked():
                self.state.order.append(str(message.arg))
                self.state.handled_on.append(self.context.name)
            return message.arg
        finally:
            with self.locked():
                self.state.running -= 1


class WideGatedPaglet(GatedPaglet):
    MAILBOX_WORKERS = 3


@dataclass
class WorkState(PagletState):
    created_init: Any = None
    ran: bool = False
    children: list[str] = field(default_factory=list)
    replies: list[Any] = field(default_factory=list)


class WorkingPaglet(Paglet[WorkState]):
    """Exercises the context from handlers and run()."""

    State = WorkState

    def on_creation(self, event: CreationEvent) -> None:
        self.state.created_init = event.init

    def run(self) -> None:
        with self.locked():
            self.state.ran = True

    def handle_message(self, message: Message) -> Any:
        kind = message.kind
        if kind == "spawn":
            proxy = self.context.create_paglet("paglets.examples.echo:EchoPaglet", init=message.arg)
            self.state.children.append(proxy.agent_id)
            return proxy.agent_id
        if kind == "ask":
            reply = self.send(message.get_arg("agent"), Message("echo", arg=message.get_arg("value")))
            self.state.replies.append(reply)
            return reply
        if kind == "ask-parked":  # what a paglet's own sync send to a paglet that queues mail gives it
            sent = Message("note", arg=message.get_arg("value"))
            try:
                return {"reply": self.send(message.get_arg("agent"), sent)}
            except PagletError as exc:
                return {"error": type(exc).__name__, "message_id": getattr(exc, "message_id", None),
                        "sent": sent.message_id}  # fmt: skip
        if kind == "ask-remote":
            message_out = Message("echo", arg=message.get_arg("value"))
            return self.send(message.get_arg("agent"), message_out, host_url=message.get_arg("url"))
        if kind == "set-property":
            self.context.set_property(message.get_arg("key"), message.get_arg("value"))
            return True
        if kind == "get-property":
            return self.context.get_property(message.arg)
        if kind == "peers":
            return sorted(p.agent_id for p in self.context.get_proxies())
        if kind == "pid":
            return os.getpid()
        if kind == "exit":
            os._exit(3)
        if kind == "sleep":
            time.sleep(float(message.arg))
            return "slept"
        if kind == "spin-thread":  # a thread that never ends, and is not a daemon
            threading.Thread(target=threading.Event().wait, name="left-running").start()
            return True
        return self.not_handled()


class BrokenStartPaglet(Paglet[PagletState]):
    def on_creation(self, event: CreationEvent) -> None:
        raise RuntimeError("refusing to be born")


class NotAPaglet:
    pass


@dataclass
class TravelState(PagletState):
    count: int = 0
    events: list[dict] = field(default_factory=list)
    touring: bool = False
    itinerary: ItineraryPlan = field(default_factory=ItineraryPlan)
    stops: list[str] = field(default_factory=list)
    file_text: str = ""


class TravellerPaglet(ItineraryAgentMixin, Paglet[TravelState]):
    """Records every lifecycle hook with its event fields; moves on request."""

    State = TravelState

    def _record(self, hook: str, event: Any) -> None:
        with self.locked():
            self.state.events.append({"hook": hook, "node": self.context.name, **event.to_wire()})

    def on_creation(self, event: CreationEvent) -> None:
        self._record("on_creation", event)

    def on_dispatching(self, event: Any) -> None:
        self._record("on_dispatching", event)

    def on_arrival(self, event: Any) -> None:
        self._record("on_arrival", event)

    def on_reverting(self, event: Any) -> None:
        self._record("on_reverting", event)

    def on_cloning(self, event: Any) -> None:
        self._record("on_cloning", event)

    def on_clone(self, event: Any) -> None:
        self._record("on_clone", event)

    def on_cloned(self, event: Any) -> None:
        self._record("on_cloned", event)

    def run(self) -> None:
        if self.state.touring:
            with self.locked():
                self.state.stops.append(self.context.name)
            if self.go_to_next_destination() is None:
                with self.locked():
                    self.state.touring = False

    def handle_message(self, message: Message) -> Any:
        kind = message.kind
        if kind == "count":
            with self.locked():
                self.state.count += 1
                return self.state.count
        if kind == "where":
            return self.context.name
        if kind == "go":
            proxy = self.dispatch(message.arg)
            return {"left": True, "now_at": proxy.host_url}
        if kind == "clone-to":
            return self.clone(message.arg).agent_id
        if kind == "tour":
            with self.locked():
                for stop in message.arg:
                    self.state.itinerary.add_destination(stop)
                self.state.touring = True
            self.go_to_next_destination()
            return "touring"
        if kind == "register":
            return self.register_file(message.get_arg("path"), mode=message.get_arg("mode", "copy")).name
        if kind == "read-file":
            return self.file_path(message.arg).read_text()
        return self.not_handled()


class FussyTravellerPaglet(TravellerPaglet):
    def on_arrival(self, event: Any) -> None:
        raise RuntimeError("will not land here")


@dataclass
class ParkState(PagletState):
    seen: list[Any] = field(default_factory=list)
    hooks: list[dict] = field(default_factory=list)
    preferred: dict | None = None


class ParkingPaglet(Paglet[ParkState]):
    """Records messages and persistency hooks; can park itself and use its class storage."""

    State = ParkState

    def on_deactivating(self, event: Any) -> None:
        self.state.hooks.append(_persistency("on_deactivating", event))

    def on_activation(self, event: Any) -> None:
        self.state.hooks.append(_persistency("on_activation", event))

    def deactivation_policy(self, request: Any) -> Any:
        if self.state.preferred is None:
            return None
        from paglets.persistence.persistency import DeactivationPolicy

        return DeactivationPolicy.from_wire(self.state.preferred)

    def handle_message(self, message: Message) -> Any:
        kind = message.kind
        if kind == "note":
            with self.locked():
                self.state.seen.append(message.arg)
                return len(self.state.seen)
        if kind == "seen":
            return list(self.state.seen)
        if kind == "prefer":
            self.state.preferred = message.arg
            return True
        if kind == "park-me":
            from paglets.persistence.persistency import DeactivationPolicy

            self.deactivate(reason="asked", policy=DeactivationPolicy(activate_on_message=False))
            return "parking"
        if kind == "store":
            self.persistent_storage().write_bytes(message.get_arg("name"), message.get_arg("data"))
            return True
        if kind == "load":
            return self.persistent_storage().read_bytes(message.arg)
        return self.not_handled()


@dataclass
class StuckState(PagletState):
    notes: list[Any] = field(default_factory=list)
    blocked: int = 0  # handlers that went into their endless wait
    stall_hook: bool = False  # on_deactivating never returns


class StuckPaglet(Paglet[StuckState]):
    """A paglet whose handlers can block forever, for stopping nodes.

    One handler at a time. ``note`` appends its arg to ``notes`` and returns
    them; ``block`` counts itself in ``blocked`` and never returns;
    ``block-locked`` does the same while holding the state lock, so nobody can
    read its state any more. An unqueued ``until-blocked`` answers True once a
    handler blocks. ``touch`` writes its arg to ``kept.txt`` in the work dir
    and returns the file's path. After ``stall-hook`` its ``on_deactivating``
    never returns.
    """

    State = StuckState
    MAILBOX_WORKERS = 1

    def __init__(self) -> None:
        super().__init__()
        self._blocking = threading.Event()

    def on_deactivating(self, event: Any) -> None:
        if self.state.stall_hook:
            threading.Event().wait()

    def handle_message(self, message: Message) -> Any:
        kind = message.kind
        if kind == "note":
            with self.locked():
                self.state.notes.append(message.arg)
                return list(self.state.notes)
        if kind == "stall-hook":
            with self.locked():
                self.state.stall_hook = True
            return True
        if kind == "until-blocked":
            return self._blocking.wait(20)
        if kind in ("block", "block-locked"):
            if kind == "block-locked":
                self.locked().acquire()  # never released: this handler never returns
            with self.locked():
                self.state.blocked += 1
            self._blocking.set()
            threading.Event().wait()
        if kind == "touch":
            path = self.work_dir() / "kept.txt"
            path.write_text(str(message.arg))
            return str(path)
        return self.not_handled()


def _persistency(hook: str, event: Any) -> dict:
    return {
        "hook": hook,
        "reason": event.reason,
        "request_reason": getattr(event.request, "reason", None),
        "policy_type": type(event.policy).__name__,
        "activate_on_message": getattr(event.policy, "activate_on_message", None),
        "at": time.time(),
    }


class SerialParkingPaglet(ParkingPaglet):
    """One handler at a time, so the order notes are handled in is the order they were delivered."""

    MAILBOX_WORKERS = 1


class MeshWatcherPaglet(Paglet[PagletState]):
    """Asks its node about the mesh."""

    def handle_message(self, message: Message) -> Any:
        if message.kind == "hosts":
            return [ref.name for ref in self.context.available_hosts()]
        if message.kind == "online":
            return self.context.is_host_online(message.arg)
        if message.kind == "wait":
            ref = self.context.wait_for_host(message.get_arg("name"), timeout=message.get_arg("timeout"))
            return None if ref is None else ref.name
        return self.not_handled()


@dataclass
class BacklogState(PagletState):
    opened: int = 0  # how many unqueued ``open`` messages came
    held: int = 0  # how many ``hold`` handlers have started
    seen: list[list[Any]] = field(default_factory=list)  # [arg, node name] per note, in handling order


class BacklogPaglet(Paglet[BacklogState]):
    """One handler: ``hold`` (arg N, default 1) blocks it until the Nth unqueued ``open``, so mail piles up.

    ``note`` records its arg and the node it ran on; ``seen`` returns those
    records; ``boom`` fails; ``go`` and ``park-me`` make the paglet leave from
    inside its handler (``park-me`` with arg ``"wake"``: to wake on the next
    message). An unqueued ``until-held`` (arg N) answers True once the Nth
    ``hold`` has started: a test waits for it instead of polling.
    """

    State = BacklogState
    MAILBOX_WORKERS = 1

    def handle_message(self, message: Message) -> Any:
        kind = message.kind
        if kind == "open":
            with self.locked():
                self.state.opened += 1
            self.notify_all_state_changed()
            return True
        if kind == "until-held":
            return self.wait_state(lambda s: s.held >= message.arg, timeout=20)
        if kind == "hold":
            needed = message.arg or 1
            with self.locked():
                self.state.held += 1
            self.notify_all_state_changed()
            if not self.wait_state(lambda s: s.opened >= needed, timeout=20):
                raise TimeoutError("gate never opened")
            return True
        if kind == "seen":
            with self.locked():
                return list(self.state.seen)
        if kind == "note":
            with self.locked():
                self.state.seen.append([message.arg, self.context.name])
            return len(self.state.seen)
        if kind == "boom":
            raise RuntimeError("boom")
        if kind == "go":
            self.dispatch(message.arg)
            return True
        if kind == "park-me":
            from paglets.persistence.persistency import DeactivationPolicy

            wake = message.arg == "wake"  # a message wakes it again (else mail waits on disk)
            self.deactivate(reason="asked", policy=DeactivationPolicy(activate_on_message=wake))
            return True
        return self.not_handled()


class StrictBacklogPaglet(BacklogPaglet):
    """Never more than one message at a time in its worker."""

    MAILBOX_BATCH = 1


class SerialEchoPaglet(EchoPaglet):
    """An EchoPaglet with one handler: a sync message sent after oneway ones is handled after them."""

    MAILBOX_WORKERS = 1


class ForgetfulState(PagletState):  # no @dataclass, on purpose: its field would not travel
    count: int = 0


class ForgetfulPaglet(Paglet[ForgetfulState]):
    """Its state class forgot ``@dataclass``: every node must refuse to run it."""

    State = ForgetfulState

    def handle_message(self, message: Message) -> Any:
        self.state.count += 1
        return self.state.count

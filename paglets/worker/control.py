"""What a node asks of its paglet: ``start`` and the ``call`` ops, and the paglet's ``run()``.

``start`` builds the paglet from its state and runs its start hook
(``on_creation``, ``on_arrival``, ``on_clone`` or ``on_activation``); the
``call`` ops (see :data:`paglets.wire.back.CALL_OPS`) read its state, run a
lifecycle hook, ask its deactivation policy or clean up its resources.

Threads: every method here runs on the worker's control pool
(``paglet-control-*`` threads, owned by :class:`~paglets.worker.main.Worker`,
each job through :meth:`~paglets.worker.fatal.CrashReport.run`), never on
the main I/O thread; ``run()`` gets a daemon thread of its own, since it may
last as long as the paglet. A hook or ``run()`` that raises an ``Exception``
fails that request (or just ends ``run()``, unless the class sets
``RUN_FAILURE = "crash"``); a ``BaseException`` crashes the paglet.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from paglets.core.agent import Paglet, check_state_class
from paglets.core.errors import LifecycleError, PagletError
from paglets.core.events import CreationEvent, PagletEvent, PersistencyEvent, event_from_wire
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.wire import codec
from paglets.wire.back import OpCall
from paglets.wire.back_ops import MAIL_WAIT_MAX, MAIL_WAITERS_MAX
from paglets.wire.errors import error_to_wire
from paglets.wire.plain import state_from_plain
from paglets.worker.context import WorkerContext
from paglets.worker.fatal import CrashReport, describe
from paglets.worker.link import NodeLink

log = logging.getLogger("paglets.worker")


START_HOOKS = frozenset({"on_creation", "on_arrival", "on_clone", "on_activation"})
CALL_HOOKS = frozenset({"on_dispatching", "on_reverting", "on_cloning", "on_cloned", "on_deactivating", "on_disposing"})


class PagletControl:
    """Builds the paglet and answers the node's requests about it."""

    def __init__(
        self,
        agent_id: str,
        node_name: str,
        node_address: str,
        link: NodeLink,
        context: WorkerContext,
        on_started: Callable[[Paglet[Any]], None],
        crash: CrashReport,
    ):
        self._agent_id = agent_id
        self._crash = crash
        self._mail_waiters = threading.BoundedSemaphore(MAIL_WAITERS_MAX)  # the rest of the pool runs hooks
        self._node_name = node_name
        self._node_address = node_address
        self._link = link
        self._context = context
        self._on_started = on_started
        self.cls: type[Paglet[Any]] | None = None  # set once loaded, before ``ready``
        self.paglet: Paglet[Any] | None = None

    # -- start ----------------------------------------------------------------------
    def start(self, cid: bytes, header: dict[str, Any], payload: list[bytes]) -> None:
        """Build the paglet, run its start hook, answer; then ``run()`` begins, and only then its handlers."""
        try:
            paglet = self._build(header, payload)
            self._run_hook(paglet, header.get("hook", "on_creation"), header, payload, START_HOOKS)
        except Exception as exc:
            log.warning("paglet %s: start failed: %s", self._agent_id, describe(exc))
            self._link.reply_error(cid, error_to_wire(_as_lifecycle(exc, "start")))
            return
        self._link.reply_ok(cid)
        threading.Thread(
            target=self._crash.run, args=("the run thread", self._run, paglet), name="paglet-run", daemon=True
        ).start()

    def _build(self, header: dict[str, Any], payload: list[bytes]) -> Paglet[Any]:
        cls = self.cls
        check_state_class(cls.State)  # fields without @dataclass would vanish on the first move or park
        raw_state = payload[0] if payload else b""
        if header.get("plain"):
            plain = codec.decode(raw_state) if raw_state else {}
            state = state_from_plain(cls.State, plain)
        elif raw_state:
            state = codec.decode(raw_state, expected=cls.State)
        else:
            state = cls.State()
        paglet = cls()
        if not hasattr(paglet, "_state_lock"):
            Paglet.__init__(paglet)  # a subclass __init__ that skipped super().__init__()
        paglet.agent_id = self._agent_id
        paglet.state = state
        paglet.context = self._context
        self.paglet = paglet
        return paglet

    def _run_hook(
        self,
        paglet: Paglet[Any],
        name: str,
        header: dict[str, Any],
        payload: list[bytes],
        allowed: frozenset[str],
    ) -> None:
        if name not in allowed:
            raise LifecycleError(f"unknown hook {name!r}")
        event = self._event(name, header, payload)
        getattr(paglet, name)(event)

    def _event(self, hook: str, header: dict[str, Any], payload: list[bytes]) -> PagletEvent:
        if hook == "on_creation":
            init = codec.decode(payload[1]) if len(payload) > 1 and payload[1] else None
            return CreationEvent(self._agent_id, self._node_name, self._node_address, init=init)
        wire = header.get("event")
        if not isinstance(wire, dict):
            raise LifecycleError(f"hook {hook!r} needs an event")
        event = event_from_wire(wire)
        if isinstance(event, PersistencyEvent):  # hooks get the typed request and policy
            event = dataclasses.replace(
                event,
                request=DeactivationRequest.from_wire(event.request) if isinstance(event.request, dict) else None,
                policy=DeactivationPolicy.from_wire(event.policy) if isinstance(event.policy, dict) else None,
            )
        return event

    def _run(self, paglet: Paglet[Any]) -> None:
        """The run thread: it opens the mailbox, then calls ``run()``.

        The first handler announces itself to the node from here, so no
        message reaches a handler before this thread has begun ``run()``: a
        handler cannot change the state ``run()`` starts from (an itinerary
        driven from ``run()`` would advance twice). Unqueued messages wait for
        the same moment (:meth:`MessageHandlers.run_unqueued`).
        """
        self._on_started(paglet)
        ok = True
        try:
            paglet.run()
        except Exception as exc:
            if getattr(paglet, "RUN_FAILURE", "log") == "crash":  # the class asked for a failed run() to crash it
                self._crash.crash("run()", exc)
            ok = False
            log.warning("paglet %s: run() failed: %s", self._agent_id, describe(exc))
        except BaseException as exc:
            self._crash.crash("run()", exc)
        try:
            self._link.event("run-finished", ok=ok)
        except PagletError:
            pass  # shutting down

    # -- calls ----------------------------------------------------------------------
    def call(self, cid: bytes, call: OpCall) -> None:
        """Answer one ``call`` from the node."""
        try:
            result = self._node_request(call)
        except Exception as exc:
            self._link.reply_error(cid, error_to_wire(_as_lifecycle(exc, call.op)))
            return
        self._link.reply_ok(cid, result)

    def _node_request(self, call: OpCall) -> bytes | None:
        op, header, payload = call.op, call.header, call.payload
        paglet = self.paglet
        if paglet is None:
            raise LifecycleError(f"paglet {self._agent_id!r} has not started")
        if op == "state":
            with paglet.locked():
                return codec.encode(paglet.state, root="state")
        if op == "hook":
            self._run_hook(paglet, header["name"], header, payload, CALL_HOOKS)
            return None
        if op == "resources":
            return codec.encode(self._context.resources().status())
        if op == "dispose":
            try:
                self._run_hook(paglet, "on_disposing", header, payload, CALL_HOOKS)
            finally:
                self._context.resources().cleanup(reason="dispose")
            return None
        if op == "policy":
            request = DeactivationRequest.from_wire(header["request"])
            policy = paglet.deactivation_policy(request)
            if policy is not None and not isinstance(policy, DeactivationPolicy):
                raise LifecycleError(f"deactivation_policy returned {type(policy).__name__}, not a DeactivationPolicy")
            return codec.encode(None if policy is None else policy.to_wire())
        if op == "mail":  # the node's Host.wait_message / notify_message for this paglet
            notify = header.get("notify")
            if notify is None:
                if not self._mail_waiters.acquire(blocking=False):
                    raise LifecycleError(
                        f"paglet {self._agent_id} has {MAIL_WAITERS_MAX} node-side wait_message calls waiting already"
                    )
                try:
                    wait = min(float(header.get("wait") or 0.0), MAIL_WAIT_MAX)
                    return codec.encode(self._context.wait_message(wait))
                finally:
                    self._mail_waiters.release()
            if notify == "all":
                self._context.notify_all_messages()
            else:
                self._context.notify_message()
            return None
        if op == "cleanup":
            self._context.resources().cleanup(reason=header.get("reason") or "lifecycle")
            return None
        raise LifecycleError(f"unknown node request {op!r}")


def _as_lifecycle(exc: BaseException, what: str) -> BaseException:
    if isinstance(exc, PagletError):
        return exc
    return LifecycleError(f"{what}: {type(exc).__name__}: {exc}")


__all__ = ["CALL_HOOKS", "START_HOOKS", "PagletControl"]

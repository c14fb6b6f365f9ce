"""A paglet's worker process: the child side of the back protocol.

The main thread is the I/O thread. It owns the DEALER whose routing id is the
agent id, sends heartbeats, and runs every hook and node request on another
thread, so it keeps serving the node while a paglet blocks.

Messages do not pass through it: each handler thread owns a DEALER of its
own (:class:`~paglets.worker.link.NodeLink`), tells the node it is
idle, and the node hands it one message at a time straight to that socket.
The worker starts one handler and adds one whenever the last idle handler
takes a message, up to ``MAILBOX_WORKERS``. A handler may itself ask the
node for something (a host call) on the same socket.

The worker exits when the node says so, or when the node has been silent for
``heartbeat * misses`` seconds: no orphans, whatever happened to the node.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, NoReturn

import zmq

from paglets.core.agent import NOT_HANDLED, Paglet
from paglets.core.errors import HostError, LifecycleError, NotHandledError, PagletCrashedError, PagletError
from paglets.core.events import CreationEvent, PagletEvent, PersistencyEvent, event_from_wire
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.threads import ThreadPool
from paglets.wire import codec, protocol
from paglets.wire.errors import error_to_wire
from paglets.wire.frames import read_waiting, recv_frames
from paglets.wire.message_codec import decode_message
from paglets.wire.plain import state_from_plain
from paglets.worker.context import WorkerContext
from paglets.worker.link import NodeLink

log = logging.getLogger("paglets.worker")

ONEWAY_HEADER = protocol.pack({"oneway": True})
START_HOOKS = frozenset({"on_creation", "on_arrival", "on_clone", "on_activation"})
CALL_HOOKS = frozenset({"on_dispatching", "on_reverting", "on_cloning", "on_cloned", "on_deactivating", "on_disposing"})


def load_paglet_class(name: str) -> type[Paglet[Any]]:
    """Import a paglet class by ``module:Qual.Name``; refuse anything else."""
    if ":" not in name:
        raise HostError(f"paglet class name {name!r} must look like 'package.module:ClassName'")
    if name.startswith("__main__:"):
        raise HostError(
            f"paglet class {name!r} is defined in __main__; move it to an importable module "
            "so worker processes can import it by name"
        )
    try:
        cls = codec.import_by_name(name)
    except PagletError as exc:
        raise HostError(f"cannot import paglet class {name!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Paglet)):
        raise HostError(f"{name!r} is not a Paglet subclass")
    return cls


class Worker:
    """Runs one paglet inside its own process."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.agent_id: str = spec["agent_id"]
        self.node_name: str = spec["node_name"]
        self.node_address: str = spec["node_address"]
        self._heartbeat: float = spec.get("heartbeat", 0.5)
        self._liveness: float = self._heartbeat * spec.get("heartbeat_misses", 3)
        self.ctx = zmq.Context()
        self.link = NodeLink(self.ctx, spec["back_endpoint"], self.agent_id)
        self.paglet: Paglet[Any] | None = None
        self.cls: type[Paglet[Any]] | None = None
        self.context = WorkerContext(self)
        self.mail_arrived = threading.Condition()
        self._main = self.ctx.socket(zmq.DEALER)
        self._main.linger = 1000
        self._main.identity = self.agent_id.encode()
        self._max_handlers = 1
        self._handlers = 0
        self._idle_handlers = 0
        self._handler_lock = threading.Lock()
        self._batch = threading.local()  # the oneway batch a handler thread is running, if any
        self._control = ThreadPool(f"paglet-control-{self.agent_id[:8]}")

    # -- start-up -------------------------------------------------------------
    def serve(self) -> NoReturn:
        self._main.connect(self.spec["back_endpoint"])
        ready: dict[str, Any] = {"nonce": self.spec["nonce"], "pid": os.getpid()}
        try:
            self.cls = load_paglet_class(self.spec["class_name"])
        except PagletError as exc:
            ready["error"] = error_to_wire(exc)
            self._main.send_multipart([b"ready", b"", protocol.pack(ready)])
            self.exit(1, flush=True)
        self._max_handlers = max(1, min(int(getattr(self.cls, "MAILBOX_WORKERS", 4)), 64))
        ready["workers"] = self._max_handlers
        ready["batch"] = max(1, min(int(getattr(self.cls, "MAILBOX_BATCH", 32)), 256))
        checkpoint = getattr(self.cls, "CHECKPOINT_INTERVAL", None)
        if isinstance(checkpoint, (int, float)) and not isinstance(checkpoint, bool):
            ready["checkpoint"] = float(checkpoint)
        self._main.send_multipart([b"ready", b"", protocol.pack(ready)])
        self._loop()

    def _loop(self) -> NoReturn:
        main = self._main
        heard = time.monotonic()
        next_beat = heard + self._heartbeat
        while True:
            if main.poll(max(0.0, next_beat - time.monotonic()) * 1000):
                heard = time.monotonic()
                read_waiting(main, self._on_frames)
            now = time.monotonic()
            if now - heard > self._liveness:
                log.warning("paglet %s: node silent for %.1f s; exiting", self.agent_id, now - heard)
                self.exit(0)
            if now >= next_beat:
                main.send_multipart([b"hb", b"", b""])
                next_beat = now + self._heartbeat

    def _on_frames(self, frames: list[bytes]) -> None:
        if len(frames) < 3:
            return
        op, rid = frames[0], frames[1]
        if op == b"msg":
            self._on_message(rid, frames[2], frames[3] if len(frames) > 3 else b"")
            return
        if op == b"hb":
            return
        try:
            header = protocol.unpack_map(frames[2], op.decode("ascii", "replace"))
        except PagletError as exc:
            self.link.reply_error(rid, error_to_wire(exc))
            return
        payload = frames[3:]
        if op == b"start":
            self._control.submit(lambda: self._start(rid, header, payload))
        elif op == b"call":
            if header.get("op") == "exit":
                self.exit(0)
            self._control.submit(lambda: self._call(rid, header, payload))

    # -- messages ---------------------------------------------------------------
    def _on_message(self, rid: bytes, header: bytes, body: bytes) -> None:
        """An unqueued message: it bypasses the handlers and runs on a thread of its own."""
        oneway = bool(protocol.unpack_map(header, "msg header").get("oneway"))
        self._notify_mail()
        self._control.submit(lambda: self._run_message(rid, oneway, body))

    def _notify_mail(self) -> None:
        with self.mail_arrived:
            self.mail_arrived.notify_all()

    def _add_handler(self) -> None:
        with self._handler_lock:
            if self._handlers >= self._max_handlers:
                return
            self._handlers += 1
            self._idle_handlers += 1
        threading.Thread(target=self._handle_forever, name=f"paglet-handler-{self._handlers}", daemon=True).start()

    def _handle_forever(self) -> None:
        """A handler thread: announce idle, then take one message at a time from its own socket."""
        try:
            self._handle_messages(self.link.socket())
        except (zmq.ContextTerminated, PagletCrashedError):
            self.link.close_own()  # the worker is exiting; each thread closes its own socket

    def _handle_messages(self, sock: zmq.Socket) -> None:
        sock.send_multipart([b"idle", b"", b""])
        while True:
            frames = recv_frames(sock)
            kind = frames[0]
            if not ((kind == b"msg" and len(frames) >= 4) or (kind == b"msgs" and len(frames) >= 3)):
                continue  # e.g. the late answer to a host call that timed out
            with self._handler_lock:
                self._idle_handlers -= 1
                grow = self._idle_handlers == 0
            if grow:
                self._add_handler()  # keep one handler free for the next message, up to the limit
            self._notify_mail()
            if kind == b"msg":
                self._run_message(frames[1], frames[2] == ONEWAY_HEADER, frames[3])
            else:
                self._run_batch(frames[1], frames[2:])
            with self._handler_lock:
                self._idle_handlers += 1

    def _handle(self, body: bytes) -> Any:
        """Decode one message and give it to the paglet; its reply, or NotHandledError."""
        message = decode_message(body)
        result = self.paglet.handle_message(message)
        if result is NOT_HANDLED:
            raise NotHandledError(
                f"paglet {self.agent_id!r} ({self.spec['class_name']}) did not handle {message.kind!r}"
            )
        return result

    def _run_message(self, rid: bytes, oneway: bool, body: bytes) -> None:
        try:
            result = self._handle(body)
            self.link.reply_ok(rid, None if oneway else codec.encode(result, root="reply"))
        except Exception as exc:
            if oneway or not isinstance(exc, PagletError):
                log.warning("paglet %s: handler failed: %s", self.agent_id, _describe(exc))
            self.link.reply_error(rid, error_to_wire(exc))

    def _run_batch(self, rid: bytes, bodies: list[bytes]) -> None:
        """Oneway messages given together: run in order, then one reply with the failure count."""
        batch = self._batch
        batch.rid, batch.bodies, batch.next = rid, bodies, 0
        failed = 0
        try:
            while batch.next < len(batch.bodies):
                body = batch.bodies[batch.next]
                batch.next += 1
                try:
                    self._handle(body)
                except Exception as exc:
                    failed += 1
                    log.warning("paglet %s: handler failed: %s", self.agent_id, _describe(exc))
        finally:
            batch.bodies = None
        self.link.reply_ok(rid, failed.to_bytes(4, "big"))

    def give_back_batch(self) -> None:
        """Before this paglet leaves from inside a handler: the rest of the handler's batch goes back.

        The node puts those messages at the head of the mailbox again, so they
        move (or park) with the paglet instead of running here after it left.
        Sent on the handler's own socket, ahead of the request to leave.
        """
        batch = self._batch
        bodies = getattr(batch, "bodies", None)
        if not bodies or batch.next >= len(bodies):
            return
        self.link.give_back(batch.rid, len(bodies) - batch.next)
        batch.bodies = bodies[: batch.next]

    # -- lifecycle --------------------------------------------------------------
    def _start(self, rid: bytes, header: dict[str, Any], payload: list[bytes]) -> None:
        try:
            paglet = self._build(header, payload)
            self._run_hook(paglet, header.get("hook", "on_creation"), header, payload, START_HOOKS)
        except Exception as exc:
            log.warning("paglet %s: start failed: %s", self.agent_id, _describe(exc))
            self.link.reply_error(rid, error_to_wire(_as_lifecycle(exc, "start")))
            return
        self.link.reply_ok(rid)
        self._add_handler()
        _spawn(self._run)

    def _build(self, header: dict[str, Any], payload: list[bytes]) -> Paglet[Any]:
        cls = self.cls
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
        paglet.agent_id = self.agent_id
        paglet.state = state
        paglet.context = self.context
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
            return CreationEvent(self.agent_id, self.node_name, self.node_address, init=init)
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

    def _run(self) -> None:
        ok = True
        try:
            self.paglet.run()
        except Exception as exc:
            ok = False
            log.warning("paglet %s: run() failed: %s", self.agent_id, _describe(exc))
        try:
            self.link.event({"kind": "run-finished", "ok": ok})
        except PagletError:
            pass  # shutting down

    def _call(self, rid: bytes, header: dict[str, Any], payload: list[bytes]) -> None:
        try:
            result = self._node_request(header, payload)
        except Exception as exc:
            self.link.reply_error(rid, error_to_wire(_as_lifecycle(exc, str(header.get("op")))))
            return
        self.link.reply_ok(rid, result)

    def _node_request(self, header: dict[str, Any], payload: list[bytes]) -> bytes | None:
        op = header.get("op")
        paglet = self.paglet
        if paglet is None:
            raise LifecycleError(f"paglet {self.agent_id!r} has not started")
        if op == "state":
            with paglet.locked():
                return codec.encode(paglet.state, root="state")
        if op == "hook":
            self._run_hook(paglet, str(header.get("name")), header, payload, CALL_HOOKS)
            return None
        if op == "resources":
            return codec.encode(self.context.resources().status())
        if op == "dispose":
            try:
                self._run_hook(paglet, "on_disposing", header, payload, CALL_HOOKS)
            finally:
                self.context.resources().cleanup(reason="dispose")
            return None
        if op == "policy":
            request = DeactivationRequest.from_wire(header.get("request"))
            policy = paglet.deactivation_policy(request)
            if policy is not None and not isinstance(policy, DeactivationPolicy):
                raise LifecycleError(f"deactivation_policy returned {type(policy).__name__}, not a DeactivationPolicy")
            return codec.encode(None if policy is None else policy.to_wire())
        if op == "cleanup":
            self.context.resources().cleanup(reason=str(header.get("reason") or "lifecycle"))
            return None
        raise LifecycleError(f"unknown node request {op!r}")

    # -- exit -------------------------------------------------------------------
    def exit(self, code: int, *, flush: bool = False) -> NoReturn:
        """Leave at once. With ``flush``, first send what the main socket still holds (bounded).

        Nothing else needs flushing: the node only says "exit" once it has
        every reply it waits for, and a worker whose node fell silent has no
        one to tell.
        """
        if flush:
            flusher = threading.Thread(target=self._flush, daemon=True)
            flusher.start()
            flusher.join(1.0)
        os._exit(code)

    def _flush(self) -> None:
        self.link.closed = True
        self._main.close(linger=1000)
        self.ctx.term()  # only the main socket exists this early


def _spawn(target: Any, *args: Any) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


def _as_lifecycle(exc: BaseException, what: str) -> BaseException:
    if isinstance(exc, PagletError):
        return exc
    return LifecycleError(f"{what}: {type(exc).__name__}: {exc}")


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()


def worker_main(spec: dict[str, Any]) -> NoReturn:
    """Entry point in a freshly forked (or spawned) process."""
    logging.basicConfig(
        level=spec.get("log_level", "WARNING"),
        format=f"%(asctime)s paglet[{spec.get('agent_id', '?')[:8]}] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    codec.POLICY.allow(*spec.get("allow_modules") or ())  # what the node may import, this worker may too
    codec.POLICY.allow_any = bool(spec.get("allow_any_module"))
    try:
        Worker(spec).serve()
    except SystemExit as exc:
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    except BaseException:
        traceback.print_exc()
        os._exit(1)


__all__ = ["Worker", "load_paglet_class", "worker_main"]

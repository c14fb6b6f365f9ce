"""A paglet's worker process: its entry point and its I/O loop (the child side of the back protocol).

The main thread is the I/O thread. It owns the DEALER whose routing id is the
agent id, says ``ready``, sends heartbeats, and hands every ``start`` and
``call`` to the control pool (:class:`~paglets.worker.control.PagletControl`),
so it keeps serving the node while a paglet blocks.

Messages do not pass through it: the handler threads
(:class:`~paglets.worker.handlers.MessageHandlers`) each own a socket the
node hands messages to directly. A handler may itself ask the node for
something (a host call) on the same socket.

The worker exits when the node says so, or when the node has been silent for
``heartbeat * heartbeat_misses`` seconds: no orphans, whatever happened to
the node.

Threads: the main thread (this loop), the ``paglet-control-*`` pool (owned
here), the handler threads and the ``run()`` thread (daemons: the process
ends with ``os._exit``). None of them may die silently: what escapes one
crashes the paglet (:class:`~paglets.worker.fatal.CrashReport`), and the
node hears of it at once.

Routing ids: the main socket is ``spec.ident`` (``agent_id/KEY``, a secret
the node derived for this worker), the others ``agent_id/KEY/N``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, NoReturn

import zmq

from paglets.core.agent import Paglet
from paglets.core.context import MailSignal
from paglets.core.errors import HostError, PagletError
from paglets.threads import ThreadPool
from paglets.wire import back, codec
from paglets.wire.errors import error_to_wire
from paglets.wire.frames import read_waiting, send_frames
from paglets.worker.context import WorkerContext
from paglets.worker.control import PagletControl
from paglets.worker.fatal import CrashReport
from paglets.worker.handlers import MessageHandlers
from paglets.worker.link import NodeLink
from paglets.worker.spec import WorkerSpec

log = logging.getLogger("paglets.worker")


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

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.agent_id = spec.agent_id
        self._heartbeat = spec.heartbeat
        self._liveness = spec.heartbeat * spec.heartbeat_misses
        ident = spec.ident or spec.agent_id
        self.ctx = zmq.Context()
        self.link = NodeLink(self.ctx, spec.back_endpoint, self.agent_id, ident)
        self.crash = CrashReport(self.agent_id, self.link)
        self._control = ThreadPool(f"paglet-control-{self.agent_id[:8]}")
        mail_arrived = MailSignal()
        self.handlers = MessageHandlers(
            self.agent_id, spec.class_name, self.link, self._control, mail_arrived, self.crash
        )
        self.context = WorkerContext(spec, self.link, mail_arrived, self.handlers.give_back_batch)
        self.control = PagletControl(
            self.agent_id, spec.node_name, spec.node_address, self.link, self.context, self.handlers.start, self.crash
        )
        self._main = self.ctx.socket(zmq.DEALER)
        self._main.linger = 1000
        self._main.identity = ident.encode()

    # -- start-up -------------------------------------------------------------
    def serve(self) -> NoReturn:
        self._main.connect(self.spec.back_endpoint)
        token, pid = self.spec.token, os.getpid()
        try:
            cls = load_paglet_class(self.spec.class_name)
        except PagletError as exc:
            send_frames(self._main, back.ready_frames(token, pid, error=error_to_wire(exc)))
            self.exit(1, flush=True)
        self.control.cls = cls
        workers = max(1, min(int(getattr(cls, "MAILBOX_WORKERS", 4)), 64))
        self.handlers.max_handlers = workers
        batch = max(1, min(int(getattr(cls, "MAILBOX_BATCH", 32)), 256))
        checkpoint = getattr(cls, "CHECKPOINT_INTERVAL", None)
        if not isinstance(checkpoint, (int, float)) or isinstance(checkpoint, bool):
            checkpoint = None
        idle = getattr(cls, "IDLE_TIMEOUT", None)
        if not isinstance(idle, (int, float)) or isinstance(idle, bool) or not 0 <= idle < float("inf"):
            idle = None
        ready = back.ready_frames(
            token,
            pid,
            workers=workers,
            batch=batch,
            checkpoint=None if checkpoint is None else float(checkpoint),
            idle=None if idle is None else float(idle),
            state_class=codec.class_name(cls.State),
        )
        send_frames(self._main, ready)
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
                send_frames(main, back.hb_to_node())
                next_beat = now + self._heartbeat

    def _on_frames(self, frames: list[bytes]) -> None:
        """One frame set on the main socket: an unqueued ``msg``, ``start``, ``call`` or ``hb``."""
        split = back.split_from_node(frames)
        if split is None:
            return
        op, cid, rest = split
        if op == back.HB:
            return
        try:
            if op == back.MSG:
                oneway, body = back.parse_msg(rest)
                self.handlers.run_unqueued(cid, oneway, body)
            elif op == back.START:
                header, payload = back.parse_start(rest)
                where = f"the start hook {header.get('hook') or 'on_creation'}"
                self._control.submit(self.crash.run, where, self.control.start, cid, header, payload)
            elif op == back.CALL:
                call = back.parse_call(rest)
                if call.op == "exit":
                    self.exit(0)
                where = f"the hook {call.header['name']}" if call.op == "hook" else f"the node's {call.op!r} call"
                self._control.submit(self.crash.run, where, self.control.call, cid, call)
        except PagletError as exc:
            self.link.reply_error(cid, error_to_wire(exc))

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


def worker_main(spec: WorkerSpec) -> NoReturn:
    """Entry point in a freshly forked (or spawned) process."""
    logging.basicConfig(
        level=spec.log_level,
        format=f"%(asctime)s paglet[{spec.agent_id[:8]}] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    codec.POLICY.allow(*spec.allow_modules)  # what the node may import, this worker may too
    codec.POLICY.allow_any = spec.allow_any_module
    try:
        Worker(spec).serve()
    except SystemExit as exc:
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    except BaseException:
        traceback.print_exc()
        os._exit(1)


__all__ = ["Worker", "load_paglet_class", "worker_main"]

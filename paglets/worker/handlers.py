"""A worker's message handlers: the threads that run its paglet's mail.

Each handler thread owns a DEALER of its own (:class:`~paglets.worker.link.NodeLink`),
tells the node it is idle, and the node hands it one ``msg`` (or one
``msgs`` batch of oneway messages) at a time straight to that socket. The
first handler starts once the paglet's ``run()`` has begun (the run thread
calls :meth:`MessageHandlers.start` just before it), so no message overtakes
``run()``; one more starts whenever the last idle handler takes a message, up
to the class's ``MAILBOX_WORKERS``. Unqueued messages skip the handlers: the
node sends them to the main socket and they run on the control pool
(:meth:`MessageHandlers.run_unqueued`), once ``run()`` has begun too.

Threads: ``paglet-handler-N`` threads (daemons; they end with the process)
run :meth:`MessageHandlers._handle_forever`; the main thread calls
:meth:`MessageHandlers.run_unqueued`. The handler counts are guarded by a
lock; a handler's current batch is thread-local. A handler that raises an
``Exception`` fails its message (or counts in its batch's failures); a
``BaseException`` (``SystemExit``...), or anything escaping a handler
thread, crashes the paglet (:class:`~paglets.worker.fatal.CrashReport`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import zmq

from paglets.core.agent import NOT_HANDLED, Paglet
from paglets.core.context import MailSignal
from paglets.core.errors import (
    LifecycleError,
    NotHandledError,
    PagletCrashedError,
    PagletError,
    SerializationError,
)
from paglets.core.messages import DEACTIVATE, Message
from paglets.persistence.persistency import DeactivationRequest
from paglets.threads import ThreadPool
from paglets.wire import back, codec
from paglets.wire.errors import error_to_wire
from paglets.wire.frames import recv_frames, send_frames
from paglets.wire.message_codec import decode_message
from paglets.worker.fatal import CrashReport, describe
from paglets.worker.link import NodeLink

log = logging.getLogger("paglets.worker")

RUN_START_DEADLINE = 30.0  # seconds an unqueued message waits for the paglet's run() to begin


class MessageHandlers:
    """The handler threads of one worker, and the batch each is running."""

    def __init__(
        self,
        agent_id: str,
        class_name: str,
        link: NodeLink,
        control: ThreadPool,
        mail_arrived: MailSignal,
        crash: CrashReport,
    ):
        self._agent_id = agent_id
        self._crash = crash
        self._class_name = class_name
        self._link = link
        self._control = control
        self._mail_arrived = mail_arrived
        self._paglet: Paglet[Any] | None = None
        self.max_handlers = 1
        self._handlers = 0
        self._idle_handlers = 0
        self._lock = threading.Lock()
        self._batch = threading.local()  # the oneway batch a handler thread is running, if any
        self._started = threading.Event()  # set once run() is beginning: messages may run from then on

    def start(self, paglet: Paglet[Any]) -> None:
        """Called by the run thread just before it calls ``run()``: open the mailbox.

        The first handler thread starts now but announces itself only once
        :attr:`_started` is set, which is the last thing done here: the run
        thread, still holding the interpreter, goes straight on into
        ``run()``, and a message needs the node's round trip on top of that.
        """
        self._paglet = paglet
        self._add_handler()
        self._started.set()

    def run_unqueued(self, cid: bytes, oneway: bool, body: bytes) -> None:
        """An unqueued message: it bypasses the handlers and runs on a control thread."""
        self._notify_mail()
        self._control.submit(self._crash.run, "an unqueued message's handler", self._run_unqueued, cid, oneway, body)

    def _run_unqueued(self, cid: bytes, oneway: bool, body: bytes) -> None:
        # The node sends unqueued mail as soon as the start hook answered: wait for run() to begin.
        if not self._started.wait(RUN_START_DEADLINE):
            error = LifecycleError(f"paglet {self._agent_id!r} did not begin run() within {RUN_START_DEADLINE:g} s")
            self._link.reply_error(cid, error_to_wire(error))
            return
        self._run_message(cid, oneway, body)

    def _notify_mail(self) -> None:
        self._mail_arrived.notify_all()

    def _add_handler(self) -> None:
        with self._lock:
            if self._handlers >= self.max_handlers:
                return
            self._handlers += 1
            self._idle_handlers += 1
            number = self._handlers
        threading.Thread(target=self._handle_forever, name=f"paglet-handler-{number}", daemon=True).start()

    def _handle_forever(self) -> None:
        """A handler thread: announce idle, then take one message (or batch) at a time from its own socket."""
        try:
            self._handle_messages(self._link.socket())
        except (zmq.ContextTerminated, PagletCrashedError):
            self._link.close_own()  # the worker is exiting; each thread closes its own socket
        except BaseException as exc:  # no handler thread dies silently, taking a credit and a reply with it
            self._crash.crash("a message handler thread", exc)

    def _handle_messages(self, sock: zmq.Socket) -> None:
        self._started.wait()  # set just before run() is called (by the thread that started this one)
        send_frames(sock, back.idle_frames())
        parse_work = back.parse_work
        while True:
            work = parse_work(recv_frames(sock))
            if work is None:
                continue  # e.g. the late answer to a host call that timed out
            cid, batch, oneway, bodies = work
            with self._lock:
                self._idle_handlers -= 1
                grow = self._idle_handlers == 0
            if grow:
                self._add_handler()  # keep one handler free for the next message, up to the limit
            self._notify_mail()
            if batch:
                self._run_batch(cid, bodies)
            else:
                self._run_message(cid, oneway, bodies[0])
            with self._lock:
                self._idle_handlers += 1

    def _handle(self, body: bytes) -> Any:
        """Decode one message and give it to the paglet; its reply, or NotHandledError."""
        try:
            message = decode_message(body)
        except Exception:
            raise
        except BaseException as exc:  # a type's own code, run by decoding: the sender's message fails, nothing else
            raise SerializationError(f"the message could not be decoded: {exc!r}") from None
        if message.kind == DEACTIVATE:
            return self._deactivate_on_request(message)
        try:
            result = self._paglet.handle_message(message)
        except Exception:
            raise  # the message fails; the paglet carries on
        except BaseException as exc:
            self._crash.crash(f"handle_message ({message.kind!r})", exc)
        if result is NOT_HANDLED:
            raise NotHandledError(f"paglet {self._agent_id!r} ({self._class_name}) did not handle {message.kind!r}")
        return result

    def _deactivate_on_request(self, message: Message) -> dict[str, Any]:
        """The reserved DEACTIVATE kind: the runtime parks the paglet; ``handle_message`` never sees it."""
        request = DeactivationRequest.from_wire(message.get_arg("request"))
        proxy = self._paglet.deactivate(
            reason=request.reason or "message", policy=request.policy, metadata=request.metadata
        )
        return {"deactivated": True, "proxy": proxy.to_wire()}

    def _run_message(self, cid: bytes, oneway: bool, body: bytes) -> None:
        try:
            result = self._handle(body)
            self._link.reply_ok(cid, None if oneway else codec.encode(result, root="reply"))
        except Exception as exc:
            if oneway or not isinstance(exc, PagletError):
                log.warning("paglet %s: handler failed: %s", self._agent_id, describe(exc))
            self._link.reply_error(cid, error_to_wire(exc))

    def _run_batch(self, cid: bytes, bodies: list[bytes]) -> None:
        """Oneway messages given together: run in order, then one reply with the failure count."""
        batch = self._batch
        batch.cid, batch.bodies, batch.next = cid, bodies, 0
        failed = 0
        try:
            while batch.next < len(batch.bodies):
                body = batch.bodies[batch.next]
                batch.next += 1
                try:
                    self._handle(body)
                except Exception as exc:
                    failed += 1
                    log.warning("paglet %s: handler failed: %s", self._agent_id, describe(exc))
        finally:
            batch.bodies = None
        self._link.reply_batch(cid, failed)

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
        self._link.give_back(batch.cid, len(bodies) - batch.next)
        batch.bodies = bodies[: batch.next]


__all__ = ["MessageHandlers"]

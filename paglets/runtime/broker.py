"""The broker loop: one thread that owns the node's front, back and control sockets.

It routes every message: a ``send`` from the front (or a paglet's host call)
goes into the target paglet's mailbox, and the mailbox hands each message
straight to an idle handler thread of the worker. A worker has at most
``MAILBOX_WORKERS`` handler threads, each with its own socket, and each
handler holds one message at a time: idle handler sockets are the credits.
Each reply goes back to whoever asked. It also runs the heartbeats and declares silent or
dead workers crashed. It never blocks on disk or on a paglet: anything slow
(create, state, listing...) runs on the op pool and answers through
:class:`~paglets.runtime.loop_channel.LoopChannel`.

State owned here and nowhere else: the worker slots, their mailboxes and the
table of pending requests.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import zmq

from paglets.core.errors import (
    AuthenticationError,
    HostError,
    InvalidAgentError,
    OverloadedError,
    PagletCrashedError,
    PagletError,
)
from paglets.core.messages import UNQUEUED_PRIORITY
from paglets.runtime.loop_channel import LoopChannel
from paglets.runtime.slots import (
    EMPTY_MAP,
    BackOrigin,
    Delivery,
    FrontOrigin,
    FutureOrigin,
    Origin,
    Pending,
    Phase,
    WorkerSlot,
)
from paglets.wire import protocol
from paglets.wire.errors import error_to_wire
from paglets.wire.frames import NOBLOCK, recv_frames, send_frames

log = logging.getLogger("paglets.broker")

MSG = b"msg"
START = b"start"
CALL = b"call"
HB = b"hb"
MSG_HEADER = {False: protocol.pack({"oneway": False}), True: protocol.pack({"oneway": True})}
MSG_HEADER_UNQUEUED = {
    False: protocol.pack({"oneway": False, "unqueued": True}),
    True: protocol.pack({"oneway": True, "unqueued": True}),
}
ACCEPTED = protocol.pack({"accepted": True})
LOOP_OPS = frozenset({"ping", "send", "mailbox"})
READ_BATCH = 64


class BrokerServices(Protocol):
    """What the broker asks of the node facade (called on the op pool)."""

    def handle_front(self, request: protocol.Request) -> tuple[dict[str, Any], list[bytes]]: ...

    def handle_host_call(self, agent_id: str, header: dict[str, Any], payload: list[bytes]) -> list[bytes]: ...

    def route_unknown(self, request: protocol.Request) -> tuple[dict[str, Any], list[bytes]]: ...

    def worker_crashed(self, agent_id: str, pid: int | None, reason: str) -> None: ...

    def worker_event(self, agent_id: str, header: dict[str, Any]) -> None: ...


class Broker:
    """Routes between the front, the workers and the node facade."""

    def __init__(
        self,
        ctx: zmq.Context,
        services: BrokerServices,
        *,
        node_name: str,
        front_endpoint: str,
        back_endpoint: str,
        api_key: str | None = None,
        heartbeat_interval: float = 0.5,
        heartbeat_misses: int = 3,
        max_message_size: int = protocol.DEFAULT_MAX_MESSAGE_SIZE,
        mailbox_limit: int = 10_000,
        op_threads: int = 32,
    ):
        self._ctx = ctx
        self._services = services
        self.node_name = node_name
        self._front_endpoint = front_endpoint
        self.back_endpoint = back_endpoint
        self._api_key = api_key.encode() if api_key else None
        self._heartbeat = heartbeat_interval
        self._liveness = heartbeat_interval * heartbeat_misses
        self._max_message_size = max_message_size
        self._mailbox_limit = mailbox_limit
        self._ack_limit = min(1000, mailbox_limit)
        self.channel = LoopChannel(ctx, f"broker-{node_name}")
        self._pool = ThreadPoolExecutor(max_workers=op_threads, thread_name_prefix=f"paglets-ops-{node_name}")
        self._slots: dict[str, WorkerSlot] = {}
        self._by_ident: dict[bytes, WorkerSlot] = {}
        self._by_pid: dict[int, WorkerSlot] = {}
        self._pending: dict[bytes, Pending] = {}
        self._rids = itertools.count(1)
        self._front: zmq.Socket | None = None
        self._back: zmq.Socket | None = None
        self._stop = False
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.front_address = ""
        self.rejected_requests = 0

    # -- lifecycle (any thread) ---------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"paglets-broker-{self.node_name}", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        if not self.running:
            self._pool.shutdown(wait=False, cancel_futures=True)
            return
        self.channel.post(self._request_stop)
        self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _request_stop(self) -> None:
        self._stop = True

    # -- facade API (any thread; each returns a Future) ----------------------
    def expect_worker(
        self,
        agent_id: str,
        nonce: str,
        class_name: str,
        start_header: dict[str, Any],
        start_payload: list[bytes],
        start_timeout: float,
    ) -> Future[Any]:
        """Open a slot for a worker about to start; the Future completes when its start hook did.

        Blocks until the slot exists, so the caller forks only once the agent id is ours.
        """
        future: Future[Any] = Future()

        def open_slot() -> None:
            if agent_id in self._slots and self._slots[agent_id].phase is not Phase.CRASHED:
                raise HostError(f"paglet {agent_id!r} already exists on node {self.node_name}")
            self._forget(self._slots.get(agent_id))
            slot = WorkerSlot(
                agent_id=agent_id,
                ident=agent_id.encode(),
                nonce=nonce,
                class_name=class_name,
                start_header=protocol.pack(start_header),
                start_payload=start_payload,
                start_origin=FutureOrigin(future),
                start_deadline=time.monotonic() + start_timeout,
            )
            self._slots[agent_id] = slot
            self._by_ident[slot.ident] = slot

        self.channel.call(open_slot).result(10)
        return future

    def worker_forked(self, agent_id: str, pid: int) -> None:
        def record() -> None:
            slot = self._slots.get(agent_id)
            if slot is not None and slot.pid is None:
                slot.pid = pid
                self._by_pid[pid] = slot

        self.channel.post(record)

    def worker_exited(self, pid: int, code: int) -> None:
        self.channel.post(lambda: self._on_exit(pid, code))

    def deliver(self, agent_id: str, body: bytes, *, oneway: bool, priority: int) -> Future[Any]:
        future: Future[Any] = Future()
        origin = FutureOrigin(future)
        self.channel.post(lambda: self._deliver(agent_id, body, oneway, priority, origin))
        return future

    def call_worker(self, agent_id: str, header: dict[str, Any], payload: list[bytes] = ()) -> Future[Any]:
        future: Future[Any] = Future()
        origin = FutureOrigin(future)
        frames = [protocol.pack(header), *payload]
        self.channel.post(lambda: self._call(agent_id, frames, origin))
        return future

    def stop_worker(self, agent_id: str) -> Future[Any]:
        """Mark the worker stopping, fail its queue and ask it to exit; returns its pid."""
        return self.channel.call(lambda: self._stop_worker(agent_id))

    def forget(self, agent_id: str) -> Future[Any]:
        return self.channel.call(lambda: self._forget(self._slots.get(agent_id)))

    def summaries(self) -> Future[Any]:
        return self.channel.call(lambda: [slot.summary() for slot in self._slots.values()])

    def summary(self, agent_id: str) -> Future[Any]:
        return self.channel.call(lambda: self._require(agent_id).summary())

    def live_pids(self) -> Future[Any]:
        return self.channel.call(lambda: {s.agent_id: s.pid for s in self._slots.values() if s.pid})

    # -- the loop -------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._open_sockets()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            self._serve()
        finally:
            self._close()

    def _open_sockets(self) -> None:
        front = self._ctx.socket(zmq.ROUTER)
        front.linger = 0
        front.router_mandatory = 1
        front.maxmsgsize = self._max_message_size
        front.sndhwm = front.rcvhwm = 100_000
        back = self._ctx.socket(zmq.ROUTER)
        back.linger = 0
        back.router_mandatory = 1
        back.router_handover = 1
        back.sndhwm = back.rcvhwm = 100_000
        try:
            if self._front_endpoint.endswith(":0"):
                port = front.bind_to_random_port(self._front_endpoint.rsplit(":", 1)[0])
                self.front_address = f"{self._front_endpoint.rsplit(':', 1)[0]}:{port}"
            else:
                front.bind(self._front_endpoint)
                self.front_address = self._front_endpoint
            back.bind(self.back_endpoint)
            self.channel.bind()
        except BaseException:
            front.close(0)
            back.close(0)
            raise
        self._front, self._back = front, back

    def _serve(self) -> None:
        front, back, ctrl = self._front, self._back, self.channel.pull
        poller = zmq.Poller()
        poller.register(front, zmq.POLLIN)
        poller.register(back, zmq.POLLIN)
        poller.register(ctrl, zmq.POLLIN)
        next_beat = time.monotonic() + self._heartbeat
        while not self._stop:
            timeout = max(0.0, next_beat - time.monotonic())
            for sock, _event in poller.poll(timeout * 1000):
                if sock is back:
                    self._read(back, self._on_back)
                elif sock is front:
                    self._read(front, self._on_front)
                else:
                    self.channel.drain()
            now = time.monotonic()
            if now >= next_beat:
                self._housekeeping(now)
                next_beat = now + self._heartbeat

    @staticmethod
    def _read(sock: zmq.Socket, handle: Callable[[list[bytes]], None]) -> None:
        for _ in range(READ_BATCH):
            try:
                frames = recv_frames(sock, NOBLOCK)
            except zmq.Again:
                return
            try:
                handle(frames)
            except Exception:  # the loop must survive anything one message does
                log.exception("broker: error handling a frame set")

    def _close(self) -> None:
        for slot in list(self._slots.values()):
            self._fail_slot(slot, PagletCrashedError(f"node {self.node_name} stopped"))
        self.channel.close()
        for sock in (self._front, self._back):
            if sock is not None:
                sock.close(0)

    # -- sending ----------------------------------------------------------------
    def send_front(self, frames: list[bytes]) -> None:
        try:
            send_frames(self._front, frames, NOBLOCK)
        except zmq.ZMQError as exc:  # peer gone or not reading: its loss, not ours
            log.debug("broker: dropped a reply to a front peer: %s", exc)

    def send_back(self, frames: list[bytes]) -> None:
        try:
            send_frames(self._back, frames, NOBLOCK)
        except zmq.ZMQError as exc:
            log.debug("broker: could not reach worker %r: %s", frames[0], exc)

    def _reply_error(self, origin: Origin | None, exc: BaseException) -> None:
        if origin is not None:
            origin.fail(self, error_to_wire(exc))

    # -- front ------------------------------------------------------------------
    def _on_front(self, frames: list[bytes]) -> None:
        try:
            request = protocol.parse_request(frames)
        except protocol.BadRequest as exc:
            self.rejected_requests += 1
            if exc.cid is not None:
                self.send_front([frames[0], *protocol.err_frames(exc.cid, error_to_wire(exc))])
            return
        origin = FrontOrigin(request.peer, request.cid)
        if self._api_key is not None and not _key_matches(request.header.get("key"), self._api_key):
            self.rejected_requests += 1
            self._reply_error(origin, AuthenticationError(f"node {self.node_name}: missing or wrong API key"))
            return
        if request.op == "send":
            self._front_send(request, origin)
        elif request.op == "ping":
            origin.ok(self, [], protocol.pack({"name": self.node_name, "version": protocol.PROTOCOL_VERSION}))
        elif request.op == "mailbox":
            self._answer(origin, lambda: ({"mailbox": self._require(request.header["agent"]).status().to_wire()}, []))
        else:
            self._off_loop(origin, lambda: self._services.handle_front(request))

    def _front_send(self, request: protocol.Request, origin: FrontOrigin) -> None:
        header = request.header
        slot = self._slots.get(header["agent"])
        if slot is None:
            self._off_loop(origin, lambda: self._services.route_unknown(request))
            return
        priority = header.get("prio", 5)
        if not 0 <= priority <= 13:
            self._reply_error(origin, PagletError(f"priority {priority} out of range 0..13"))
            return
        self._enqueue(slot, request.payload[0], bool(header.get("oneway")), priority, origin)

    def _answer(self, origin: Origin, compute: Callable[[], tuple[dict[str, Any], list[bytes]]]) -> None:
        try:
            header, payload = compute()
        except Exception as exc:
            self._reply_error(origin, exc)
            return
        origin.ok(self, payload, protocol.pack(header))

    def _off_loop(self, origin: Origin, compute: Callable[[], tuple[dict[str, Any], list[bytes]]]) -> None:
        """Run ``compute`` on the op pool and answer from the loop when it is done."""

        def work() -> None:
            try:
                header, payload = compute()
            except Exception as exc:
                if not isinstance(exc, PagletError):
                    log.exception("broker: op failed")
                wire = error_to_wire(exc)
                self.channel.post(lambda: origin.fail(self, wire))
                return
            packed = protocol.pack(header)
            self.channel.post(lambda: origin.ok(self, payload, packed))

        try:
            self._pool.submit(work)
        except RuntimeError:
            self._reply_error(origin, PagletCrashedError(f"node {self.node_name} is stopping"))

    # -- mailboxes --------------------------------------------------------------
    def _deliver(self, agent_id: str, body: bytes, oneway: bool, priority: int, origin: Origin) -> None:
        slot = self._slots.get(agent_id)
        if slot is None:
            self._reply_error(origin, InvalidAgentError(f"no paglet {agent_id!r} on node {self.node_name}"))
            return
        self._enqueue(slot, body, oneway, priority, origin)

    def _enqueue(self, slot: WorkerSlot, body: bytes, oneway: bool, priority: int, origin: Origin) -> None:
        if slot.phase is Phase.CRASHED:
            self._reply_error(origin, PagletCrashedError(f"paglet {slot.agent_id!r} crashed: {slot.crash_reason}"))
            return
        if slot.phase is Phase.STOPPING:
            self._reply_error(origin, InvalidAgentError(f"paglet {slot.agent_id!r} is being removed"))
            return
        if priority == UNQUEUED_PRIORITY and slot.phase is Phase.READY:
            self._dispatch(slot, Delivery(body, oneway, origin, unqueued=True), slot.ident)
            return
        if len(slot.queue) >= self._mailbox_limit:
            self._reply_error(
                origin, OverloadedError(f"mailbox of paglet {slot.agent_id!r} is full ({self._mailbox_limit} queued)")
            )
            return
        delivery = Delivery(body, oneway, origin)
        if oneway:
            # Accept at once while the mailbox is short; past that the ack waits
            # until the message reaches the worker, which slows a fast sender
            # down to the paglet's pace instead of filling memory.
            if len(slot.queue) < self._ack_limit:
                origin.ok(self, [], ACCEPTED)
                delivery.origin = None
            else:
                delivery.ack_deferred = True
        slot.queue.push(priority, delivery)
        self._pump(slot)

    def _pump(self, slot: WorkerSlot) -> None:
        idle = slot.idle_handlers
        while idle and slot.queue and slot.phase is Phase.READY:
            self._dispatch(slot, slot.queue.pop(), idle.popleft())

    def _dispatch(self, slot: WorkerSlot, delivery: Delivery, handler: bytes) -> None:
        """Send one message to a handler socket (or, unqueued, to the worker's main socket)."""
        rid = self._next_rid()
        origin = delivery.origin
        if delivery.oneway:
            if delivery.ack_deferred and origin is not None:
                origin.ok(self, [], ACCEPTED)
            origin = None
        self._pending[rid] = Pending(slot, origin, is_message=True, handler=None if delivery.unqueued else handler)
        slot.pending_rids.add(rid)
        slot.in_flight += 1
        headers = MSG_HEADER_UNQUEUED if delivery.unqueued else MSG_HEADER
        self.send_back([handler, MSG, rid, headers[delivery.oneway], delivery.body])

    def _next_rid(self) -> bytes:
        return next(self._rids).to_bytes(8, "big")

    def _call(self, agent_id: str, frames: list[bytes], origin: Origin) -> None:
        slot = self._slots.get(agent_id)
        if slot is None or slot.phase is Phase.CRASHED or not slot.connected:
            reason = "not running" if slot is None else (slot.crash_reason or slot.phase.value)
            error = InvalidAgentError if slot is None else PagletCrashedError
            self._reply_error(origin, error(f"paglet {agent_id!r} on node {self.node_name}: {reason}"))
            return
        rid = self._next_rid()
        self._pending[rid] = Pending(slot, origin)
        slot.pending_rids.add(rid)
        self.send_back([slot.ident, CALL, rid, *frames])

    # -- back -------------------------------------------------------------------
    def _on_back(self, frames: list[bytes]) -> None:
        if len(frames) < 3:
            return
        ident, op, rid = frames[0], frames[1], frames[2]
        slot = self._by_ident.get(ident.split(b"/", 1)[0])
        if slot is None:
            if op == b"ready":  # a leftover worker of a paglet that is gone
                self.send_back([ident, CALL, b"", protocol.pack({"op": "exit"})])
            return
        slot.expires_at = time.monotonic() + self._liveness
        if op == b"rep":
            self._on_reply(rid, frames)
        elif op == b"hcall":
            self._on_host_call(slot, ident, rid, frames[3:])
        elif op == b"idle":
            if ident not in slot.idle_handlers:
                slot.idle_handlers.append(ident)
                self._pump(slot)
        elif op == b"ready":
            self._on_ready(slot, frames[3:])
        elif op == b"event":
            self._on_event(slot, frames[3:])

    def _on_reply(self, rid: bytes, frames: list[bytes]) -> None:
        pending = self._pending.pop(rid, None)
        if pending is None or len(frames) < 4:
            return
        slot = pending.slot
        slot.pending_rids.discard(rid)
        ok = frames[3] == protocol.OK
        payload = frames[4:]
        if pending.is_message:
            self._count_reply(slot, pending, ok)
        origin = pending.origin
        if origin is not None:
            if ok:
                origin.ok(self, payload)
            else:
                origin.fail(self, _error_payload(payload))
        if pending.is_start:
            self._started_worker(slot, ok)
        self._pump(slot)

    @staticmethod
    def _count_reply(slot: WorkerSlot, pending: Pending, ok: bool) -> None:
        slot.in_flight -= 1
        if ok:
            slot.delivered += 1
        else:
            slot.failed += 1
        if pending.handler is not None:
            slot.idle_handlers.append(pending.handler)

    def _on_ready(self, slot: WorkerSlot, rest: list[bytes]) -> None:
        try:
            header = protocol.unpack_map(rest[0], "ready header") if rest else {}
        except PagletError:
            header = {}
        if header.get("nonce") != slot.nonce or slot.phase is not Phase.STARTING or slot.connected:
            return
        pid = header.get("pid")
        if isinstance(pid, int) and slot.pid is None:
            slot.pid = pid
            self._by_pid[pid] = slot
        if header.get("error"):  # it could not even load its class; it exits by itself
            slot.start_origin.fail(self, header["error"])
            slot.start_origin = None
            self._stop_worker(slot.agent_id)
            return
        slot.connected = True
        rid = self._next_rid()
        self._pending[rid] = Pending(slot, slot.start_origin, is_start=True)
        slot.pending_rids.add(rid)
        self.send_back([slot.ident, START, rid, slot.start_header, *slot.start_payload])
        slot.start_payload = []

    def _started_worker(self, slot: WorkerSlot, ok: bool) -> None:
        slot.start_origin = None
        if ok:
            slot.phase = Phase.READY
        else:
            self._stop_worker(slot.agent_id)

    def _on_host_call(self, slot: WorkerSlot, ident: bytes, rid: bytes, rest: list[bytes]) -> None:
        origin = BackOrigin(ident, rid)
        try:
            header = protocol.unpack_map(rest[0], "host call header") if rest else {}
        except PagletError as exc:
            self._reply_error(origin, exc)
            return
        payload = rest[1:]
        if header.get("op") == "send" and header.get("local") and payload:
            target = self._slots.get(str(header.get("agent")))
            if target is not None:
                self._enqueue(target, payload[0], bool(header.get("oneway")), _priority(header), origin)
                return
        agent_id = slot.agent_id

        def work() -> tuple[dict[str, Any], list[bytes]]:
            return {}, self._services.handle_host_call(agent_id, header, payload)

        self._off_loop(origin, work)

    def _on_event(self, slot: WorkerSlot, rest: list[bytes]) -> None:
        try:
            header = protocol.unpack_map(rest[0], "event header") if rest else {}
        except PagletError:
            return
        agent_id = slot.agent_id
        self._pool.submit(self._services.worker_event, agent_id, header)

    # -- liveness -----------------------------------------------------------------
    def _housekeeping(self, now: float) -> None:
        for slot in list(self._slots.values()):
            if slot.phase is Phase.CRASHED:
                continue
            if not slot.connected:
                if now > slot.start_deadline:
                    self._crash(slot, "did not start in time")
                continue
            if now > slot.expires_at:
                self._crash(slot, f"missed heartbeats for {self._liveness:.1f} s")
                continue
            self.send_back([slot.ident, HB, b"", EMPTY_MAP])

    def _on_exit(self, pid: int, code: int) -> None:
        slot = self._by_pid.pop(pid, None)
        if slot is None or slot.phase is Phase.STOPPING:
            return
        if slot.phase is not Phase.CRASHED:
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            self._crash(slot, f"worker process {pid} {how}")

    def _crash(self, slot: WorkerSlot, reason: str) -> None:
        if slot.phase is Phase.CRASHED:
            return
        slot.phase = Phase.CRASHED
        slot.crash_reason = reason
        slot.connected = False
        self._fail_slot(slot, PagletCrashedError(f"paglet {slot.agent_id!r} crashed: {reason}"))
        pid = slot.pid
        self._pool.submit(self._services.worker_crashed, slot.agent_id, pid, reason)

    def _fail_slot(self, slot: WorkerSlot, error: PagletError) -> None:
        for rid in list(slot.pending_rids):
            pending = self._pending.pop(rid, None)
            if pending is not None:
                if pending.is_message:
                    slot.failed += 1
                self._reply_error(pending.origin, error)
        slot.pending_rids.clear()
        slot.idle_handlers.clear()
        slot.in_flight = 0
        for delivery in slot.queue.drain():
            slot.failed += 1
            self._reply_error(delivery.origin, error)
        self._reply_error(slot.start_origin, error)
        slot.start_origin = None

    def _stop_worker(self, agent_id: str) -> int | None:
        """Fail what the paglet still owes, ask its worker to exit and forget the slot.

        The pid stays mapped so the exit report is recognised as expected.
        """
        slot = self._slots.get(agent_id)
        if slot is None:
            return None
        if slot.phase is not Phase.CRASHED:
            slot.phase = Phase.STOPPING
        self._fail_slot(slot, InvalidAgentError(f"paglet {agent_id!r} was removed from node {self.node_name}"))
        if slot.connected:
            self.send_back([slot.ident, CALL, b"", protocol.pack({"op": "exit"})])
        self._forget(slot)
        return slot.pid

    def _forget(self, slot: WorkerSlot | None) -> None:
        if slot is None:
            return
        if self._slots.get(slot.agent_id) is slot:
            del self._slots[slot.agent_id]
        if self._by_ident.get(slot.ident) is slot:
            del self._by_ident[slot.ident]
        if slot.phase is not Phase.STOPPING and slot.pid is not None and self._by_pid.get(slot.pid) is slot:
            del self._by_pid[slot.pid]

    def _require(self, agent_id: str) -> WorkerSlot:
        slot = self._slots.get(agent_id)
        if slot is None:
            raise InvalidAgentError(f"no active paglet {agent_id!r} on node {self.node_name}")
        return slot


def _key_matches(offered: Any, expected: bytes) -> bool:
    if not isinstance(offered, str):
        return False
    return hmac.compare_digest(offered.encode(), expected)


def _priority(header: dict[str, Any]) -> int:
    priority = header.get("prio", 5)
    return priority if isinstance(priority, int) and 0 <= priority <= 13 else 5


def _error_payload(payload: list[bytes]) -> dict[str, Any]:
    if not payload:
        return {"type": "ProtocolError", "message": "error reply without a body"}
    try:
        return protocol.unpack_map(payload[0], "error body")
    except PagletError as exc:
        return error_to_wire(exc)


__all__ = ["Broker", "BrokerServices"]

"""The broker loop: one thread that owns the node's sockets.

It owns the front ROUTER (tcp), the back ROUTER (ipc, the workers), the
control PULL (other threads of the node) and the DEALERs to other nodes
(:class:`~paglets.node.broker.peers.PeerLinks`). It validates and
authenticates every front request, routes messages through the
:class:`~paglets.node.broker.table.WorkerTable` (mailboxes, credits,
lifecycles, forwarding) and runs the heartbeats. It never blocks on disk or
on a paglet: anything else runs on one of its lanes
(:class:`~paglets.node.broker.lanes.BrokerLanes`) and answers through the
control channel. Reads (health, list, info, state...) have a lane of their
own, so they never wait behind creates and moves; slow requests beyond
``max_slow_ops`` are refused with OverloadedError. Chunks of artifact
transfers have a lane of their own too (``TRANSFER_OPS``). What the loop
learns for the node (crashes, worker events, failed messages, parked
paglets to wake) goes through
:class:`~paglets.node.broker.node_services.NodeNotices`; its sockets are
made in :mod:`paglets.node.broker.sockets`.

Counters: every counter the loop and its lanes share is owned by the loop
thread, the only one that writes it - each slot's mailbox counts (queued,
in flight, delivered, failed), each lane's held jobs (a lane job's end is
counted when its answer is posted back to the loop), and
``rejected_requests``. Other threads read the slot counts through
:class:`~paglets.node.broker.commands.BrokerCommands` (``summaries``); they
may read ``rejected_requests`` directly as a snapshot, and never write it.

The per-frame paths (``_serve``, ``_on_front``, ``_front_send``, ``_on_back``)
reach the lanes and notices through attributes bound on the broker itself,
so splitting them out costs no lookup per message.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq

from paglets.client.security import CurveIdentity, CurveServer
from paglets.core.errors import AuthenticationError, PagletCrashedError, PagletError
from paglets.loops import LoopChannel, LoopThread
from paglets.node.broker.lanes import READ_OPS, TRANSFER_OPS, BrokerLanes, fans_out
from paglets.node.broker.node_services import BrokerServices, NodeNotices
from paglets.node.broker.parked_routes import ParkedPaglets
from paglets.node.broker.peers import PeerLinks
from paglets.node.broker.relay_link import RelayLink
from paglets.node.broker.slots import BackOrigin, Delivery, FrontOrigin, Origin, WorkerSlot
from paglets.node.broker.sockets import back_socket, open_front
from paglets.node.broker.table import WorkerTable
from paglets.wire import back, protocol
from paglets.wire.errors import error_to_wire
from paglets.wire.frames import NOBLOCK, has_input, recv_frames, send_frames

log = logging.getLogger("paglets.broker")

READ_BATCH = 64  # frame sets read from one socket before the loop looks at the others


class Broker:
    """Routes between the front, the workers, other nodes and the node facade."""

    def __init__(
        self,
        ctx: zmq.Context,
        services: BrokerServices | None,
        *,
        node_name: str,
        front_endpoint: str | None,
        back_endpoint: str,
        relay_endpoint: str | None = None,
        relay_secret: str | None = None,
        api_key: str | None = None,
        heartbeat_interval: float = 0.5,
        heartbeat_misses: int = 3,
        max_message_size: int = protocol.DEFAULT_MAX_MESSAGE_SIZE,
        mailbox_limit: int = 10_000,
        forward_ttl: float = 3600.0,
        op_threads: int = 32,
        max_slow_ops: int = 64,
        curve_server: CurveServer | None = None,
        curve_client: CurveIdentity | None = None,
    ):
        self._ctx = ctx
        self._services = services
        self.node_name = node_name
        self._front_endpoint = front_endpoint
        self.back_endpoint = back_endpoint
        self._api_key = api_key
        self._api_key_bytes = api_key.encode() if api_key else None
        self._heartbeat = heartbeat_interval
        self._max_message_size = max_message_size
        self.channel = LoopChannel(ctx, f"broker-{node_name}")
        lanes = self._lanes = BrokerLanes(
            node_name, self, self.channel, op_threads=op_threads, max_slow_ops=max_slow_ops
        )
        notices = self._notices = NodeNotices(self, self.channel, lanes.calls, services)
        # bound here so the per-frame paths reach them in one lookup, as when they were the broker's own
        self._reads, self._ops, self._calls, self._transfers = lanes.reads, lanes.ops, lanes.calls, lanes.transfers
        self._off_loop = lanes.run
        self._on_event = notices.worker_event
        self._poller = zmq.Poller()
        self._acks: dict[tuple[bytes, bool], list[bytes]] = {}  # oneway acks of this loop pass, per peer
        self._curve_server = curve_server
        self._peers = PeerLinks(ctx, self._poller, self, api_key=api_key, on_moved=self._moved, curve=curve_client)
        parked = ParkedPaglets(
            node_name, self, wake=notices.wake_parked, queue=notices.queue_for_parked, limit=mailbox_limit
        )
        self.table = WorkerTable(
            node_name,
            self,
            self._peers,
            parked,
            on_crash=notices.crashed,
            mailbox_limit=mailbox_limit,
            liveness=heartbeat_interval * heartbeat_misses,
            forward_ttl=forward_ttl,
        )
        self._front: zmq.Socket | None = None
        self._back: zmq.Socket | None = None
        self._relay: RelayLink | None = None
        if relay_endpoint is not None:
            self._relay = RelayLink(
                ctx,
                self._poller,
                relay_endpoint,
                node_name,
                api_key=api_key,
                heartbeat=heartbeat_interval,
                secret=relay_secret,
                secure=curve_client.secure_client if curve_client is not None else None,
            )
        self._stop = False
        self._thread = LoopThread(f"paglets-broker-{node_name}", self._open_sockets, self._serve, self._close)
        self.front_address = ""
        self.rejected_requests = 0  # front requests refused as malformed or unauthenticated; the loop's alone to write

    # -- lifecycle (any thread) -----------------------------------------------------
    def attach(self, services: BrokerServices) -> None:
        """The node parts that answer what the loop does not (set before :meth:`start`)."""
        self._services = self._notices.services = services

    def start(self) -> None:
        """Open the sockets on the loop thread and serve; raises what opening them raised."""
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.alive

    def stop(self, timeout: float = 5.0) -> None:
        if self.running:
            self.channel.post(self._request_stop)
            self._thread.join(timeout)
        self._lanes.shutdown()

    def _request_stop(self) -> None:
        self._stop = True

    # -- for BrokerCommands (in the loop) ------------------------------------------------
    def route_local(self, agent_id: str, delivery: Delivery) -> None:
        """Route a message sent from inside the node; unknown here fails its sender."""
        if not self.table.route(agent_id, delivery):
            self._fail(delivery.origin, self.table.unknown(agent_id))

    def open_relay(self) -> None:
        if self._relay is not None:
            self._relay.open()

    def wait_for_relay(self) -> bool:
        """After :meth:`open_relay` (any thread): wait, three heartbeats at most, for the relay's first answer."""
        return self._relay is None or self._relay.answered.wait(max(1.0, self._heartbeat * 3))

    # -- the loop -------------------------------------------------------------------------
    def _open_sockets(self) -> None:
        back = back_socket(self._ctx)
        front = None
        try:
            if self._front_endpoint is not None:  # a node behind a relay listens nowhere
                front, self.front_address = open_front(
                    self._ctx, self._front_endpoint, max_message_size=self._max_message_size, curve=self._curve_server
                )
            back.bind(self.back_endpoint)
            self.channel.bind()
        except BaseException:
            if front is not None:
                front.close(0)
            back.close(0)
            raise
        self._front, self._back = front, back

    def _serve(self) -> None:
        front, back, ctrl, peers, relay = self._front, self._back, self.channel.pull, self._peers, self._relay
        poller = self._poller
        if front is not None:
            poller.register(front, zmq.POLLIN)
        poller.register(back, zmq.POLLIN)
        poller.register(ctrl, zmq.POLLIN)
        notes, hand_on_failures = self.table.stats.notes, self._notices.failures
        next_beat = time.monotonic() + self._heartbeat
        while not self._stop:
            timeout = max(0.0, next_beat - time.monotonic())
            for sock, _event in poller.poll(timeout * 1000):
                if sock is back:
                    self._read(back, self._on_back)
                elif sock is front:
                    self._read(front, self._on_front)
                elif sock is ctrl:
                    self.channel.drain()
                elif relay is not None and relay.owns(sock):
                    relay.read(self._on_relayed)
                else:
                    peers.on_readable(sock)
            if self._acks:
                self._send_acks()
            if notes.pending:
                hand_on_failures(notes)
            now = time.monotonic()
            if now >= next_beat:
                self.table.housekeeping(now)
                peers.expire(now)
                if relay is not None:
                    relay.tick(now)
                next_beat = now + self._heartbeat

    @staticmethod
    def _read(sock: zmq.Socket, handle: Callable[[list[bytes]], None]) -> None:
        for _ in range(READ_BATCH):
            if not has_input(sock):
                return
            frames = recv_frames(sock)
            try:
                handle(frames)
            except Exception:  # the loop must survive anything one message does
                log.exception("broker: error handling a frame set")

    def _close(self) -> None:
        self.table.close(PagletCrashedError(f"node {self.node_name} stopped"))
        self.channel.close()
        self._peers.close()
        if self._relay is not None:
            self._relay.close()
        for sock in (self._front, self._back):
            if sock is not None:
                sock.close(0)

    # -- sending (the table's Sender) ---------------------------------------------------
    def send_front(self, frames: list[bytes]) -> None:
        try:
            send_frames(self._front, frames, NOBLOCK)
        except zmq.ZMQError as exc:  # peer gone or not reading: its loss, not ours
            log.debug("broker: dropped a reply to a front peer: %s", exc)

    def send_relay(self, frames: list[bytes]) -> None:
        if self._relay is not None:
            self._relay.send_reply(frames)

    def accept_oneway(self, peer: bytes, cid: bytes, relay: bool) -> None:
        waiting = self._acks.get((peer, relay))
        if waiting is None:
            self._acks[(peer, relay)] = [cid]
        else:
            waiting.append(cid)

    def metrics(self, top: int) -> dict[str, Any]:
        """The loop's figures for a scrape (in the loop): table, message path, peers, lanes."""
        figures = self.table.reports.metrics(top)
        figures.update(self._peers.counts())
        figures["lanes"] = self._lanes.held()
        figures["rejected_requests"] = self.rejected_requests
        return figures

    def _send_acks(self) -> None:
        """One frame set per peer for the oneway sends this pass accepted."""
        acks, self._acks = self._acks, {}
        for (peer, relay), cids in acks.items():
            frames = protocol.acks_frames(cids) if len(cids) > 1 else protocol.ok_frames(cids[0], protocol.ACCEPTED)
            if relay:
                self.send_relay([peer, *frames])
            else:
                self.send_front([peer, *frames])

    def send_back(self, frames: list[bytes]) -> None:
        try:
            send_frames(self._back, frames, NOBLOCK)
        except zmq.ZMQError as exc:
            log.debug("broker: could not reach worker %r: %s", frames[0], exc)

    def _fail(self, origin: Origin | None, exc: BaseException) -> None:
        if origin is not None:
            origin.fail(self, error_to_wire(exc))

    # -- front ------------------------------------------------------------------------------
    def _on_relayed(self, frames: list[bytes]) -> None:
        self._on_front(frames, relay=True)

    def _on_front(self, frames: list[bytes], relay: bool = False) -> None:
        try:
            request = protocol.parse_request(frames)
        except protocol.BadRequest as exc:
            self.rejected_requests += 1
            if exc.cid is not None:
                FrontOrigin(frames[0], exc.cid, relay).fail(self, error_to_wire(exc))
            return
        origin = FrontOrigin(request.peer, request.cid, relay)
        if self._api_key_bytes is not None and not _key_matches(request.header.get("key"), self._api_key_bytes):
            self.rejected_requests += 1
            self._fail(origin, AuthenticationError(f"node {self.node_name}: missing or wrong API key"))
            return
        op = request.op
        if op == "send":
            self._front_send(request, origin)
        elif op == "ping":
            origin.ok(self, [], protocol.pack({"name": self.node_name, "version": protocol.PROTOCOL_VERSION}))
        elif op == "mailbox":
            try:
                status = self.table.require(request.header["agent"]).status().to_wire()
            except PagletError as exc:
                self._fail(origin, exc)
                return
            origin.ok(self, [], protocol.pack({"mailbox": status}))
        else:
            lane = (
                self._reads if op in READ_OPS and not fans_out(request)
                else self._transfers if op in TRANSFER_OPS
                else self._ops
            )  # fmt: skip
            self._off_loop(origin, lambda: self._services.handle_front(request), lane)

    def _front_send(self, request: protocol.Request, origin: FrontOrigin) -> None:
        header = request.header
        priority = header.get("prio", 5)
        if not 0 <= priority <= 13:
            self._fail(origin, protocol.BadRequest(f"priority {priority} out of range 0..13", request.cid))
            return
        delivery = Delivery(
            request.payload[0],
            bool(header.get("oneway")),
            origin,
            priority,
            header.get("mid"),
            header.get("fwd") is True,
            activate=header.get("act") is not False,
            no_delay=header.get("nodelay") is True,
        )
        if not self.table.route(header["agent"], delivery):  # may wait for the node's start or a paglet
            self._off_loop(origin, lambda: self._services.route_unknown(request), self._ops)

    # -- back -------------------------------------------------------------------------------
    def _on_back(self, frames: list[bytes]) -> None:
        split = back.split_from_worker(frames)
        if split is None:
            return
        ident, op, cid, rest = split
        slot = self.table.slot_for_ident(ident)
        if slot is None:
            if op == back.READY:  # a leftover worker of a paglet that is gone
                self.send_back(back.exit_frames(ident))
            return
        if op == back.HCALL:
            self._on_host_call(slot, ident, cid, rest)
        elif op == back.EVENT:
            self._on_event(slot, rest)
        elif op != back.HB:
            self.table.on_worker_frame(slot, ident, op, cid, rest)

    def _on_host_call(self, slot: WorkerSlot, ident: bytes, cid: bytes, rest: list[bytes]) -> None:
        origin = BackOrigin(ident, cid)
        try:
            call = back.parse_host_call(rest)
        except PagletError as exc:
            self._fail(origin, exc)
            return
        agent_id, header, payload = slot.agent_id, call.header, call.payload
        if call.op == "crashed":  # its code raised a BaseException: every caller hears now, then it exits
            self.table.crash_reported(slot, header["reason"])
            origin.ok(self, [])
            return
        if call.op == "send" and header.get("local"):  # paglet to paglet on this node: straight to the table
            prio = header.get("prio")
            delivery = Delivery(
                payload[0],
                bool(header.get("oneway")),
                origin,
                prio if prio is not None and 0 <= prio <= 13 else 5,
                header.get("mid"),
            )
            if self.table.route(header["agent"], delivery):
                return
        self._off_loop(
            origin, lambda: ({}, self._services.handle_host_call(agent_id, ident, header, payload)), self._calls
        )

    # -- peer callbacks (in the loop) -------------------------------------------------------
    def _moved(self, agent_id: str, address: str) -> None:
        self.table.moved(agent_id, address)


def _key_matches(offered: Any, expected: bytes) -> bool:
    if not isinstance(offered, str):
        return False
    return hmac.compare_digest(offered.encode(), expected)


__all__ = ["Broker", "BrokerServices"]

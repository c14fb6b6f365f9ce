"""paglets-relay: a ROUTER-to-ROUTER proxy for nodes that cannot accept connections.

A node behind NAT dials out to the relay with a DEALER and says ``hello``
every heartbeat (that is its registration too). A name belongs to the
connection that registered it with the name's registration secret
(:class:`~paglets.relay.owners.NameOwners` remembers a hash of it, durably)
and the relay's API key if it has one; a hello that does not prove the name
is answered ``refused`` with the reason, and that connection gets nothing.
Clients, proxies and peer nodes send ``RLY1 to NAME`` + an ordinary front
request; the relay passes it on to the registered connection as ``RLY1 from
CLIENT`` + the request and sends that connection's answer back to the client
as is — an answer only from the registered connection, only to a client that
asked that node. ``CLIENT`` is a random token per (client, node) pair, never
the client's routing id: libzmq's ROUTER aborts the process when a peer
claims the routing id it would give the next anonymous connection, and the
ids it gives are consecutive, so none may leak. The relay never decodes the requests it passes, except to
answer or queue for a node that is away. A plain front request (no ``RLY1``: a client took the relay's
address for a node's) is answered at once with an error that says how to address a node behind it.

A node silent for three heartbeats is *away*. A ``send`` for an away node
(within ``queue_ttl`` of its last sign of life) is written to that node's
on-disk queue and answered once fsync'd (a oneway send is accepted; a sync
send gets ``MessageQueuedError``, as no handler ran); when the node says hello again
the queue goes to it in order, marked as forwarded so a redelivery after a
relay restart is dropped by the node. Anything else for an away or unknown
node fails with ``NodeUnreachableError``.

State owned by the loop thread: the node table (by name and by connection),
the tokens of recent (client, node) pairs and the count of queued deliveries still
unanswered; :class:`~paglets.relay.queues.NodeQueues` and
:class:`~paglets.relay.owners.NameOwners` own the files.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import zmq

from paglets.binding import advertised_address, resolve_binding
from paglets.core.errors import (
    AuthenticationError,
    MessageQueuedError,
    NodeUnreachableError,
    OverloadedError,
    ProtocolError,
)
from paglets.exposure import check_exposure, exposure
from paglets.loops import LoopChannel, LoopThread
from paglets.relay import metrics as relay_metrics
from paglets.relay.nodes import NodeEntry, NodeTable
from paglets.relay.owners import NameOwners
from paglets.relay.queues import NodeQueues
from paglets.wire import protocol, relay
from paglets.wire.errors import error_to_wire
from paglets.wire.frames import NOBLOCK, has_input, recv_frames, send_frames

log = logging.getLogger("paglets.relay")
QUEUED = b"\x00relay-queue-"  # client id of queued deliveries: their answers end here
MAX_NAMES = 10_000  # names the relay will own at once (each is a file)
MAX_ASKED = 100_000  # recent (client, node) pairs and their tokens: a node answers only a client that asked it
REFUSAL_LOG_EVERY = 60.0  # seconds between two warnings about refused hellos for one name


class RelayServer:
    """The relay: one loop thread owning the ROUTER, plus a small HTTP health endpoint."""

    def __init__(
        self,
        *,
        name: str = "relay",
        bind: str = "127.0.0.1",
        port: int = 7800,
        http_port: int | None = 0,
        data_dir: str | Path = ".",
        api_key: str | None = None,
        heartbeat_interval: float = 0.5,
        queue_limit: int = 10_000,
        queue_ttl: float = 300.0,
        max_message_size: int = protocol.DEFAULT_MAX_MESSAGE_SIZE,
        curve: Any = None,
        insecure: bool = False,
        max_names: int = MAX_NAMES,
    ):
        self.name = name
        self.insecure = check_exposure(  # refused here, before anything binds (see paglets.exposure)
            f"relay {name}", exposure(bind), credentials=bool(api_key) or curve is not None, insecure=insecure,
            at_risk="register under any node's name and reach every node behind it",
        )  # fmt: skip
        self.bind = bind
        self.port = port
        self.http_port = http_port
        self.data_dir = Path(data_dir).expanduser()
        self._api_key = api_key.encode() if api_key else None
        self._heartbeat = heartbeat_interval
        self._away_after = heartbeat_interval * 3
        self._max_message_size = max_message_size
        self._curve = curve
        self.queues = NodeQueues(self.data_dir, limit=queue_limit, ttl=queue_ttl)
        self.nodes = NodeTable(NameOwners(self.data_dir, limit=max_names), relay_name=name, api_key=self._api_key)
        self.epoch = uuid.uuid4().hex
        self.address = ""
        self.http_address: str | None = None
        self._ctx = zmq.Context.instance()
        self._channel = LoopChannel(self._ctx, f"relay-{name}")
        self._tokens: OrderedDict[tuple[bytes, str], bytes] = OrderedDict()  # (client, node) -> token
        self._pairs: dict[bytes, tuple[bytes, str]] = {}  # token -> (client, node)
        self._refusals_logged: dict[str, float] = {}
        self._snapshot: dict[str, Any] = {}
        self._snapshot_lock = threading.Lock()
        self._router: zmq.Socket | None = None
        self._thread = LoopThread(f"paglets-relay-{name}", self._open, self._serve, self._close)
        self._http: ThreadingHTTPServer | None = None
        self._stop = False

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.nodes.owners.open()
        self.queues.open()
        try:
            self._thread.start()
        except BaseException:
            self.queues.close()
            raise
        if self.http_port is not None:
            self._start_http()
        log.info("relay %s serving on %s", self.name, self.address)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread.alive:
            self._channel.post(self._request_stop)
            self._thread.join(5)
        self.queues.close()

    def _request_stop(self) -> None:
        self._stop = True

    def _close(self) -> None:
        self._channel.close()
        self._router.close(0)

    def _open(self) -> None:
        router = self._ctx.socket(zmq.ROUTER)
        router.linger = 0
        router.router_mandatory = 1
        router.router_handover = 0  # a routing id stays with its connection: nobody takes over another's
        router.maxmsgsize = self._max_message_size
        router.sndhwm = router.rcvhwm = 100_000
        if self._curve is not None:
            self._curve.serve(router)
        try:
            if self.port == 0:
                port = router.bind_to_random_port(f"tcp://{self.bind}")
            else:
                router.bind(f"tcp://{self.bind}:{self.port}")
                port = self.port
            self._channel.bind()
        except BaseException:
            router.close(0)
            raise
        self.port = port
        self.address = advertised_address(resolve_binding(self.bind, port=port), port)
        self._router = router

    def _serve(self) -> None:
        router, ctrl = self._router, self._channel.pull
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(ctrl, zmq.POLLIN)
        next_beat = time.monotonic()
        while not self._stop:
            for sock, _event in poller.poll(max(0.0, next_beat - time.monotonic()) * 1000):
                if sock is ctrl:
                    self._channel.drain()
                    continue
                for _ in range(64):
                    if not has_input(router):
                        break
                    frames = recv_frames(router)
                    try:
                        self._route(frames)
                    except Exception:  # one bad frame set must not stop the relay
                        log.exception("relay: error handling a frame set")
            now = time.monotonic()
            if now >= next_beat:
                self._mark_away(now)
                self._publish()
                next_beat = now + self._heartbeat

    def _send(self, frames: list[bytes]) -> bool:
        try:
            send_frames(self._router, frames, NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    # -- routing ---------------------------------------------------------------------------
    def _route(self, frames: list[bytes]) -> None:
        try:
            frame = relay.parse_at_relay(frames)
        except ProtocolError:
            self._not_a_node(frames)
            return
        if isinstance(frame, relay.ToNode):
            self._to_node(frame.client, frame.node, frame.request)
        elif isinstance(frame, relay.NodeReply):
            self._to_client(frame.source, frame.client, frame.reply)
        else:
            self._hello(frames[0], frame)

    def _not_a_node(self, frames: list[bytes]) -> None:
        """A plain front request (someone took the relay's address for a node's): say what answered, at once.

        Anything else that is not a relay frame set, and a request without a
        usable correlation id, gets no answer.
        """
        if frames[1:2] != [protocol.MAGIC]:
            return
        try:
            parsed = protocol.parse_request(frames)
            cid, op = parsed.cid, parsed.op
        except protocol.BadRequest as exc:
            if exc.cid is None:
                return
            cid, op = exc.cid, ""
        self._send([frames[0], *protocol.err_frames(cid, relay.not_a_node_error(op))])

    def _hello(self, source: bytes, hello: relay.Hello) -> None:
        try:
            entry, returning = self.nodes.hello(source, hello)
        except (AuthenticationError, OverloadedError) as exc:
            self._refuse(source, hello.name, str(exc))
            return
        self._send([source, *relay.welcome_frames(self.name, self.epoch)])
        if returning:
            self._deliver_queue(entry)

    def _refuse(self, source: bytes, name: str, reason: str) -> None:
        """Tell a connection its hello was refused; warn the operator, at most once a minute per name."""
        self._send([source, *relay.refused_frames(reason)])
        now = time.monotonic()
        if now - self._refusals_logged.get(name, float("-inf")) >= REFUSAL_LOG_EVERY:
            if len(self._refusals_logged) >= MAX_NAMES:
                self._refusals_logged.clear()
            self._refusals_logged[name] = now
            log.warning("relay: refused a hello for node %s: %s", name, reason)

    def _deliver_queue(self, entry: NodeEntry) -> None:
        """Send everything queued for a node that is back, in order."""
        if not self.queues.depth(entry.name):
            return
        pending = self.queues.pending(entry.name)
        entry.unanswered = 0
        for index, request in enumerate(pending):
            client = QUEUED + index.to_bytes(4, "big")
            if not self._send([entry.ident, *relay.from_frames(client, request)]):
                entry.connected = False
                return
            entry.unanswered += 1
        if not pending:
            self.queues.clear(entry.name)

    def _to_node(self, client: bytes, name: str, request: list[bytes]) -> None:
        entry = self.nodes.get(name)
        if entry is not None and entry.connected:
            if self._send([entry.ident, *relay.from_frames(self._token(client, name), request)]):
                return
            entry.connected = False  # the ROUTER lost it: away from now on
        self._for_away_node(client, name, entry, request)

    def _for_away_node(self, client: bytes, name: str, entry: NodeEntry | None, request: list[bytes]) -> None:
        try:
            parsed = protocol.parse_request([client, *request])
        except protocol.BadRequest as exc:
            if exc.cid is not None:
                self._send([client, *protocol.err_frames(exc.cid, error_to_wire(exc))])
            return
        recent = entry is not None and time.monotonic() - entry.last_seen < self.queues.ttl
        if parsed.op != "send" or not recent:
            state = "is not connected to" if entry is None else "is away from"
            error = NodeUnreachableError(f"node {name} {state} relay {self.name}", address=name, op=parsed.op)
            self._send([client, *protocol.err_frames(parsed.cid, error_to_wire(error))])
            return
        self._queue(client, name, parsed)

    def _queue(self, client: bytes, name: str, parsed: protocol.Request) -> None:
        # A redelivery after a relay restart is dropped by the node (by message id: one is made if missing).
        header = dict(parsed.header, fwd=True, mid=parsed.header.get("mid") or uuid.uuid4().hex)
        frames = protocol.request_frames("send", parsed.cid, header, tuple(parsed.payload))
        try:
            written = self.queues.append(name, frames)
        except OverloadedError as exc:
            self._send([client, *protocol.err_frames(parsed.cid, error_to_wire(exc))])
            return
        cid = parsed.cid
        if parsed.header.get("oneway"):
            answer_frames = protocol.ok_frames(cid, {"accepted": True, "queued": "relay"})
        else:  # no handler ran: a sync sender learns the message waits, never a reply the handler did not give
            answer_frames = protocol.err_frames(cid, error_to_wire(self._queued_error(name, header)))

        def answer(future: Any) -> None:
            if future.exception() is not None:
                wire = error_to_wire(future.exception())
                self._channel.post(lambda: self._send([client, *protocol.err_frames(cid, wire)]))
                return
            self._channel.post(lambda: self._send([client, *answer_frames]))

        written.add_done_callback(answer)

    def _queued_error(self, name: str, header: dict[str, Any]) -> MessageQueuedError:
        mid = header["mid"]
        return MessageQueuedError(
            f"message {mid} for paglet {header.get('agent')!r} was queued at relay {self.name}: node {name} "
            "is away; it handles the message when it is back, and that reply goes to no one",
            message_id=mid,
        )

    def _token(self, client: bytes, name: str) -> bytes:
        """The token node ``name`` knows ``client`` by (never \\x00-led: not a queued delivery's)."""
        pair = (client, name)
        token = self._tokens.get(pair)
        if token is not None:
            self._tokens.move_to_end(pair)
            return token
        token = self._tokens[pair] = b"c" + secrets.token_bytes(11)
        self._pairs[token] = pair
        if len(self._tokens) > MAX_ASKED:
            _old_pair, old_token = self._tokens.popitem(last=False)
            del self._pairs[old_token]
        return token

    def _to_client(self, source: bytes, token: bytes, reply: list[bytes]) -> None:
        entry = self.nodes.on_connection(source)
        if entry is None:
            return  # only the registered connection of a node answers in its name
        entry.last_seen = time.monotonic()
        if token.startswith(QUEUED):
            entry.unanswered -= 1
            if entry.unanswered <= 0:
                entry.unanswered = 0
                self.queues.clear(entry.name)
            return
        pair = self._pairs.get(token)
        if pair is not None and pair[1] == entry.name:  # a node answers only clients that asked it
            self._send([pair[0], *reply])

    def _mark_away(self, now: float) -> None:
        for entry in self.nodes:
            if entry.connected and now - entry.last_seen > self._away_after:
                entry.connected = False
                log.info("relay: node %s is away", entry.name)

    # -- health -----------------------------------------------------------------------------
    def _publish(self) -> None:
        now = time.monotonic()
        nodes = [
            {
                "name": entry.name,
                "connected": entry.connected,
                "last_seen_s": round(now - entry.last_seen, 3),
                "queue_depth": self.queues.depth(entry.name),
            }
            for entry in sorted(self.nodes, key=lambda e: e.name)
        ]
        for name, depth in self.queues.depths().items():
            if name not in self.nodes:
                nodes.append({"name": name, "connected": False, "last_seen_s": None, "queue_depth": depth})
        with self._snapshot_lock:
            self._snapshot = {"name": self.name, "address": self.address, "epoch": self.epoch, "nodes": nodes}

    def health(self) -> dict[str, Any]:
        with self._snapshot_lock:
            snapshot = dict(self._snapshot)
        snapshot.setdefault("name", self.name)
        snapshot["pid"] = os.getpid()
        snapshot["insecure"] = self.insecure
        return snapshot

    def _start_http(self) -> None:
        relay_server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "paglets-relay"
            sys_version = ""

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path not in ("/health", "/metrics"):
                    self._answer(404, {"error": {"type": "ProtocolError", "message": "unknown route"}})
                    return
                if relay_server._api_key is not None:
                    offered = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                    if not _key_matches(offered, relay_server._api_key):
                        self._answer(401, {"error": {"type": "AuthenticationError", "message": "missing or wrong key"}})
                        return
                if path == "/metrics":
                    self._send(
                        200, "text/plain; version=0.0.4; charset=utf-8", relay_metrics.render(relay_server.health())
                    )
                    return
                self._answer(200, relay_server.health())

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                self._send(status, "application/json", json.dumps(body).encode())

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("relay http: " + fmt, *args)

        self._http = ThreadingHTTPServer((self.bind, self.http_port or 0), Handler)
        self._http.daemon_threads = True
        self.http_address = f"http://{self.bind}:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, name="paglets-relay-http", daemon=True).start()


def _key_matches(offered: Any, expected: bytes) -> bool:
    return isinstance(offered, str) and hmac.compare_digest(offered.encode(), expected)


__all__ = ["RelayServer"]

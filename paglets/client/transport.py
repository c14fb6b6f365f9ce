"""Request/reply over DEALER sockets: the bottom of the client SDK.

Two ways to talk to a node, both one socket per thread:

* :func:`channel` — the calling thread's own DEALER to a node address. A
  synchronous request sends and waits on that socket directly, so a sync call
  costs no thread hand-off. Oneway sends are pipelined on it: the node acks
  each (several to a frame set under load), and the channel keeps at most
  ``ONEWAY_WINDOW`` acks outstanding, reading them every
  ``ACK_CHECK_EVERY`` sends and on ``flush``.
* :class:`Reactor` — one background thread per process that owns its own
  DEALERs and completes Futures (``send_future``, multicast).

Replies are matched by correlation id; a reply to a request that already
timed out is dropped.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from paglets.client.security import CurveIdentity
from paglets.core.errors import NodeUnreachableError, PagletError, ProtocolError, RequestTimeoutError
from paglets.loops import LoopChannel
from paglets.wire import protocol
from paglets.wire.errors import error_from_wire
from paglets.wire.frames import NOBLOCK, read_waiting, recv_frames, send_frames

ONEWAY_WINDOW = 512
ACK_CHECK_EVERY = 16  # oneway sends between two looks for acks and refusals
CONNECT_TIMEOUT = 5.0
_local = threading.local()
_cid_counter = itertools.count(1)


_checked: dict[str, str] = {}


def check_address(address: str) -> str:
    """Normalise a node address ``tcp://HOST:PORT``; ValueError when it is not one."""
    known = _checked.get(address) if isinstance(address, str) else None
    if known is not None:
        return known
    if len(_checked) > 10_000:
        _checked.clear()
    _checked[address] = text = _parse_address(address)
    return text


ADDRESS_FORMS = "tcp://HOST:PORT or relay+tcp://HOST:PORT/NODE"


def _parse_address(address: str) -> str:
    if not isinstance(address, str):
        raise ValueError(f"node address must be a string, got {type(address).__name__}")
    text = address.strip().rstrip("/")
    relayed = text.startswith("relay+tcp://")
    if relayed:
        text, _, node = text[len("relay+") :].rpartition("/")
        if not protocol.AGENT_ID_PATTERN.match(node):
            raise ValueError(f"node address {address!r} must look like {ADDRESS_FORMS}")
    if not text.startswith("tcp://"):
        raise ValueError(f"node address {address!r} must look like {ADDRESS_FORMS}")
    host, sep, port = text[len("tcp://") :].rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"node address {address!r} must look like {ADDRESS_FORMS}")
    return f"relay+{text}/{node}" if relayed else text


def route(address: str) -> tuple[str, list[bytes]]:
    """Where to connect for a (checked) node address, and the frames that go before each request.

    A node behind a relay is reached by connecting to the relay and
    prefixing ``RLY1 to NAME``; the relay hands back the node's reply as is.
    """
    if not address.startswith("relay+"):
        return address, []
    endpoint, _, node = address[len("relay+") :].rpartition("/")
    return endpoint, [protocol.RELAY_MAGIC, protocol.RELAY_TO, node.encode()]


def _new_dealer(ctx: zmq.Context, endpoint: str, curve: CurveIdentity | None = None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    if curve is not None:
        curve.secure_client(sock)
    sock.linger = 0
    sock.immediate = 1  # never queue for a node we are not connected to
    sock.sndhwm = sock.rcvhwm = 100_000
    sock.reconnect_ivl = 100
    sock.reconnect_ivl_max = 2000
    sock.connect(endpoint)
    return sock


def _next_cid() -> bytes:
    return next(_cid_counter).to_bytes(8, "big")


def reply_value(reply: protocol.Reply) -> protocol.Reply:
    """Return an ok reply, or raise the error it carries."""
    if reply.ok:
        return reply
    raise error_from_wire(reply.header)


class Channel:
    """One thread's DEALER to one node."""

    def __init__(self, address: str, curve: CurveIdentity | None = None):
        self.address = address
        endpoint, self._prefix = route(address)
        self._sock = _new_dealer(zmq.Context.instance(), endpoint, curve)
        self._curve = curve is not None
        self._monitor: zmq.Socket | None = None
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN)
        self._oneway: dict[bytes, str] = {}
        self._oneway_failures: collections.deque[PagletError] = collections.deque(maxlen=100)

    def request(
        self,
        op: str,
        header: dict[str, Any],
        payload: tuple[bytes, ...],
        timeout: float,
        watch_connection: bool = False,
    ) -> protocol.Reply:
        """Send and wait for the reply; with ``watch_connection`` a dropped connection fails at once."""
        cid = _next_cid()
        monitor = self._connection_monitor() if watch_connection else None
        self._send(op, protocol.request_frames(op, cid, header, payload), timeout)
        deadline = time.monotonic() + timeout
        sock = self._sock
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._wait(sock, monitor, remaining, op):
                raise RequestTimeoutError(
                    f"no reply from {self.address} to {op!r} within {timeout:g} s", address=self.address, op=op
                )
            reply = self._receive()
            if reply is not None and reply.cid == cid:
                return reply

    def _wait(self, sock: zmq.Socket, monitor: zmq.Socket | None, seconds: float, op: str) -> bool:
        if monitor is None:
            return bool(self._poller.poll(seconds * 1000))  # a kept Poller: sock.poll() builds one per call
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        ready = dict(poller.poll(seconds * 1000))
        if sock in ready:
            return True
        if monitor in ready and _drain_events(monitor):
            raise NodeUnreachableError(
                f"{self.address} closed the connection while {op!r} was waiting for a reply",
                address=self.address,
                op=op,
            )
        return bool(ready)

    def _connection_monitor(self) -> zmq.Socket:
        """A monitor of this channel's connection, emptied of events older than the request."""
        if self._monitor is None:
            self._monitor = self._sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        _drain_events(self._monitor)
        return self._monitor

    def send_oneway(self, header: dict[str, Any], payload: tuple[bytes, ...], timeout: float) -> None:
        cid = _next_cid()
        self._send("send", protocol.request_frames("send", cid, header, payload), timeout)
        self._oneway[cid] = header.get("agent", "")
        if len(self._oneway) % ACK_CHECK_EVERY == 0:  # acks come several to a frame set; no need to look each time
            self._collect_acks(0)
        if len(self._oneway) >= ONEWAY_WINDOW:
            self._collect_acks(timeout, until=ONEWAY_WINDOW // 2)
        self.raise_oneway_failure()

    def flush(self, timeout: float) -> None:
        """Wait until the node acked every oneway send of this thread."""
        self._collect_acks(timeout, until=0)
        self.raise_oneway_failure()

    def raise_oneway_failure(self) -> None:
        if self._oneway_failures:
            raise self._oneway_failures.popleft()

    def _collect_acks(self, timeout: float, until: int | None = None) -> None:
        deadline = time.monotonic() + timeout
        while self._oneway:
            if until is not None and len(self._oneway) <= until:
                return
            remaining = deadline - time.monotonic()
            if not self._poller.poll(max(0.0, remaining) * 1000):
                if until is None:
                    return
                raise RequestTimeoutError(
                    f"{self.address} did not accept {len(self._oneway)} oneway messages within {timeout:g} s",
                    address=self.address,
                    op="send",
                )
            self._receive()

    def _send(self, op: str, frames: list[bytes], timeout: float) -> None:
        sock = self._sock
        if self._prefix:
            frames = [*self._prefix, *frames]
        try:
            send_frames(sock, frames, NOBLOCK)
            return
        except zmq.Again:
            pass
        sock.sndtimeo = int(min(timeout, CONNECT_TIMEOUT) * 1000)
        try:
            send_frames(sock, frames)
        except zmq.Again:
            hint = " (with CurveZMQ this also happens when the node does not accept our key)" if self._curve else ""
            raise NodeUnreachableError(
                f"cannot reach node {self.address} for {op!r}: no connection within "
                f"{min(timeout, CONNECT_TIMEOUT):g} s{hint}",
                address=self.address,
                op=op,
            ) from None
        finally:
            sock.sndtimeo = -1

    def _receive(self) -> protocol.Reply | None:
        """Read one frame set: a reply to a request (returned), or oneway acks (taken note of)."""
        frames = recv_frames(self._sock)
        try:
            if frames[1:2] == [protocol.ACKS]:
                for ack in protocol.parse_replies(frames):
                    self._oneway.pop(ack.cid, None)
                return None
            reply = protocol.parse_reply(frames)
        except ProtocolError:
            return None
        agent = self._oneway.pop(reply.cid, None)
        if agent is not None:
            if not reply.ok:
                self._oneway_failures.append(error_from_wire(reply.header))
            return None
        return reply

    def close(self) -> None:
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(0)
        self._sock.close(0)


def _drain_events(monitor: zmq.Socket) -> bool:
    """Read every pending monitor event; True if any was a disconnect."""
    dropped = False
    while True:
        try:
            event = recv_monitor_message(monitor, zmq.NOBLOCK)
        except zmq.Again:
            return dropped
        dropped = dropped or event["event"] == zmq.EVENT_DISCONNECTED


def channel(address: str, curve: CurveIdentity | None = None) -> Channel:
    """The calling thread's channel to ``address`` with this Curve identity (created on first use)."""
    channels: dict[tuple[str, bytes], Channel] | None = getattr(_local, "channels", None)
    if channels is None:
        channels = _local.channels = {}
    key = (address, curve.cache_key() if curve is not None else b"")
    found = channels.get(key)
    if found is None:
        found = channels[key] = Channel(address, curve)
    return found


class Reactor:
    """A background thread that completes Futures for requests to any node."""

    _instance: Reactor | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def shared(cls) -> Reactor:
        with cls._instance_lock:
            if cls._instance is None or not cls._instance._thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        self._ctx = zmq.Context.instance()
        self._channel = LoopChannel(self._ctx, "client-reactor")
        self._sockets: dict[tuple[str, bytes], zmq.Socket] = {}
        self._poller = zmq.Poller()
        self._waiting: dict[bytes, tuple[Future[protocol.Reply], str, str]] = {}
        self._deadlines: list[tuple[float, bytes]] = []
        self._pending_sends: collections.deque[tuple[float, zmq.Socket, list[bytes], bytes]] = collections.deque()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paglets-client-reactor", daemon=True)
        self._thread.start()
        self._ready.wait()

    def submit(
        self,
        address: str,
        op: str,
        header: dict[str, Any],
        payload: tuple[bytes, ...],
        timeout: float,
        curve: CurveIdentity | None = None,
    ) -> Future[protocol.Reply]:
        future: Future[protocol.Reply] = Future()
        cid = _next_cid()
        endpoint, prefix = route(address)
        frames = [*prefix, *protocol.request_frames(op, cid, header, payload)]
        self._channel.post(lambda: self._send(address, endpoint, curve, op, cid, frames, future, timeout))
        return future

    def _send(
        self,
        address: str,
        endpoint: str,
        curve: CurveIdentity | None,
        op: str,
        cid: bytes,
        frames: list[bytes],
        future: Future[Any],
        timeout: float,
    ) -> None:
        key = (address, curve.cache_key() if curve is not None else b"")
        sock = self._sockets.get(key)
        if sock is None:
            sock = self._sockets[key] = _new_dealer(self._ctx, endpoint, curve)
            self._poller.register(sock, zmq.POLLIN)
        self._waiting[cid] = (future, address, op)
        heapq.heappush(self._deadlines, (time.monotonic() + timeout, cid))
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            # Not connected (yet): the deadline decides, as for a lost reply.
            self._pending_sends.append((time.monotonic() + min(timeout, CONNECT_TIMEOUT), sock, frames, cid))

    def _run(self) -> None:
        pull = self._channel.bind()
        self._poller.register(pull, zmq.POLLIN)
        self._ready.set()
        while True:
            timeout = self._next_timeout()
            for sock, _ in self._poller.poll(timeout):
                if sock is pull:
                    self._channel.drain()
                else:
                    self._read(sock)
            self._retry_sends()
            self._expire()

    def _next_timeout(self) -> float | None:
        if self._pending_sends:
            return 10
        if not self._deadlines:
            return None
        return max(0.0, (self._deadlines[0][0] - time.monotonic()) * 1000)

    def _read(self, sock: zmq.Socket) -> None:
        read_waiting(sock, self._complete, limit=1000)

    def _complete(self, frames: list[bytes]) -> None:
        try:
            replies = protocol.parse_replies(frames)
        except ProtocolError:
            return
        for reply in replies:
            waiting = self._waiting.pop(reply.cid, None)
            if waiting is not None and not waiting[0].done():
                waiting[0].set_result(reply)

    def _retry_sends(self) -> None:
        now = time.monotonic()
        for _ in range(len(self._pending_sends)):
            give_up_at, sock, frames, cid = self._pending_sends.popleft()
            if cid not in self._waiting:
                continue
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                if now < give_up_at:
                    self._pending_sends.append((give_up_at, sock, frames, cid))
                else:
                    future, address, op = self._waiting.pop(cid)
                    _fail(
                        future,
                        NodeUnreachableError(
                            f"cannot reach node {address} for {op!r}: no connection", address=address, op=op
                        ),
                    )

    def _expire(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, cid = heapq.heappop(self._deadlines)
            waiting = self._waiting.pop(cid, None)
            if waiting is not None:
                future, address, op = waiting
                _fail(future, RequestTimeoutError(f"no reply from {address} to {op!r} in time", address=address, op=op))


def _fail(future: Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def then(future: Future[Any], convert: Callable[[Any], Any]) -> Future[Any]:
    """A Future completing with ``convert(result)`` (or the failure) of ``future``."""
    out: Future[Any] = Future()

    def done(source: Future[Any]) -> None:
        exc = source.exception()
        if exc is not None:
            out.set_exception(exc)
            return
        try:
            out.set_result(convert(source.result()))
        except BaseException as conv_exc:
            out.set_exception(conv_exc)

    future.add_done_callback(done)
    return out


__all__ = ["Channel", "Reactor", "channel", "check_address", "reply_value", "then"]

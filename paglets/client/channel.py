"""A thread's own DEALER to a node: synchronous requests and pipelined oneway sends.

A synchronous request sends and waits on the calling thread's socket
directly, so a sync call costs no thread hand-off. Oneway sends are
pipelined: the node acks each (several to a frame set under load), and the
channel keeps at most ``ONEWAY_WINDOW`` acks outstanding, reading them every
``ACK_CHECK_EVERY`` sends and on ``flush``. Replies are matched by correlation
id; a reply to a request that already timed out is dropped.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from paglets.client.addresses import route
from paglets.client.dealer import CONNECT_TIMEOUT, new_dealer, next_cid, reply_error
from paglets.client.security import CurveIdentity
from paglets.core.errors import NodeUnreachableError, PagletError, ProtocolError, RequestTimeoutError
from paglets.wire import protocol
from paglets.wire.frames import NOBLOCK, recv_frames, send_frames

ONEWAY_WINDOW = 512
CHANNELS_PER_THREAD = 64  # channels one thread keeps open (least recently used closed first)
ACK_CHECK_EVERY = 16  # oneway sends between two looks for acks and refusals
_local = threading.local()


class Channel:
    """One thread's DEALER to one node."""

    def __init__(self, address: str, curve: CurveIdentity | None = None):
        self.address = address
        endpoint, self._prefix = route(address)
        self._sock = new_dealer(zmq.Context.instance(), endpoint, curve)
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
        cid = next_cid()
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
        cid = next_cid()
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
                self._oneway_failures.append(reply_error(reply.header, self.address, "send"))
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
    """The calling thread's channel to ``address`` with this Curve identity (created on first use).

    A thread keeps at most ``CHANNELS_PER_THREAD`` of them (addresses can come
    from gossip, so from outside): the least recently used one is closed.
    """
    channels: collections.OrderedDict[tuple[str, bytes], Channel] | None = getattr(_local, "channels", None)
    if channels is None:
        channels = _local.channels = collections.OrderedDict()
    key = (address, curve.cache_key() if curve is not None else b"")
    found = channels.get(key)
    if found is None:
        found = channels[key] = Channel(address, curve)
        if len(channels) > CHANNELS_PER_THREAD:
            _key, oldest = channels.popitem(last=False)
            oldest.close()
    else:
        channels.move_to_end(key)
    return found


__all__ = ["ACK_CHECK_EVERY", "CHANNELS_PER_THREAD", "ONEWAY_WINDOW", "Channel", "channel"]

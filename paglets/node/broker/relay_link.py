"""A node's own connection to a relay, when it cannot accept connections (NAT).

Owned by the broker thread. The node dials out with a DEALER (a fresh
random routing id per socket: the relay trusts none) and says ``hello`` with
its name and registration secret every heartbeat; the relay answers
``welcome``, or ``refused`` and why — logged as an ERROR each time, the next
hello backing off. The secret lives in the node's data directory
(:func:`registration_secret`), so a restarted node proves its name again.
Requests arrive as ``RLY1 from CLIENT`` + a front request and go through the
broker like any other; answers go back as ``RLY1 reply CLIENT``. Three
heartbeats without an answer mean the relay is gone: the link drops its
socket and dials again, backing off exponentially up to ``MAX_BACKOFF``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from paglets.core.errors import ProtocolError
from paglets.persistence.journal import fsync_dir
from paglets.wire import relay
from paglets.wire.frames import NOBLOCK, read_waiting, send_frames

log = logging.getLogger("paglets.relay_link")
MAX_BACKOFF = 5.0
SECRET_FILE = "relay-secret"


def registration_secret(data_dir: Path) -> str:
    """The node's relay registration secret: read from ``data_dir``, made (0600, fsync'd) the first time."""
    path = data_dir / SECRET_FILE
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        secret = ""
    low, high = relay.SECRET_CHARS
    if low <= len(secret) <= high:
        return secret
    if secret:
        raise ValueError(f"{path} does not hold a relay registration secret ({low}-{high} characters)")
    secret = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".tmp-{SECRET_FILE}-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secret.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_dir(data_dir)
    return secret


class RelayLink:
    """The broker's DEALER to its relay, with heartbeats and reconnects."""

    def __init__(
        self,
        ctx: zmq.Context,
        poller: zmq.Poller,
        endpoint: str,
        name: str,
        *,
        api_key: str | None,
        heartbeat: float,
        secret: str | None = None,
        secure: Callable[[zmq.Socket], None] | None = None,
    ):
        """``secret``: the registration secret (:func:`registration_secret`); without one the
        node makes one for this process only, and cannot take its name back after a restart."""
        self._ctx = ctx
        self._poller = poller
        self.endpoint = endpoint
        self._name = name
        self._hello = relay.hello_frames(name, secret or secrets.token_urlsafe(32), api_key)
        self._heartbeat = heartbeat
        self._secure = secure
        self.sock: zmq.Socket | None = None
        self.connected = False
        self._last_welcome = 0.0
        self._next_hello = 0.0
        self._backoff = heartbeat
        self._retry_at = 0.0
        self.epoch: str | None = None
        self.answered = threading.Event()  # the relay welcomed or refused us at least once
        self._opened = False  # not before the node is ready to answer

    def open(self) -> None:
        self._opened = True
        sock = self._ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.identity = b"n" + secrets.token_bytes(15)  # unguessable, never \x00-led: nobody can pre-empt it
        sock.sndhwm = sock.rcvhwm = 100_000
        sock.reconnect_ivl = 100
        sock.reconnect_ivl_max = int(MAX_BACKOFF * 1000)
        if self._secure is not None:
            self._secure(sock)
        sock.connect(self.endpoint)
        self._poller.register(sock, zmq.POLLIN)
        self.sock = sock
        now = time.monotonic()
        self._last_welcome = now  # give the first hello three beats to be answered
        self._say_hello(now)

    def close(self) -> None:
        if self.sock is not None:
            self._poller.unregister(self.sock)
            self.sock.close(0)
            self.sock = None
        self.connected = False

    def owns(self, sock: zmq.Socket) -> bool:
        return sock is self.sock

    def read(self, handle_request: Callable[[list[bytes]], None]) -> None:
        """Hand each relayed request (``[client, *request]``) to the broker."""

        def one(frames: list[bytes]) -> None:
            try:
                frame = relay.parse_at_node(frames)
            except ProtocolError:
                return
            if isinstance(frame, relay.FromClient):
                handle_request([frame.client, *frame.request])
            elif isinstance(frame, relay.Refused):
                self._refused(frame)
            else:
                self._welcomed(frame)

        read_waiting(self.sock, one)

    def _welcomed(self, welcome: relay.Welcome) -> None:
        if not self.connected:
            log.info("node %s: connected to relay %s", self._name, self.endpoint)
        self.connected = True
        self.epoch = welcome.epoch
        self._last_welcome = time.monotonic()
        self._backoff = self._heartbeat
        self.answered.set()

    def _refused(self, refused: relay.Refused) -> None:
        """The relay is there but will not have us: say why, every time, and ask again later."""
        log.error(
            "node %s: relay %s refused our registration: %s (asking again in %.1f s)",
            self._name, self.endpoint, refused.reason, self._backoff,
        )  # fmt: skip
        self.connected = False
        now = time.monotonic()
        self._next_hello = now + self._backoff
        self._last_welcome = self._next_hello  # an answer: not silent, only unwelcome
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        self.answered.set()

    def send_reply(self, frames: list[bytes]) -> None:
        """``frames`` is ``[client, *reply]``, as a ROUTER would take it."""
        if self.sock is None:
            return
        try:
            send_frames(self.sock, relay.reply_frames(frames[0], frames[1:]), NOBLOCK)
        except zmq.ZMQError as exc:
            log.debug("node %s: reply through the relay dropped: %s", self._name, exc)

    def tick(self, now: float) -> None:
        """Heartbeats; a silent relay means: drop the socket and dial again, backing off."""
        if self.sock is None:
            if self._opened and now >= self._retry_at:
                self.open()
            return
        if now - self._last_welcome > self._heartbeat * 3:
            if self.connected:
                log.warning("node %s: relay %s is silent; reconnecting", self._name, self.endpoint)
            self.close()
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            return
        if now >= self._next_hello:
            self._say_hello(now)

    def _say_hello(self, now: float) -> None:
        self._next_hello = now + self._heartbeat
        try:
            send_frames(self.sock, self._hello, NOBLOCK)
        except zmq.ZMQError:
            pass  # not connected yet; the next beat tries again


__all__ = ["RelayLink"]

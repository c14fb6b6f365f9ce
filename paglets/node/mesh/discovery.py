"""LAN discovery: nodes announce themselves by UDP multicast and learn of each other.

Every ``interval`` seconds a node sends one datagram to a multicast group
(``239.255.77.77:7790`` by default, TTL 1 so it stays on the local link)
and listens on the same group. The host adds every node it hears of as a
gossip peer (:meth:`paglets.node.mesh.registry.MeshRegistry.add_peer`); gossip does
the rest. Discovery only finds addresses: it never trusts an announcement
for anything but a peer URL to try.

The datagram is one msgpack map, at most ``MAX_DATAGRAM`` (2048) bytes:

    =========  ======  ==================================================
    key        type    meaning
    =========  ======  ==================================================
    ``magic``  str     ``"paglets-lan/1"``: protocol and version
    ``name``   str     the node's name (1-128 of ``A-Z a-z 0-9 . _ -``)
    ``url``    str     its address, ``tcp://HOST:PORT`` or
                       ``relay+tcp://HOST:PORT/NODE``
    =========  ======  ==================================================

Unknown keys are ignored (room for later versions). Anything else — not
msgpack, a wrong magic, too big, wrong types, another kind of URL — is
dropped with a debug log line. Nothing is ever unpickled.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from paglets.client.transport import check_address
from paglets.wire import protocol

log = logging.getLogger("paglets.discovery")

MAGIC = "paglets-lan/1"
DEFAULT_GROUP = "239.255.77.77"
DEFAULT_PORT = 7790
MAX_DATAGRAM = 2048
MAX_KNOWN = 1024  # nodes remembered: a flood of made-up names must not grow memory without end
STOP_TIMEOUT = 5.0


def _is_ipv4(text: Any) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Announcement:
    """One node's checked announcement."""

    name: str
    url: str

    def encode(self) -> bytes:
        return msgpack.packb({"magic": MAGIC, "name": self.name, "url": self.url}, use_bin_type=True)


def decode_announcement(data: bytes) -> Announcement | None:
    """The announcement in ``data``, or None (and a debug line) when it is not a valid one."""
    if len(data) > MAX_DATAGRAM:
        return _ignored(data, "too big")
    try:
        payload = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=False)
    except Exception as exc:  # msgpack raises several unrelated types for malformed input
        return _ignored(data, f"not msgpack ({type(exc).__name__})")
    if not isinstance(payload, dict) or payload.get("magic") != MAGIC:
        return _ignored(data, "not a paglets announcement")
    name, url = payload.get("name"), payload.get("url")
    if not isinstance(name, str) or not protocol.AGENT_ID_PATTERN.match(name):
        return _ignored(data, "bad node name")
    try:
        return Announcement(name, check_address(url))
    except ValueError:
        return _ignored(data, "url is not a node address")


def _ignored(data: bytes, reason: str) -> None:
    log.debug("ignored a discovery datagram of %d bytes: %s", len(data), reason)
    return None


class LanDiscovery:
    """Announces this node on a multicast group and reports the other nodes heard there.

    Owns one UDP socket and one daemon thread; ``on_found(name, url)`` runs
    on that thread, once per new (name, url) pair. :attr:`found` holds the
    latest url heard per node name. A machine without a multicast route
    does not stop the node: :meth:`start` still succeeds, the failure is
    logged once and kept in ``last_join_error`` / ``last_send_error``, and
    every round tries again (a laptop may join a network later).
    """

    def __init__(
        self,
        name: str,
        address: Callable[[], str],
        on_found: Callable[[str, str], None],
        *,
        group: str = DEFAULT_GROUP,
        port: int = DEFAULT_PORT,
        interval: float = 1.0,
        interface: str | None = None,
        ttl: int = 1,
    ):
        if not isinstance(name, str) or not protocol.AGENT_ID_PATTERN.match(name):
            raise ValueError(f"node name {name!r} must be 1-128 of A-Z a-z 0-9 . _ -")
        if not _is_ipv4(group) or not ipaddress.IPv4Address(group).is_multicast:
            raise ValueError(f"discovery group {group!r} is not an IPv4 multicast address")
        if not 0 < port < 65536:
            raise ValueError(f"discovery port {port} out of range")
        if not 0 <= ttl < 256:
            raise ValueError(f"multicast ttl {ttl} out of range 0-255")
        if interface is not None and not _is_ipv4(interface):
            raise ValueError(f"discovery interface {interface!r} must be an IPv4 address")
        self.name = name
        self.group = group
        self.port = port
        self.interval = max(0.05, float(interval))
        self.interface = interface
        self.ttl = ttl
        self._address = address
        self._on_found = on_found
        self._found: dict[str, str] = {}
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.joined = False
        self.last_join_error: OSError | None = None
        self.last_send_error: OSError | None = None

    # -- running ------------------------------------------------------------------------
    def start(self) -> None:
        """Bind the group port (an error there raises here) and start announcing and listening."""
        if self._thread is not None:
            return
        self.joined = False
        self._sock = self._open_socket()
        self._join_group()
        try:
            self._wake_r, self._wake_w = socket.socketpair()
        except OSError:
            self._sock.close()
            self._sock = None
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"paglets-lan-discovery-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the thread (waiting at most ``timeout``) and close the socket."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        thread.join(timeout)
        if thread.is_alive():
            log.warning("lan discovery of %s did not stop within %.1f s", self.name, timeout)
        for sock in (self._sock, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._sock = self._wake_r = self._wake_w = None

    @property
    def found(self) -> dict[str, str]:
        """Node name -> url, for every other node heard so far."""
        with self._lock:
            return dict(self._found)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> LanDiscovery:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the socket ---------------------------------------------------------------------
    def _open_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):  # several nodes on one machine share the port
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.bind((self.group, self.port))  # Linux: only this group's datagrams, no unicast
            except OSError:
                sock.bind(("", self.port))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, self.ttl)
            if self.interface is not None:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.interface))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _join_group(self) -> None:
        """Join the group; on a machine with no multicast route yet (ENODEV) try again next round."""
        local = socket.inet_aton(self.interface or "0.0.0.0")
        try:
            self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(self.group) + local)
        except OSError as exc:
            if self.last_join_error is None or self.last_join_error.errno != exc.errno:
                log.warning("lan discovery of %s: cannot join %s (%s); retrying", self.name, self.group, exc)
            self.last_join_error = exc
        else:
            self.joined = True
            self.last_join_error = None

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        next_announce = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_announce:
                if not self.joined:
                    self._join_group()
                self._announce()
                next_announce = max(next_announce + self.interval, now)
            try:
                readable, _, _ = select.select([self._sock, self._wake_r], [], [], max(0.0, next_announce - now))
            except (OSError, ValueError):  # the socket was closed under us: stop() gave up waiting
                return
            if self._sock in readable:
                self._receive()

    def _announce(self) -> None:
        try:
            datagram = Announcement(self.name, check_address(self._address())).encode()
        except Exception as exc:  # the node's address callback must never kill the thread
            log.warning("lan discovery of %s: no valid address to announce: %s", self.name, exc)
            return
        if len(datagram) > MAX_DATAGRAM:
            log.warning("lan discovery of %s: announcement of %d bytes is too big", self.name, len(datagram))
            return
        try:
            self._sock.sendto(datagram, (self.group, self.port))
        except OSError as exc:
            if self.last_send_error is None or self.last_send_error.errno != exc.errno:
                log.warning(
                    "lan discovery of %s: cannot send to %s:%d (%s)%s",
                    self.name,
                    self.group,
                    self.port,
                    exc,
                    " - no multicast route" if exc.errno in (errno.ENETUNREACH, errno.ENODEV) else "",
                )
            self.last_send_error = exc
        else:
            self.last_send_error = None

    def _receive(self) -> None:
        try:
            data, sender = self._sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("lan discovery of %s: receive failed: %s", self.name, exc)
            return
        announcement = decode_announcement(data)
        if announcement is None or announcement.name == self.name:
            return
        pair = (announcement.name, announcement.url)
        with self._lock:
            if announcement.name not in self._found and len(self._found) >= MAX_KNOWN:
                log.debug("lan discovery of %s: %d nodes known, ignoring %s", self.name, MAX_KNOWN, pair[0])
                return
            self._found[announcement.name] = announcement.url
            if pair in self._reported:
                return
            if len(self._reported) >= 4 * MAX_KNOWN:  # urls churning: forget; a repeat report is harmless
                self._reported.clear()
            self._reported.add(pair)
        log.info("lan discovery of %s: found %s at %s (from %s)", self.name, *pair, sender[0])
        try:
            self._on_found(*pair)
        except Exception:
            log.exception("lan discovery of %s: on_found(%s, %s) failed", self.name, *pair)


__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_PORT",
    "MAGIC",
    "MAX_DATAGRAM",
    "Announcement",
    "LanDiscovery",
    "decode_announcement",
]

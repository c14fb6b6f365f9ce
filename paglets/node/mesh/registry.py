"""The mesh: nodes that know each other by name, kept current by gossip.

Every ``gossip_interval`` a node bumps its own heartbeat counter and sends
its table to a few nodes (its configured peers first, then random ones it
has learned of); each answers with its own table, and both keep, per node
name, the entry with the higher heartbeat. A node whose heartbeat has not
moved for ``offline_after`` seconds is offline; it stays listed (``online``
False) for a while, so a node coming back is recognised.

:class:`HostRef` is one row of the table; :class:`MeshRegistry` owns the
table, the gossip thread and the condition that ``wait_for_host`` waits on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import replace
from typing import Any

from paglets.client.host_client import HostClient
from paglets.client.hosts import HostRef
from paglets.core.errors import SerializationError

log = logging.getLogger("paglets.mesh")
FANOUT = 3  # random nodes told each round, besides the configured peers
FORGET_AFTER = 20  # offline_after multiples before an offline node is dropped


class MeshRegistry:
    """The node's table of known nodes and the gossip that keeps it current."""

    def __init__(
        self,
        describe_self: Callable[[], HostRef],
        client: HostClient,
        *,
        enabled: bool = True,
        peers: list[str] | None = None,
        gossip_interval: float = 1.0,
        offline_after: float = 10.0,
    ):
        self._describe_self = describe_self
        self._client = client
        self.enabled = enabled
        self._peers = list(dict.fromkeys(peers or []))
        self.gossip_interval = max(0.05, gossip_interval)
        self.offline_after = max(self.gossip_interval * 2, offline_after)
        self._table: dict[str, HostRef] = {}
        self._seen_at: dict[str, float] = {}  # local monotonic time each heartbeat last moved
        self._heartbeat = 0
        self._incarnation = time.time()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()

    # -- running ------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._refresh_self()
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="paglets-mesh-gossip", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def add_peer(self, url: str) -> None:
        """Gossip with ``url`` from the next round on (LAN discovery, operators)."""
        with self._changed:
            if url not in self._peers:
                self._peers.append(url)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.gossip_round()
            except Exception:  # the gossip thread must outlive any one bad round
                log.exception("mesh: gossip round failed")
            self._stop.wait(max(0.0, self.gossip_interval - (time.monotonic() - started)))

    def gossip_round(self) -> None:
        """Tell a few nodes what we know and merge what they answer."""
        me = self._refresh_self()
        table = [ref.to_wire() for ref in self.hosts(include_self=True)]
        futures: list[Future[Any]] = []
        for url in self._targets(me):
            futures.append(self._client.request_future(url, "gossip", {"table": table}, timeout=self.gossip_interval))
        done, _pending = wait_futures(futures, timeout=self.gossip_interval + 1)
        for future in done:
            if future.exception() is None:
                self.merge(future.result().header.get("table") or [])
        self._expire()

    def _targets(self, me: HostRef) -> list[str]:
        with self._changed:
            known = [ref.url for name, ref in self._table.items() if name != me.name]
            peers = [url for url in self._peers if url != me.url]
        others = [url for url in known if url not in peers]
        return peers + self._rng.sample(others, min(FANOUT, len(others)))

    # -- the table -----------------------------------------------------------------------
    def _refresh_self(self) -> HostRef:
        self._heartbeat += 1
        me = replace(
            self._describe_self(),
            heartbeat=self._heartbeat,
            incarnation=self._incarnation,
            online=True,
            last_seen=time.time(),
        )
        with self._changed:
            self._table[me.name] = me
            self._seen_at[me.name] = time.monotonic()
            self._changed.notify_all()
        return me

    def merge(self, entries: list[Any]) -> list[dict[str, Any]]:
        """Take in a gossiped table; returns ours (the answer to a gossip request)."""
        me = self._describe_self().name
        now = time.monotonic()
        with self._changed:
            for raw in entries:
                try:
                    ref = HostRef.from_wire(raw)
                except SerializationError as exc:
                    log.debug("mesh: ignoring an entry: %s", exc)
                    continue
                if ref.name == me:
                    continue
                known = self._table.get(ref.name)
                if known is None or ref.freshness() > known.freshness():
                    self._table[ref.name] = replace(ref, last_seen=time.time())
                    self._seen_at[ref.name] = now
            self._changed.notify_all()
        return [ref.to_wire() for ref in self.hosts(include_self=True)]

    def _expire(self) -> None:
        now = time.monotonic()
        with self._changed:
            for name, seen in list(self._seen_at.items()):
                if now - seen > self.offline_after * FORGET_AFTER:
                    self._table.pop(name, None)
                    self._seen_at.pop(name, None)

    def _online(self, name: str, now: float) -> bool:
        return now - self._seen_at.get(name, float("-inf")) <= self.offline_after

    def hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[HostRef]:
        now = time.monotonic()
        me = self._describe_self().name
        with self._changed:
            refs = [replace(ref, online=self._online(name, now)) for name, ref in self._table.items()]
        return sorted(
            (r for r in refs if (include_self or r.name != me) and (r.online or not online_only)),
            key=lambda r: r.name,
        )

    def lookup(self, name_or_url: str) -> HostRef | None:
        """The entry for a node name or address."""
        for ref in self.hosts():
            if name_or_url in (ref.name, ref.url, ref.http_url):
                return ref
        return None

    def wait_for_host(self, name_or_url: str, timeout: float | None = None) -> HostRef | None:
        """Block until that node is online (woken by gossip, not by polling); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                ref = self._lookup_locked(name_or_url)
                if ref is not None and self._online(ref.name, time.monotonic()):
                    return replace(ref, online=True)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._changed.wait(remaining)  # gossip that brings news notifies

    def _lookup_locked(self, name_or_url: str) -> HostRef | None:
        for ref in self._table.values():
            if name_or_url in (ref.name, ref.url, ref.http_url):
                return ref
        return None


__all__ = ["HostRef", "MeshRegistry"]

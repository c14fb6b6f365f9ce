"""The mesh: nodes that know each other by name, kept current by gossip.

Every ``gossip_interval`` a node bumps its own heartbeat counter and sends
its table to a few nodes (its configured peers first, then random ones it
has learned of); each answers with its own table. A node whose heartbeat has
not moved for ``offline_after`` seconds is offline; it stays listed
(``online`` False) for a while, so a node coming back is recognised.

Gossip speaks for its sender only. An address for node N is *first-hand*
once this node reached it and N answered: the reply to a gossip we sent
names its replier (``from``) and speaks for it at the address we dialled; a
sender's own entry in a gossip request, or anything else that would move a
name, is proven by pinging it (:mod:`paglets.node.mesh.claims`) — and a name
that is first-hand at an address that still answers is never moved. Every
other entry is *second-hand*: it fills a name this node does not know yet,
and refreshes what we know of a node (heartbeat, counts, tags) only at the
address we have for it. Entries and tables are bounded where they enter
(:meth:`HostRef.from_wire`, the gossip op's schema).

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
from paglets.client.reactor import then
from paglets.core.errors import ProtocolError, SerializationError
from paglets.node.mesh.claims import AddressClaims
from paglets.wire.protocol import AGENT_ID_PATTERN, MAX_GOSSIP_ENTRIES

log = logging.getLogger("paglets.mesh")
FANOUT = 3  # random nodes told each round, besides the configured peers
FORGET_AFTER = 20  # offline_after multiples before an offline node is dropped
MAX_HOSTS = MAX_GOSSIP_ENTRIES  # nodes in the table, this one included
PING_TIMEOUT = 1.0  # at least, for the pings that prove an address


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
        on_change: Callable[[HostRef, bool], None] | None = None,
    ):
        """``on_change(ref, online)``: told (on the gossip thread) when another node comes online or goes offline."""
        self._describe_self = describe_self
        self._name: str | None = None  # this node's name, once asked (describing it costs a broker round trip)
        self._on_change = on_change
        self._reported: dict[str, HostRef] = {}  # the other nodes last reported online
        self._client = client
        self.enabled = enabled
        self._peers = list(dict.fromkeys(peers or []))
        self.gossip_interval = max(0.05, gossip_interval)
        self.offline_after = max(self.gossip_interval * 2, offline_after)
        self._table: dict[str, HostRef] = {}
        self._seen_at: dict[str, float] = {}  # local monotonic time each heartbeat last moved
        self._firsthand: set[str] = set()  # names whose address we reached ourselves
        self._claims = AddressClaims(self._ping, refuse_for=self.offline_after * 2)
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
        """Tell a few nodes what we know, take in what they answer, move the pending proofs on."""
        me = self._refresh_self()
        header = {"table": [ref.to_wire() for ref in self.hosts(include_self=True)], "from": me.name}
        futures: dict[Future[Any], str] = {}
        for url in self._targets(me):
            futures[self._client.request_future(url, "gossip", dict(header), timeout=self.gossip_interval)] = url
        done, _pending = wait_futures(list(futures), timeout=self.gossip_interval + 1)
        for future in done:
            if future.exception() is None:
                self._take_reply(futures[future], future.result().header)
        self._advance_claims()
        self._expire()
        self._report_changes(me.name)

    def _ping(self, url: str) -> Future[Any]:
        timeout = max(PING_TIMEOUT, self.gossip_interval)
        return then(self._client.request_future(url, "ping", timeout=timeout), lambda reply: reply.header)

    def _targets(self, me: HostRef) -> list[str]:
        with self._changed:
            known = [ref.url for name, ref in self._table.items() if name != me.name]
            peers = [url for url in self._peers if url != me.url]
        others = [url for url in known if url not in peers]
        return peers + self._rng.sample(others, min(FANOUT, len(others)))

    # -- the table -----------------------------------------------------------------------
    def _my_name(self) -> str:
        if self._name is None:
            self._name = self._describe_self().name
        return self._name

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
            self._firsthand.add(me.name)  # never dropped as hearsay
            self._seen_at[me.name] = time.monotonic()
            self._changed.notify_all()
        return me

    # -- what gossip brings ------------------------------------------------------------
    def answer_gossip(self, header: dict[str, Any]) -> dict[str, Any]:
        """Take in a gossip request (schema-checked by the front protocol) and return the answer.

        Raises SerializationError when an entry is malformed or over a bound: the sender is told.
        """
        refs = parse_table(header.get("table"))
        sender = header.get("from")
        me = self._my_name()
        with self._changed:
            for ref in refs:
                if ref.name == me:
                    continue
                if ref.name == sender:  # its own entry: trusted once we reach it there
                    self._claim(ref)
                self._hearsay(ref)
            self._changed.notify_all()
        return {"table": [ref.to_wire() for ref in self.hosts(include_self=True)], "from": me}

    def _take_reply(self, url: str, header: dict[str, Any]) -> None:
        """The answer of the node at ``url`` we dialled: first-hand for the replier, hearsay for the rest."""
        sender = header.get("from")
        sender = sender if isinstance(sender, str) and AGENT_ID_PATTERN.match(sender) else None
        try:
            refs = parse_table(header.get("table"))
        except (SerializationError, ProtocolError) as exc:
            log.warning("mesh: ignoring the gossip answer of %s: %s", url, exc)
            return
        me = self._my_name()
        with self._changed:
            if sender is not None:
                self._drop_hearsay_at(url, but=sender)
            for ref in refs:
                if ref.name == me:
                    continue
                if ref.name == sender and ref.url == url:
                    self._firsthand_answer(ref)
                    continue
                if ref.name == sender:  # reached at url, says it lives elsewhere: prove that too
                    self._claim(ref)
                self._hearsay(ref)
            self._changed.notify_all()

    def _firsthand_answer(self, ref: HostRef) -> None:
        """Node ``ref.name`` answered us at ``ref.url`` (lock held)."""
        known = self._table.get(ref.name)
        if known is not None and ref.name in self._firsthand and known.url != ref.url:
            self._claims.add(ref, reached=True)  # first ask the address it would replace
            return
        self._install(ref)

    def _hearsay(self, ref: HostRef) -> None:
        """A second-hand entry (lock held): fills an unknown name, refreshes a known one at its address."""
        known = self._table.get(ref.name)
        if known is None:
            if len(self._table) < MAX_HOSTS:
                self._table[ref.name] = replace(ref, last_seen=time.time())
                self._seen_at[ref.name] = time.monotonic()
            return
        if known.url == ref.url:
            if ref.freshness() > known.freshness():
                self._table[ref.name] = replace(ref, last_seen=time.time())
                self._seen_at[ref.name] = time.monotonic()
            return
        if not self._online(ref.name, time.monotonic()):  # its node went silent: maybe it moved; prove it
            self._claim(ref)

    def _claim(self, ref: HostRef) -> None:
        """Prove ``ref``'s address by dialling it, unless we already did (lock held)."""
        known = self._table.get(ref.name)
        if known is None or known.url != ref.url or ref.name not in self._firsthand:
            self._claims.add(ref, reached=False)

    def _drop_hearsay_at(self, url: str, *, but: str) -> None:
        """``url`` answered as node ``but``: a second-hand entry naming another node there was wrong."""
        for name, ref in list(self._table.items()):
            if ref.url == url and name != but and name not in self._firsthand:
                self._forget(name)

    def _install(self, ref: HostRef) -> None:
        """Take ``ref`` as first-hand (lock held): we reached it at its address just now."""
        if ref.name not in self._table and len(self._table) >= MAX_HOSTS and not self._evict_hearsay():
            return
        self._table[ref.name] = replace(ref, last_seen=time.time())
        self._seen_at[ref.name] = time.monotonic()
        self._firsthand.add(ref.name)

    def _evict_hearsay(self) -> bool:
        """Make room for a first-hand entry by dropping the stalest second-hand one."""
        hearsay = [name for name in self._table if name not in self._firsthand]
        if not hearsay:
            return False
        self._forget(min(hearsay, key=lambda name: self._seen_at.get(name, 0.0)))
        return True

    def _forget(self, name: str) -> None:
        self._table.pop(name, None)
        self._seen_at.pop(name, None)
        self._firsthand.discard(name)

    def _advance_claims(self) -> None:
        with self._changed:
            proven = self._claims.advance(lambda name: (self._table.get(name), name in self._firsthand))
            for ref in proven:
                self._install(ref)
            if proven:
                self._changed.notify_all()

    def is_firsthand(self, name: str) -> bool:
        """Whether this node reached ``name`` at its listed address itself."""
        with self._changed:
            return name in self._firsthand

    def _expire(self) -> None:
        now = time.monotonic()
        with self._changed:
            for name, seen in list(self._seen_at.items()):
                if now - seen > self.offline_after * FORGET_AFTER:
                    self._forget(name)

    def _report_changes(self, me: str) -> None:
        """Tell ``on_change`` which other nodes came online and which went offline (or were forgotten)."""
        if self._on_change is None:
            return
        now = time.monotonic()
        with self._changed:
            online = {name: ref for name, ref in self._table.items() if name != me and self._online(name, now)}
        came = [ref for name, ref in online.items() if name not in self._reported]
        went = [ref for name, ref in self._reported.items() if name not in online]
        self._reported = online
        for ref in sorted(came, key=lambda r: r.name):
            self._on_change(ref, True)
        for ref in sorted(went, key=lambda r: r.name):
            self._on_change(ref, False)

    def _online(self, name: str, now: float) -> bool:
        return now - self._seen_at.get(name, float("-inf")) <= self.offline_after

    def hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[HostRef]:
        now = time.monotonic()
        me = self._my_name()
        with self._changed:
            refs = [replace(ref, online=self._online(name, now)) for name, ref in self._table.items()]
        return sorted(
            (r for r in refs if (include_self or r.name != me) and (r.online or not online_only)),
            key=lambda r: r.name,
        )

    def peer_counts(self, me: str) -> tuple[int, int]:
        """(online, offline) other nodes in the table, ``me`` left out (cheap: no listing of this node)."""
        now = time.monotonic()
        with self._changed:
            online = sum(1 for name in self._table if name != me and self._online(name, now))
            return online, sum(1 for name in self._table if name != me) - online

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


def parse_table(table: Any) -> list[HostRef]:
    """Check a gossiped table: a list of at most MAX_GOSSIP_ENTRIES entries, each one sound."""
    if not isinstance(table, list):
        raise ProtocolError("a gossip table must be a list")
    if len(table) > MAX_GOSSIP_ENTRIES:
        raise ProtocolError(f"a gossip table has {len(table)} entries, at most {MAX_GOSSIP_ENTRIES}")
    return [HostRef.from_wire(raw) for raw in table]


__all__ = ["HostRef", "MeshRegistry", "parse_table"]

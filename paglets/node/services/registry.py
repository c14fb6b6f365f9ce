"""The node's service registry: the records its paglets advertise, bounded, expiring, owned by their paglets.

Owns the records of this node (by paglet and by name), the expiry schedule
and the thread that waits on it, and the listeners told of every change.
Any thread; one lock guards the tables, events are emitted outside it.

* **Bounds**: at most ``max_per_paglet`` records per paglet and
  ``max_records`` per node (:class:`~paglets.core.errors.OverloadedError`
  past either; re-advertising a name replaces its record and costs nothing).
* **Expiry**: a record with a TTL is left out of lookups from the moment it
  expires, and removed (event ``service-expired``) by the first lookup that
  meets it or by the expiry thread, which sleeps until the next expiry (not
  at all while no record has a TTL).
* **Ownership**: :meth:`on_node_event` listens to the node's event log and
  removes a paglet's records when it is disposed, moves away, crashes or is
  parked (event ``service-withdrawn`` with the reason). *Pinned* records —
  the node's own, on behalf of a resident service — survive parking and
  crashes (the node runs that service again), and a parking whose event says
  ``keep_services=True`` (idle parking, wake on message) keeps every record.
* **Hook**: :meth:`add_listener` ``(kind, record, reason)`` for kinds
  ``advertised``, ``withdrawn`` and ``expired``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paglets.core.errors import OverloadedError
from paglets.core.events import ContextEvent, ContextEventLog
from paglets.core.runtime_values import ServiceScope
from paglets.services.records import ServiceRecord

log = logging.getLogger("paglets.services")

MAX_RECORDS_PER_PAGLET = 64
MAX_RECORDS_PER_NODE = 10_000

Listener = Callable[[str, ServiceRecord, str], Any]

# node events that end a paglet's stay here -> (reason, keep pinned records)
_ENDINGS: dict[str, tuple[str, bool]] = {
    "dispose": ("disposed", False),
    "dispatch": ("moved", False),
    "retract": ("moved", False),
    "crash": ("crashed", True),
    "deactivate": ("parked", True),
}


@dataclass(slots=True)
class _Entry:
    record: ServiceRecord
    pinned: bool
    seq: int  # which advertisement: lookups list older ones first; stale expiry entries are told apart


class ServiceRegistry:
    """The records of one node."""

    def __init__(
        self,
        events: ContextEventLog,
        node_name: str,
        *,
        max_per_paglet: int = MAX_RECORDS_PER_PAGLET,
        max_records: int = MAX_RECORDS_PER_NODE,
    ):
        self._events = events
        self._node_name = node_name
        self.max_per_paglet = max_per_paglet
        self.max_records = max_records
        self._lock = threading.Condition(threading.RLock())
        self._by_agent: dict[str, dict[str, _Entry]] = {}
        self._by_name: dict[str, dict[str, _Entry]] = {}
        self._count = 0
        self._seq = itertools.count(1)
        self._expiries: list[tuple[float, int, str, str]] = []  # (expires_at, seq, agent_id, name)
        self._listeners: list[Listener] = []
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- changes ---------------------------------------------------------------------------
    def put(self, record: ServiceRecord, *, pinned: bool = False) -> ServiceRecord:
        """Add ``record``, replacing its paglet's record of the same name; OverloadedError past a bound."""
        with self._lock:
            mine = self._by_agent.get(record.agent_id, {})
            old = mine.get(record.name)
            if old is None:
                if len(mine) >= self.max_per_paglet:
                    raise OverloadedError(
                        f"paglet {record.agent_id} advertises {len(mine)} services on node {self._node_name}; "
                        f"the limit is {self.max_per_paglet}"
                    )
                if self._count >= self.max_records:
                    raise OverloadedError(
                        f"node {self._node_name} holds {self._count} service records; the limit is {self.max_records}"
                    )
                self._count += 1
            entry = _Entry(record, pinned or (old is not None and old.pinned), next(self._seq))
            self._by_agent.setdefault(record.agent_id, {})[record.name] = entry
            self._by_name.setdefault(record.name, {})[record.agent_id] = entry
            if record.expires_at is not None:
                if len(self._expiries) > 2 * self._count + 64:  # replaced records left stale entries behind
                    self._compact_expiries()
                heapq.heappush(self._expiries, (record.expires_at, entry.seq, record.agent_id, record.name))
                if self._expiries[0][1] == entry.seq:
                    self._lock.notify_all()  # the expiry thread sleeps until an earlier moment now
        self._tell("advertised", record, "replaced" if old is not None else "new")
        return record

    def remove(self, agent_id: str, name: str, reason: str = "unadvertised") -> ServiceRecord | None:
        """Withdraw one record; None if there was none."""
        with self._lock:
            entry = self._take(agent_id, name)
        if entry is None:
            return None
        self._tell("withdrawn", entry.record, reason)
        return entry.record

    def remove_agent(self, agent_id: str, reason: str, *, keep_pinned: bool = False) -> list[ServiceRecord]:
        """Withdraw every record of a paglet (but its pinned ones, with ``keep_pinned``)."""
        with self._lock:
            names = [n for n, e in self._by_agent.get(agent_id, {}).items() if not (keep_pinned and e.pinned)]
            gone = [entry for entry in (self._take(agent_id, name) for name in names) if entry is not None]
        for entry in gone:
            self._tell("withdrawn", entry.record, reason)
        return [entry.record for entry in gone]

    def clear(self, reason: str) -> None:
        """Withdraw every record (the node stops: none of its paglets runs any more)."""
        with self._lock:
            agents = list(self._by_agent)
        for agent_id in agents:
            self.remove_agent(agent_id, reason)

    def _take(self, agent_id: str, name: str) -> _Entry | None:
        """Unlink one entry (lock held)."""
        mine = self._by_agent.get(agent_id)
        entry = mine.pop(name, None) if mine is not None else None
        if entry is None:
            return None
        if not mine:
            del self._by_agent[agent_id]
        named = self._by_name[name]
        del named[agent_id]
        if not named:
            del self._by_name[name]
        self._count -= 1
        return entry

    # -- reading ---------------------------------------------------------------------------
    def records(
        self, name: str | None = None, capability: str | None = None, *, mesh_only: bool = False
    ) -> list[ServiceRecord]:
        """Live records of ``name`` (None: any) offering ``capability``, oldest advertisement first.

        ``mesh_only``: only records advertised with MESH scope (what other nodes may see).
        """
        now = time.time()
        found: list[_Entry] = []
        expired = False
        with self._lock:
            if name is not None:
                entries = self._by_name.get(name, {}).values()
            else:
                entries = (entry for mine in self._by_agent.values() for entry in mine.values())
            for entry in entries:
                record = entry.record
                if record.expires_at is not None and record.expires_at <= now:
                    expired = True
                elif (capability is None or capability in record.capabilities) and (
                    not mesh_only or record.scope is ServiceScope.MESH
                ):
                    found.append(entry)
        if expired:
            self.sweep()
        found.sort(key=lambda entry: entry.seq)
        return [entry.record for entry in found]

    def count(self) -> int:
        with self._lock:
            return self._count

    # -- expiry ----------------------------------------------------------------------------
    def sweep(self) -> list[ServiceRecord]:
        """Remove every expired record (event ``service-expired``); the records removed."""
        now = time.time()
        gone: list[ServiceRecord] = []
        with self._lock:
            while self._expiries and self._expiries[0][0] <= now:
                _at, seq, agent_id, name = heapq.heappop(self._expiries)
                entry = self._by_agent.get(agent_id, {}).get(name)
                if entry is not None and entry.seq == seq:  # else replaced or withdrawn since
                    self._take(agent_id, name)
                    gone.append(entry.record)
        for record in gone:
            self._tell("expired", record, "ttl")
        return gone

    def _compact_expiries(self) -> None:
        """Keep only the expiry entries of records that are still there (lock held)."""
        self._expiries = [
            (entry.record.expires_at, entry.seq, agent_id, name)
            for agent_id, mine in self._by_agent.items()
            for name, entry in mine.items()
            if entry.record.expires_at is not None
        ]
        heapq.heapify(self._expiries)

    def start(self) -> None:
        """Start the expiry thread (it sleeps until the next expiry)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run_expiry, name=f"paglets-services-{self._node_name}", daemon=True
            )
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._lock.notify_all()
        if thread is not None:
            thread.join(5)

    def _run_expiry(self) -> None:
        while True:
            with self._lock:
                while not self._stopping:
                    wait = self._expiries[0][0] - time.time() if self._expiries else None
                    if wait is not None and wait <= 0:
                        break
                    self._lock.wait(None if wait is None else min(wait, 3600.0))
                else:
                    return
            try:
                self.sweep()
            except Exception:  # a listener's failure must not end expiry
                log.exception("node %s: service expiry sweep failed", self._node_name)

    # -- ownership: the node's events -------------------------------------------------------
    def on_node_event(self, event: ContextEvent) -> None:
        """A listener for the node's event log: a paglet that leaves takes its records along."""
        ending = _ENDINGS.get(event.kind)
        if ending is None or event.agent_id is None:
            return
        reason, keep_pinned = ending
        if event.kind == "deactivate" and event.data.get("keep_services"):
            return
        with self._lock:
            if event.agent_id not in self._by_agent:
                return
        self.remove_agent(event.agent_id, reason, keep_pinned=keep_pinned)

    # -- the hook --------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(kind, record, reason)`` after every change (kind: advertised, withdrawn, expired)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _tell(self, kind: str, record: ServiceRecord, reason: str) -> None:
        data: dict[str, Any] = {"service_name": record.name, "scope": record.scope.value}
        if kind == "advertised":
            data["expires_at"] = record.expires_at
        else:
            data["reason"] = reason
        self._events.emit(f"service-{kind}", agent_id=record.agent_id, **data)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(kind, record, reason)
            except Exception:
                log.exception("node %s: service listener %r failed on %s", self._node_name, listener, kind)


__all__ = ["MAX_RECORDS_PER_NODE", "MAX_RECORDS_PER_PAGLET", "ServiceRegistry"]

"""The parked paglets of one node: their durable records and an in-memory index of them.

:class:`ParkedRecords` wraps the :class:`~paglets.node.storage.records.RecordStore`
(files under ``inactive/``) with the index that listings read without
touching the disk, and the count of mail waiting on disk per paglet (which
bounds it). Parking (:mod:`paglets.node.flows.parking`) writes it; inspection
reads it. Any thread may call it; the index is guarded by one lock.

The mail counts are owned here, under that lock: the broker loop adds to
them (:meth:`ParkedRecords.append_mail`, as it routes a message to a parked
paglet) and the parking flows reset them (a paglet parked, woken or
disposed of); nobody else keeps a copy.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from paglets.core.errors import InvalidAgentError, OverloadedError
from paglets.node.storage.records import RecordStore
from paglets.persistence.persistency import InactiveRecord, QueuedMessage
from paglets.wire import codec


class ParkedRecords:
    """Owns the index of parked paglets and the per-paglet count of mail on disk."""

    def __init__(self, data_dir: Path, node_name: str, mail_limit: int):
        self.store = RecordStore(data_dir, node_name)
        self.mail_limit = mail_limit
        self._node_name = node_name
        self._index: dict[str, InactiveRecord] = {}
        self._mail_counts: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self.store.root

    # -- opening and closing -------------------------------------------------------
    def load(self) -> tuple[list[InactiveRecord], list[tuple[Path, str]]]:
        """Open the store and index every readable record; returns (records, quarantined)."""
        self.store.open()
        records, quarantined = self.store.load_all()
        with self._lock:
            self._index.clear()
            self._mail_counts.clear()
            for record in records:
                self._index[record.agent_id] = record
                self._mail_counts[record.agent_id] = self.store.count_mail(record.agent_id)
        return records, quarantined

    def close(self) -> None:
        self.store.close()

    # -- reading -------------------------------------------------------------------
    def __contains__(self, agent_id: str) -> bool:
        with self._lock:
            return agent_id in self._index

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._index)

    def record(self, agent_id: str) -> InactiveRecord | None:
        with self._lock:
            return self._index.get(agent_id)

    def describe(self, agent_id: str, include_state: bool = False) -> dict[str, Any]:
        record = self.record(agent_id)
        if record is None:
            raise InvalidAgentError(f"no paglet {agent_id!r} on node {self._node_name}")
        info = self.store.summary(record)
        info["queued_messages"] = self.store.count_mail(agent_id)
        if include_state:
            info["state"] = codec.decode_plain(record.envelope.state)
        return info

    def files_dir(self, agent_id: str) -> Path:
        """Where a parked paglet's registered files wait (the work dir is wiped at node start)."""
        return self.root / f"{agent_id}.files"

    # -- writing -------------------------------------------------------------------
    def add(self, record: InactiveRecord) -> None:
        """Write the record durably, then index it."""
        self.store.save(record)
        with self._lock:
            self._index[record.agent_id] = record
            self._mail_counts.setdefault(record.agent_id, 0)

    def remove(self, agent_id: str) -> InactiveRecord | None:
        """Forget a parked paglet: index, record, mail and kept files."""
        with self._lock:
            record = self._index.pop(agent_id, None)
            self._mail_counts.pop(agent_id, None)
        self.store.delete(agent_id)
        shutil.rmtree(self.files_dir(agent_id), ignore_errors=True)
        return record

    def unindex(self, agent_id: str) -> InactiveRecord | None:
        """Drop from the index only (the paglet is waking; its record goes once it runs)."""
        with self._lock:
            self._mail_counts.pop(agent_id, None)
            return self._index.pop(agent_id, None)

    # -- mail --------------------------------------------------------------------------
    def append_mail(self, agent_id: str, message: QueuedMessage) -> Future[None]:
        """Queue a message on disk for a parked paglet; OverloadedError past the mail limit."""
        with self._lock:
            count = self._mail_counts.get(agent_id, 0)
            if count >= self.mail_limit:
                raise OverloadedError(f"paglet {agent_id!r} already has {self.mail_limit} messages waiting on disk")
            self._mail_counts[agent_id] = count + 1
        return self.store.append_mail(agent_id, message)

    def flush_mail(self) -> Future[None]:
        return self.store.flush_mail()

    def read_mail(self, agent_id: str) -> list[QueuedMessage]:
        return self.store.read_mail(agent_id)


__all__ = ["ParkedRecords"]

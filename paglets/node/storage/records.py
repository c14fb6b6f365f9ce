"""Durable records of parked paglets and of the mail queued for them.

Layout under the node's data dir (the file mechanics are in
:mod:`paglets.persistence.journal`)::

    inactive/<agent_id>.mpk     the record: envelope, policy, request (InactiveRecord)
    inactive/<agent_id>.mail    mail queued while parked: an append-only log
    quarantine/                 records that could not be read, moved aside

Durable means fsync'd before anyone is told "done". A record is written to a
temp file, fsync'd, renamed over the old one, and the directory fsync'd.
Mail is appended by one writer thread with group commit: it takes every
append waiting, writes them, fsyncs each touched log once and only then
completes their Futures, so a burst of queued messages shares fsyncs.

Each mail log entry's payload is the msgpack of a QueuedMessage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import msgpack

from paglets.core.errors import SerializationError
from paglets.persistence.journal import LogWriter, frame_entry, fsync_dir, read_entries, write_atomically
from paglets.persistence.persistency import InactiveRecord, QueuedMessage

log = logging.getLogger("paglets.records")
_ENTRY = struct.Struct(">II")
MAX_BATCH = 4096


def encode_entry(message: QueuedMessage) -> bytes:
    return frame_entry(msgpack.packb(message.to_wire(), use_bin_type=True))


def read_log(path: Path) -> list[QueuedMessage]:
    """Every complete message of a mail log, in order."""
    messages = []
    for index, payload in enumerate(read_entries(path)):
        try:
            messages.append(QueuedMessage.from_wire(msgpack.unpackb(payload, raw=False)))
        except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
            raise SerializationError(f"{path.name}: entry {index} is unreadable: {exc}") from None
    return messages


class RecordStore:
    """Owns ``inactive/`` and ``quarantine/``: records, mail logs and the mail writer."""

    def __init__(self, root: Path, node_name: str):
        self.root = root / "inactive"
        self.quarantine_dir = root / "quarantine"
        self._writer: LogWriter | None = None
        self._node_name = node_name

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):
            stale.unlink(missing_ok=True)
        self._writer = LogWriter(self._node_name)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None

    def record_path(self, agent_id: str) -> Path:
        return self.root / f"{agent_id}.mpk"

    def mail_path(self, agent_id: str) -> Path:
        return self.root / f"{agent_id}.mail"

    def save(self, record: InactiveRecord) -> None:
        write_atomically(self.record_path(record.agent_id), record.to_bytes())

    def load(self, agent_id: str) -> InactiveRecord:
        return InactiveRecord.from_bytes(self.record_path(agent_id).read_bytes())

    def append_mail(self, agent_id: str, message: QueuedMessage) -> Future[None]:
        return self._writer.append(self.mail_path(agent_id), encode_entry(message))

    def flush_mail(self) -> Future[None]:
        return self._writer.barrier()

    def read_mail(self, agent_id: str) -> list[QueuedMessage]:
        return read_log(self.mail_path(agent_id))

    def count_mail(self, agent_id: str) -> int:
        return len(self.read_mail(agent_id))

    def delete(self, agent_id: str) -> None:
        """Forget a record and its mail, durably."""
        for path in (self.mail_path(agent_id), self.record_path(agent_id)):
            path.unlink(missing_ok=True)
        fsync_dir(self.root)

    def load_all(self) -> tuple[list[InactiveRecord], list[tuple[Path, str]]]:
        """Every readable record; unreadable ones (and their mail) are moved to quarantine."""
        records, quarantined = [], []
        for path in sorted(self.root.glob("*.mpk")):
            try:
                record = InactiveRecord.from_bytes(path.read_bytes())
                if record.agent_id != path.stem:
                    raise SerializationError(f"record names paglet {record.agent_id!r}, file is {path.name}")
                read_log(self.mail_path(path.stem))
            except (SerializationError, OSError) as exc:
                quarantined.append((self.quarantine(path.stem), str(exc)))
                continue
            records.append(record)
        for orphan in self.root.glob("*.mail"):
            if not self.record_path(orphan.stem).exists():
                quarantined.append((self.quarantine(orphan.stem), "mail without a record"))
        return records, quarantined

    def quarantine(self, agent_id: str) -> Path:
        """Move a paglet's record and mail aside, so the node can go on without them."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        moved = self.quarantine_dir
        for path in (self.record_path(agent_id), self.mail_path(agent_id)):
            if path.exists():
                moved = self.quarantine_dir / f"{path.name}.{stamp}"
                with contextlib.suppress(OSError):
                    os.replace(path, moved)
        with contextlib.suppress(OSError):
            fsync_dir(self.root)
            fsync_dir(self.quarantine_dir)
        log.warning("quarantined the record of %s: moved to %s", agent_id, self.quarantine_dir)
        return moved

    def summary(self, record: InactiveRecord) -> dict[str, Any]:
        return {
            "agent_id": record.agent_id,
            "class_name": record.envelope.agent_class_name,
            "phase": "inactive",
            "active": False,
            "crashed": False,
            "pid": None,
            "deactivated_at": record.deactivated_at,
            "policy": record.policy.to_wire(),
            "reason": record.request.reason,
        }


__all__ = ["RecordStore", "encode_entry", "read_log"]

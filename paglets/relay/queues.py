"""The relay's on-disk queues for nodes that are briefly away.

One append-only log per node (``<data dir>/queues/<name>.log``), written by
a group-committing :class:`~paglets.persistence.journal.LogWriter`: a
message is acknowledged only once it is fsync'd, so restarting the relay
loses none. Each entry is ``[queued_at, frames]``. Owned by the relay loop
(counts) and the writer thread (files).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from pathlib import Path

import msgpack

from paglets.core.errors import OverloadedError, SerializationError
from paglets.persistence.journal import LogWriter, frame_entry, fsync_dir, read_entries
from paglets.waiting import wait_for

log = logging.getLogger("paglets.relay.queues")
WRITER_DEADLINE = 30.0  # seconds the writer may take to make what it holds durable


class NodeQueues:
    """Durable, bounded, time-limited queues of requests for away nodes."""

    def __init__(self, root: Path, *, limit: int, ttl: float):
        self.root = root / "queues"
        self.limit = limit
        self.ttl = ttl
        self._depth: dict[str, int] = {}
        self._writer: LogWriter | None = None

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for path in self.root.glob("*.log"):
            try:
                self._depth[path.stem] = len(read_entries(path))
            except SerializationError as exc:
                log.error("relay queue %s is damaged (%s); moving it aside", path.name, exc)
                path.rename(path.with_suffix(f".damaged-{int(time.time())}"))
        self._writer = LogWriter("relay")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None

    def depth(self, name: str) -> int:
        return self._depth.get(name, 0)

    def depths(self) -> dict[str, int]:
        return {name: count for name, count in self._depth.items() if count}

    def append(self, name: str, frames: list[bytes]) -> Future[None]:
        """Queue a request for ``name``; the Future completes once it is on disk."""
        if self.depth(name) >= self.limit:
            raise OverloadedError(f"the relay's queue for node {name} is full ({self.limit} requests)")
        self._depth[name] = self.depth(name) + 1
        entry = frame_entry(msgpack.packb([time.time(), frames], use_bin_type=True))
        return self._writer.append(self.root / f"{name}.log", entry)

    def pending(self, name: str) -> list[list[bytes]]:
        """Every queued request for ``name`` not older than the time limit, in order."""
        wait_for(self._writer.barrier(), WRITER_DEADLINE, f"the queue writer before reading {name}'s queue")
        fresh = []
        cutoff = time.time() - self.ttl
        for payload in read_entries(self.root / f"{name}.log"):
            queued_at, frames = msgpack.unpackb(payload, raw=False)
            if queued_at >= cutoff:
                fresh.append(list(frames))
            else:
                log.warning(
                    "relay: dropped a request for %s queued %.0f s ago (over the time limit)",
                    name,
                    time.time() - queued_at,
                )
        return fresh

    def clear(self, name: str) -> None:
        """Everything queued for ``name`` was delivered and answered."""
        wait_for(self._writer.barrier(), WRITER_DEADLINE, f"the queue writer before clearing {name}'s queue")
        (self.root / f"{name}.log").unlink(missing_ok=True)
        fsync_dir(self.root)
        self._depth.pop(name, None)


__all__ = ["NodeQueues"]

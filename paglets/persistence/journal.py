"""Durable files: atomic replacement, and append-only logs with group commit.

Used for parked paglets' mail (:mod:`paglets.node.storage.records`) and the
relay's queues for nodes that are away (:mod:`paglets.relay.queues`).

Log entry: 4-byte big-endian length, 4-byte CRC32 of the payload, payload.
A torn last entry (a crash mid-write, never acknowledged) is ignored; a
complete entry with a bad CRC is corruption.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
import zlib
from concurrent.futures import Future
from pathlib import Path

from paglets.core.errors import SerializationError

_ENTRY = struct.Struct(">II")
MAX_BATCH = 4096


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, never a mix."""
    temp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def frame_entry(payload: bytes) -> bytes:
    """One log entry: length, CRC32, payload."""
    return _ENTRY.pack(len(payload), zlib.crc32(payload)) + payload


def read_entries(path: Path) -> list[bytes]:
    """The payload of every complete entry of a log, in order; a torn tail is dropped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    payloads: list[bytes] = []
    offset = 0
    while offset + _ENTRY.size <= len(data):
        size, crc = _ENTRY.unpack_from(data, offset)
        start = offset + _ENTRY.size
        if start + size > len(data):
            break  # torn by a crash before it was acknowledged
        payload = data[start : start + size]
        if zlib.crc32(payload) != crc:
            raise SerializationError(f"{path.name}: entry at byte {offset} is corrupt (CRC mismatch)")
        payloads.append(payload)
        offset = start + size
    return payloads


class LogWriter:
    """The thread that appends entries to logs with group commit.

    It takes every append waiting, writes them, fsyncs each touched log once
    and only then completes their Futures: a burst of appends shares fsyncs.
    """

    def __init__(self, name: str):
        self._requests: queue.SimpleQueue[tuple[Path, bytes, Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"paglets-log-{name}", daemon=True)
        self._thread.start()

    def append(self, path: Path, entry: bytes) -> Future[None]:
        """Queue ``entry`` (already framed) for ``path``; the Future completes once it is fsync'd."""
        future: Future[None] = Future()
        self._requests.put((path, entry, future))
        return future

    def barrier(self) -> Future[None]:
        """A Future that completes once every append queued before it is on disk."""
        future: Future[None] = Future()
        self._requests.put((Path(), b"", future))
        return future

    def stop(self) -> None:
        self._requests.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            first = self._requests.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._requests.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._commit(batch)
                    return
                batch.append(item)
            self._commit(batch)

    @staticmethod
    def _commit(batch: list[tuple[Path, bytes, Future[None]]]) -> None:
        by_path: dict[Path, list[bytes]] = {}
        for path, entry, _future in batch:
            if entry:
                by_path.setdefault(path, []).append(entry)
        failures: dict[Path, BaseException] = {}
        for path, entries in by_path.items():
            try:
                new = not path.exists()
                with open(path, "ab") as handle:
                    handle.write(b"".join(entries))
                    handle.flush()
                    os.fsync(handle.fileno())
                if new:
                    fsync_dir(path.parent)
            except OSError as exc:
                failures[path] = exc
        for path, entry, future in batch:
            error = failures.get(path) if entry else None
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(None)


__all__ = ["LogWriter", "frame_entry", "fsync_dir", "read_entries", "write_atomically"]

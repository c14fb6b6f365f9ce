"""Where a streamed artifact lands: a ``.part`` file written in order, hashed as it grows, kept only if whole.

Chunks of one transfer may arrive out of order (a node answers pipelined
requests on several threads), so :class:`PartFile` keeps the few that come
early — at most ``max_ahead`` bytes of them, the transfer's window — and
writes each as soon as the bytes before it are there, feeding the sha256 as
it goes. :meth:`PartFile.keep` checks the size and the sha256, syncs the file
and renames it into place; anything else removes the ``.part``. Both the
node's store and a client's download use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path

from paglets.core.errors import ArtifactError

READ_SIZE = 1024 * 1024


def sha256_of(path: Path) -> str:
    """The sha256 (hex) of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(READ_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: not every file system can)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class PartFile:
    """One artifact being written: ``size`` bytes whose sha256 must be ``sha``. Any thread."""

    def __init__(self, part: Path, size: int, sha: str, max_ahead: int, what: str = "artifact"):
        """Create ``part`` (it must not exist); ``what`` names the transfer in errors."""
        self.part = part
        self.size = size
        self.sha = sha
        self.what = what
        self.touched = time.monotonic()
        self._max_ahead = max_ahead
        self._lock = threading.Lock()
        self._hash = hashlib.sha256()
        self._written = 0
        self._early: dict[int, bytes] = {}
        self._early_bytes = 0
        self._closed = False
        self._file = open(part, "xb")  # held across calls; closed by keep() or discard()

    @property
    def written(self) -> int:
        with self._lock:
            return self._written

    def put(self, offset: int, chunk: bytes) -> int:
        """Take the chunk at ``offset``; returns how many bytes are written in order so far."""
        with self._lock:
            self._check_chunk(offset, chunk)
            self._early[offset] = chunk
            self._early_bytes += len(chunk)
            while (ready := self._early.pop(self._written, None)) is not None:
                self._early_bytes -= len(ready)
                self._file.write(ready)
                self._hash.update(ready)
                self._written += len(ready)
            self.touched = time.monotonic()
            return self._written

    def _check_chunk(self, offset: int, chunk: bytes) -> None:
        if self._closed:
            raise ArtifactError(f"{self.what}: the transfer is over (finished, failed or expired)")
        if not chunk:
            raise ArtifactError(f"{self.what}: empty chunk at offset {offset}")
        if offset < self._written or offset in self._early:
            raise ArtifactError(f"{self.what}: chunk at offset {offset} arrived twice")
        if offset + len(chunk) > self.size:
            raise ArtifactError(
                f"{self.what}: chunk at offset {offset} of {len(chunk)} bytes goes past the announced size {self.size}"
            )
        if self._early_bytes + len(chunk) > self._max_ahead:
            raise ArtifactError(
                f"{self.what}: chunk at offset {offset} is too far ahead of the {self._written} bytes written "
                f"(at most {self._max_ahead} bytes may wait)"
            )

    def keep(self, final: Path) -> None:
        """Check size and sha256, sync and rename to ``final``; ArtifactError (and no ``.part``) if damaged."""
        with self._lock:
            if self._closed:
                raise ArtifactError(f"{self.what}: the transfer is over (finished, failed or expired)")
            self._closed = True
            try:
                if self._written != self.size or self._early:
                    raise ArtifactError(
                        f"{self.what}: {self._written} of the announced {self.size} bytes arrived; nothing was kept"
                    )
                digest = self._hash.hexdigest()
                if digest != self.sha:
                    raise ArtifactError(
                        f"{self.what}: the bytes that arrived have sha256 {digest[:12]}..., not {self.sha[:12]}...; "
                        "nothing was kept"
                    )
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                os.replace(self.part, final)
            except BaseException:
                self._remove()
                raise
        sync_directory(final.parent)

    def discard(self) -> None:
        """Give up: close and remove the ``.part`` (idempotent)."""
        with self._lock:
            self._closed = True
            self._remove()

    def _remove(self) -> None:
        self._early.clear()
        self._early_bytes = 0
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self.part.unlink(missing_ok=True)


__all__ = ["READ_SIZE", "PartFile", "sha256_of", "sync_directory"]

"""Where a streamed artifact lands: a ``.part`` file written in order, hashed as it grows, kept only if whole.

Chunks of one transfer may arrive out of order (a node answers pipelined
requests on several threads), so :class:`PartFile` writes each at its offset
at once — one that comes early may reach at most ``max_ahead`` bytes (the
transfer's window) past the bytes written in order, and nothing waits in
memory — and feeds the sha256 in order: a chunk that came early is read
back from the file once the gap before it is filled. :meth:`PartFile.keep`
checks the size and the sha256, syncs the file and renames it into place;
anything else removes the ``.part``. Both the node's store and a client's
download use it.
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
        self._hashed = 0  # every byte below this is written and hashed
        self._early: dict[int, int] = {}  # offset -> length of chunks written past a gap, not hashed yet
        self._closed = False
        self._fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)  # closed by keep() or discard()

    @property
    def written(self) -> int:
        """Bytes written in order from the start (a chunk past a gap counts once the gap is filled)."""
        with self._lock:
            return self._hashed

    def put(self, offset: int, chunk: bytes) -> int:
        """Write the chunk at ``offset``; returns how many bytes are written in order so far."""
        with self._lock:
            self._check_chunk(offset, chunk)
            os.pwrite(self._fd, chunk, offset)
            if offset != self._hashed:
                self._early[offset] = len(chunk)  # hashed (read back) once the bytes before it are here
            else:
                self._hash.update(chunk)
                self._hashed += len(chunk)
                while (length := self._early.pop(self._hashed, None)) is not None:
                    self._hash.update(os.pread(self._fd, length, self._hashed))
                    self._hashed += length
            self.touched = time.monotonic()
            return self._hashed

    def _check_chunk(self, offset: int, chunk: bytes) -> None:
        if self._closed:
            raise ArtifactError(f"{self.what}: the transfer is over (finished, failed or expired)")
        end = offset + len(chunk)
        if not chunk:
            raise ArtifactError(f"{self.what}: empty chunk at offset {offset}")
        if offset < self._hashed or any(start < end and offset < start + n for start, n in self._early.items()):
            raise ArtifactError(f"{self.what}: chunk at offset {offset} arrived twice (or overlaps one that did)")
        if end > self.size:
            raise ArtifactError(
                f"{self.what}: chunk at offset {offset} of {len(chunk)} bytes goes past the announced size {self.size}"
            )
        if end - self._hashed > self._max_ahead:
            raise ArtifactError(
                f"{self.what}: chunk at offset {offset} is too far ahead of the {self._hashed} bytes written "
                f"in order (at most {self._max_ahead} bytes past them)"
            )

    def keep(self, final: Path) -> None:
        """Check size and sha256, sync and rename to ``final``; ArtifactError (and no ``.part``) if damaged."""
        with self._lock:
            if self._closed:
                raise ArtifactError(f"{self.what}: the transfer is over (finished, failed or expired)")
            self._closed = True
            try:
                if self._hashed != self.size or self._early:
                    raise ArtifactError(
                        f"{self.what}: {self._hashed} of the announced {self.size} bytes arrived; nothing was kept"
                    )
                digest = self._hash.hexdigest()
                if digest != self.sha:
                    raise ArtifactError(
                        f"{self.what}: the bytes that arrived have sha256 {digest[:12]}..., not {self.sha[:12]}...; "
                        "nothing was kept"
                    )
                os.fsync(self._fd)
                self._close()
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

    def _close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def _remove(self) -> None:
        self._early.clear()
        self._close()
        with contextlib.suppress(OSError):
            self.part.unlink(missing_ok=True)


__all__ = ["READ_SIZE", "PartFile", "sha256_of", "sync_directory"]

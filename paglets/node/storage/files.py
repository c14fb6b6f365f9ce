"""Registered files and the content-addressed blobs that carry them between nodes.

A paglet registers a file (``register_file(path, mode="copy"|"move")``); the
node records it in :class:`FileRegistry`. When the paglet is dispatched or
cloned, each file goes to the target as a blob named by its sha256
(:class:`ArtifactStore`), uploaded in chunks and checked before it is kept,
and lands in the paglet's work dir there. A blob the target already has is
not sent again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from pathlib import Path

from paglets.core.errors import HostError, ProtocolError, TransferError
from paglets.core.files import MODES, PagletFileRef, check_file_name

CHUNK_SIZE = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileRegistry:
    """Which files each paglet on this node has registered. Owned by the host facade."""

    def __init__(self, max_bytes: int | None):
        self._max_bytes = max_bytes
        self._files: dict[str, dict[str, PagletFileRef]] = {}
        self._lock = threading.Lock()

    def register(self, agent_id: str, path: str | Path, name: str | None = None, mode: str = "copy") -> PagletFileRef:
        if mode not in MODES:
            raise HostError(f"file mode must be one of {MODES}, got {mode!r}")
        source = Path(path).expanduser().resolve()
        if not source.is_file():
            raise HostError(f"cannot register {str(path)!r}: not a regular file")
        size = source.stat().st_size
        if self._max_bytes is not None and size > self._max_bytes:
            raise HostError(f"cannot register {str(path)!r}: {size} bytes is over the limit of {self._max_bytes}")
        ref = PagletFileRef(check_file_name(name or source.name), str(source), size, mode)
        with self._lock:
            self._files.setdefault(agent_id, {})[ref.name] = ref
        return ref

    def adopt(self, agent_id: str, refs: list[PagletFileRef]) -> None:
        with self._lock:
            self._files[agent_id] = {ref.name: ref for ref in refs}

    def files(self, agent_id: str) -> list[PagletFileRef]:
        with self._lock:
            return list(self._files.get(agent_id, {}).values())

    def unregister(self, agent_id: str, name: str) -> None:
        with self._lock:
            files = self._files.get(agent_id, {})
            files.pop(name, None)
            if not files:
                self._files.pop(agent_id, None)

    def path(self, agent_id: str, name: str) -> Path:
        with self._lock:
            ref = self._files.get(agent_id, {}).get(name)
        if ref is None:
            raise HostError(f"paglet {agent_id!r} has no registered file {name!r}")
        return Path(ref.path)

    def drop(self, agent_id: str) -> list[PagletFileRef]:
        with self._lock:
            return list(self._files.pop(agent_id, {}).values())


class ArtifactStore:
    """Content-addressed blobs under ``<data dir>/artifacts``, with a size limit and a quota."""

    def __init__(self, root: Path, *, max_bytes: int | None, quota_bytes: int | None):
        self.root = root
        self._max_bytes = max_bytes
        self._quota = quota_bytes
        self._lock = threading.Lock()

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for partial in self.root.glob("*.part"):
            partial.unlink(missing_ok=True)

    def blob_path(self, sha: str) -> Path:
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ProtocolError(f"not a sha256 hex digest: {sha!r:.80}")
        return self.root / sha

    def has(self, sha: str, size: int) -> bool:
        path = self.blob_path(sha)
        return path.is_file() and path.stat().st_size == size

    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.iterdir() if p.is_file())

    def put_chunk(self, sha: str, offset: int, size: int, chunk: bytes, final: bool) -> int:
        """Append one chunk of blob ``sha``; on the final chunk verify and keep it. Returns bytes held."""
        final_path = self.blob_path(sha)
        partial = final_path.with_suffix(".part")
        with self._lock:
            if offset == 0:
                self._check_room(size)
                partial.unlink(missing_ok=True)
            held = partial.stat().st_size if partial.exists() else 0
            if held != offset:
                raise ProtocolError(f"blob {sha[:12]}: chunk at offset {offset}, but {held} bytes are held")
            if offset + len(chunk) > size:
                raise ProtocolError(f"blob {sha[:12]}: more bytes than the announced {size}")
            with open(partial, "ab") as handle:
                handle.write(chunk)
                if final:
                    handle.flush()
                    os.fsync(handle.fileno())
            held = offset + len(chunk)
            if final:
                self._keep(partial, final_path, sha, size, held)
        return held

    def _check_room(self, size: int) -> None:
        if self._max_bytes is not None and size > self._max_bytes:
            raise TransferError(f"file of {size} bytes is over this node's limit of {self._max_bytes}")
        if self._quota is not None and self.used_bytes() + size > self._quota:
            raise TransferError(f"file of {size} bytes would exceed this node's artifact quota of {self._quota}")

    @staticmethod
    def _keep(partial: Path, final_path: Path, sha: str, size: int, held: int) -> None:
        if held != size or sha256_of(partial) != sha:
            partial.unlink(missing_ok=True)
            raise TransferError(f"blob {sha[:12]} arrived damaged (size or sha256 mismatch)")
        os.replace(partial, final_path)
        with contextlib.suppress(OSError):
            fd = os.open(final_path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def materialize(self, sha: str, destination: Path) -> None:
        """Copy blob ``sha`` to ``destination`` (a copy, not a link: the paglet may change its file)."""
        source = self.blob_path(sha)
        if not source.is_file():
            raise TransferError(f"blob {sha[:12]} is missing on this node")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)


__all__ = ["CHUNK_SIZE", "ArtifactStore", "FileRegistry", "sha256_of"]

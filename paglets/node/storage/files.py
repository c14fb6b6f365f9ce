"""Registered files and the content-addressed blobs that carry them between nodes.

A paglet registers a file (``register_file(path, mode="copy"|"move")``); the
node records it in :class:`FileRegistry`. When the paglet is dispatched or
cloned, each file goes to the target as a blob named by its sha256
(:class:`~paglets.node.storage.artifacts.ArtifactStore`), uploaded in chunks and checked before it is kept,
and lands in the paglet's work dir there. A blob the target already has is
not sent again.
"""

from __future__ import annotations

import threading
from pathlib import Path

from paglets.core.errors import HostError
from paglets.core.files import MODES, PagletFileRef, check_file_name
from paglets.node.storage.artifacts import CHUNK_SIZE, ArtifactStore, sha256_of


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


__all__ = ["CHUNK_SIZE", "ArtifactStore", "FileRegistry", "sha256_of"]

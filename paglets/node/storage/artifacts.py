"""The node's content-addressed store: blobs named by sha256 under ``<data dir>/artifacts``.

Two kinds of blob live here:

* **artifacts** — files exchanged explicitly (``upload_artifact``, the
  ``artifacts`` CLI and HTTP routes). Each has a metadata record in
  ``.meta/<sha256>.json`` (name, created, owners) and is listed;
* **file blobs** — registered files on their way to a paglet that moves here
  (``blob_has``/``blob_put``, :meth:`ArtifactStore.put_chunk`); no metadata,
  copied into the paglet's work dir on arrival.

An upload is a *session*: ``begin`` checks the id, the size limit
(``artifact_max_bytes``) and the quota (``artifact_storage_quota_bytes``,
counting every session's full size as taken) before a byte is stored; its
chunks go to ``<sha256>.<token>.part`` through a
:class:`~paglets.client.artifact_sink.PartFile` (in order, hashed as they
come); ``commit`` checks size and sha256 and renames. A session nobody
touched for ``artifact_spool_ttl_seconds`` is dropped with its ``.part`` by
:meth:`ArtifactStore.expire` (the node's spool sweeper calls it on a timer).

Names are metadata only: a blob's path is always ``root / sha256``, and a
sha256 is checked before any path is made from it. An artifact owned by a
paglet (uploaded from it) goes when the paglet is disposed here
(:meth:`ArtifactStore.release_owner`), unless a client uploaded it too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paglets.client.artifact_sink import READ_SIZE, PartFile, sha256_of, sync_directory
from paglets.core.artifacts import ArtifactRef, check_artifact_id, check_artifact_name
from paglets.core.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactQuotaError,
    HostError,
    OverloadedError,
    ProtocolError,
)
from paglets.core.events import ContextEventLog
from paglets.node.storage.artifact_meta import META_DIR, ArtifactMeta, load_metadata, write_meta
from paglets.wire.protocol import AGENT_ID_PATTERN

CHUNK_SIZE = 1024 * 1024  # file blobs of moving paglets (blob_put)
TRANSFER_CHUNK = 1024 * 1024  # bytes per chunk of an artifact transfer
TRANSFER_WINDOW = 8  # chunks of one transfer in flight at once
MAX_READ = 8 * 1024 * 1024  # the most one artifact_get may ask for
MAX_SESSIONS = 64  # uploads and fetches in progress at once (each holds a file open)


@dataclass
class Session:
    """One upload or fetch in progress."""

    token: str
    sha: str
    name: str | None
    owner: str | None
    sink: PartFile


class ArtifactStore:
    """Blobs, artifact metadata and the uploads in progress. Any thread."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int | None,
        quota_bytes: int | None,
        host: Callable[[], str] = lambda: "",
        events: ContextEventLog | None = None,
    ):
        """``host`` gives the node's address (known once it runs); ``events`` gets ``artifact-*`` events."""
        self.root = root
        self._max_bytes = max_bytes
        self._quota = quota_bytes
        self._host = host
        self._events = events
        self._lock = threading.Lock()
        self._meta: dict[str, ArtifactMeta] = {}
        self._sessions: dict[str, Session] = {}

    # -- start-up ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the directories, drop every ``.part`` of an earlier run, load the metadata."""
        (self.root / META_DIR).mkdir(parents=True, exist_ok=True)
        for partial in self.root.glob("*.part"):
            partial.unlink(missing_ok=True)
        loaded = load_metadata(self.root)
        with self._lock:
            self._meta = loaded

    # -- paths and room ---------------------------------------------------------------------
    def blob_path(self, sha: str) -> Path:
        """The blob named ``sha`` (ProtocolError if it is not a sha256: never a path from outside)."""
        try:
            return self.root / check_artifact_id(sha)
        except ArtifactError as exc:
            raise ProtocolError(str(exc)) from None

    def has(self, sha: str, size: int) -> bool:
        path = self.blob_path(sha)
        return path.is_file() and path.stat().st_size == size

    def used_bytes(self) -> int:
        """Bytes on disk: blobs and partial files."""
        return sum(p.stat().st_size for p in self.root.iterdir() if p.is_file())

    def _taken(self) -> int:
        """Bytes counted against the quota: every blob, plus each session's full size (call under the lock)."""
        total = 0
        for path in self.root.iterdir():
            name = path.name
            if name.endswith(".part") and name.count(".") == 2:
                continue  # a session's part: counted at its full size below
            with contextlib.suppress(OSError):
                if path.is_file():
                    total += path.stat().st_size
        return total + sum(s.sink.size for s in self._sessions.values())

    def check_room(self, size: int) -> None:
        """ArtifactQuotaError if a file of ``size`` bytes may not be stored here (call under the lock)."""
        if size < 0:
            raise ArtifactError(f"artifact size must not be negative, got {size}")
        if self._max_bytes is not None and size > self._max_bytes:
            raise ArtifactQuotaError(f"file of {size} bytes is over this node's limit of {self._max_bytes} bytes "
                                     "(artifact_max_bytes)")  # fmt: skip
        if self._quota is not None:
            taken = self._taken()
            if taken + size > self._quota:
                raise ArtifactQuotaError(
                    f"file of {size} bytes would exceed this node's artifact quota of {self._quota} bytes "
                    f"({taken} taken; artifact_storage_quota_bytes)"
                )

    def usage(self) -> dict[str, Any]:
        with self._lock:
            return {"used": self._taken(), "quota": self._quota, "max": self._max_bytes,
                    "uploads": len(self._sessions)}  # fmt: skip

    # -- uploads --------------------------------------------------------------------------------
    def begin(
        self, sha: str, size: int, name: str | None, *, owner: str | None = None, what: str = "upload"
    ) -> ArtifactRef | Session:
        """Start storing artifact ``sha``: its ref if the store holds it already, else a new session.

        ``name`` None keeps the name the artifact has (its id for a new one).
        Refused (ArtifactQuotaError, ArtifactError) before a byte is stored.
        """
        sha = check_artifact_id(sha)
        name = None if name is None else check_artifact_name(name)
        owner = _check_owner(owner)
        with self._lock:
            if self._blob_size(sha) == size:
                return self._record(sha, name, size, owner)
            if len(self._sessions) >= MAX_SESSIONS:
                raise OverloadedError(f"{len(self._sessions)} artifact transfers are in progress on this node; "
                                      "retry later")  # fmt: skip
            self.check_room(size)
            token = secrets.token_hex(8)
            sink = PartFile(self.root / f"{sha}.{token}.part", size, sha, TRANSFER_CHUNK * TRANSFER_WINDOW,
                            f"artifact {sha[:12]} ({what})")  # fmt: skip
            session = self._sessions[token] = Session(token, sha, name, owner, sink)
        return session

    def put(self, token: str, offset: int, chunk: bytes) -> int:
        """Write one chunk of upload ``token``; bytes written in order so far. A bad chunk ends the upload."""
        session = self._session(token)
        try:
            return session.sink.put(offset, chunk)
        except BaseException:
            self.abort(token)
            raise

    def commit(self, token: str) -> ArtifactRef:
        """Check and keep upload ``token``'s file; its ref."""
        with self._lock:
            session = self._sessions.pop(token, None)
        if session is None:
            raise _no_session(token)
        session.sink.keep(self.root / session.sha)
        with self._lock:
            return self._record(session.sha, session.name, session.sink.size, session.owner)

    def abort(self, token: str) -> None:
        with self._lock:
            session = self._sessions.pop(token, None)
        if session is not None:
            session.sink.discard()

    def _session(self, token: str) -> Session:
        with self._lock:
            session = self._sessions.get(token)
        if session is None:
            raise _no_session(token)
        return session

    def import_file(self, path: Path, name: str | None, owner: str | None) -> ArtifactRef:
        """Store a file of this machine (a paglet's upload to its own node), checked like any upload."""
        if not path.is_file():
            raise ArtifactError(f"cannot upload {str(path)!r}: not a regular file")
        size = path.stat().st_size
        with self._lock:
            self.check_room(size)  # before the hashing pass, so a file far too big costs nothing
        started = self.begin(sha256_of(path), size, path.name if name is None else name, owner=owner, what="local")
        if isinstance(started, ArtifactRef):
            return started
        try:
            with open(path, "rb") as handle:
                offset = 0
                while chunk := handle.read(READ_SIZE):
                    offset = started.sink.put(offset, chunk)
        except BaseException:
            self.abort(started.token)
            raise
        return self.commit(started.token)

    # -- reading ----------------------------------------------------------------------------
    def stat(self, sha: str) -> ArtifactRef:
        sha = check_artifact_id(sha)
        with self._lock:
            meta = self._meta.get(sha)
            if meta is None:
                raise self._not_found(sha)
            return self._ref(sha, meta)

    def read(self, sha: str, offset: int, length: int) -> bytes:
        """``length`` bytes of artifact ``sha`` from ``offset`` (at most MAX_READ, within the file)."""
        size = self.stat(sha).size
        if not 0 < length <= MAX_READ or offset < 0 or offset + length > size:
            raise ArtifactError(f"artifact {sha[:12]}: cannot read {length} bytes at offset {offset} of {size} "
                                f"(at most {MAX_READ} at once)")  # fmt: skip
        fd = self._open(sha)
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(data) != length:
            raise ArtifactError(f"artifact {sha[:12]} is shorter on disk than recorded")
        return data

    def open_blob(self, sha: str) -> tuple[ArtifactRef, Any]:
        """The ref and an open binary file of artifact ``sha`` (the caller closes it)."""
        ref = self.stat(sha)
        return ref, os.fdopen(self._open(sha), "rb")

    def _open(self, sha: str) -> int:
        try:
            return os.open(self.root / sha, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise self._not_found(sha) from None

    def refs(self) -> list[ArtifactRef]:
        with self._lock:
            refs = [self._ref(sha, meta) for sha, meta in self._meta.items()]
        return sorted(refs, key=lambda ref: (ref.created, ref.id))

    # -- removal ------------------------------------------------------------------------------
    def delete(self, sha: str) -> ArtifactRef:
        """Remove artifact ``sha`` for everyone who holds it; its last ref."""
        sha = check_artifact_id(sha)
        with self._lock:
            meta = self._meta.pop(sha, None)
            if meta is None:
                raise self._not_found(sha)
            ref = self._ref(sha, meta)
            self._remove_files(sha)
        self._emit("artifact-deleted", id=sha, size=meta.size, why="deleted")
        return ref

    def release_owner(self, agent_id: str) -> list[str]:
        """Paglet ``agent_id`` is gone: drop its hold on every artifact; the ids removed for good."""
        removed = []
        with self._lock:
            for sha, meta in list(self._meta.items()):
                if agent_id not in meta.owners:
                    continue
                meta.owners.remove(agent_id)
                if meta.owners or meta.kept:
                    self._write_meta(sha, meta)
                    continue
                del self._meta[sha]
                self._remove_files(sha)
                removed.append(sha)
        for sha in removed:
            self._emit("artifact-deleted", id=sha, owner=agent_id, why="owner disposed")
        return removed

    def expire(self, ttl: float) -> list[Session]:
        """Drop every session idle for ``ttl`` seconds and every stray ``.part`` as old; the sessions dropped."""
        now = time.monotonic()
        with self._lock:
            stale = [s for s in self._sessions.values() if now - s.sink.touched >= ttl]
            for session in stale:
                del self._sessions[session.token]
            live = {s.sink.part.name for s in self._sessions.values()}
        for session in stale:
            written = session.sink.written
            session.sink.discard()
            self._emit("artifact-upload-expired", id=session.sha, token=session.token, written=written,
                       size=session.sink.size)  # fmt: skip
        self._sweep_parts(live, ttl)
        return stale

    def _sweep_parts(self, live: set[str], ttl: float) -> None:
        """Remove ``.part`` files no session owns (a file blob's upload that stopped) older than ``ttl``."""
        cutoff = time.time() - ttl
        for partial in self.root.glob("*.part"):
            if partial.name in live:
                continue
            with contextlib.suppress(OSError):
                if partial.stat().st_mtime <= cutoff:
                    partial.unlink()
                    self._emit("artifact-part-removed", file=partial.name)

    # -- file blobs of moving paglets (blob_put) ---------------------------------------------------
    def put_chunk(self, sha: str, offset: int, size: int, chunk: bytes, final: bool) -> int:
        """Append one chunk of file blob ``sha``; on the final chunk verify and keep it. Returns bytes held."""
        final_path = self.blob_path(sha)
        partial = final_path.with_suffix(".part")
        with self._lock:
            if offset == 0:
                partial.unlink(missing_ok=True)
                self.check_room(size)
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
                if held != size or sha256_of(partial) != sha:
                    partial.unlink(missing_ok=True)
                    raise HostError(f"blob {sha[:12]} arrived damaged (size or sha256 mismatch)")
                os.replace(partial, final_path)
                sync_directory(final_path.parent)
        return held

    def materialize(self, sha: str, destination: Path) -> None:
        """Copy blob ``sha`` to ``destination`` (a copy, not a link: the paglet may change its file)."""
        source = self.blob_path(sha)
        if not source.is_file():
            raise HostError(f"blob {sha[:12]} is missing on this node")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)

    # -- records ------------------------------------------------------------------------------
    def _blob_size(self, sha: str) -> int | None:
        try:
            return (self.root / sha).stat().st_size
        except OSError:
            return None

    def _record(self, sha: str, name: str | None, size: int, owner: str | None) -> ArtifactRef:
        """Note one more upload of artifact ``sha`` (under the lock); the uploader's ref."""
        meta = self._meta.get(sha)
        fresh = meta is None
        if meta is None:
            meta = self._meta[sha] = ArtifactMeta(name=name or sha, size=size, created=time.time())
        meta.name = name or meta.name
        if owner is None:
            meta.kept = True
        elif owner not in meta.owners:
            meta.owners.append(owner)
        self._write_meta(sha, meta)
        if fresh:
            self._emit("artifact-stored", id=sha, size=size, name=name, owner=owner)
        return ArtifactRef(self._host(), sha, meta.name, size, sha, meta.created, owner)

    def _ref(self, sha: str, meta: ArtifactMeta) -> ArtifactRef:
        owner = meta.owners[0] if meta.owners and not meta.kept else None
        return ArtifactRef(self._host(), sha, meta.name, meta.size, sha, meta.created, owner)

    def _write_meta(self, sha: str, meta: ArtifactMeta) -> None:
        write_meta(self.root, sha, meta)

    def _remove_files(self, sha: str) -> None:
        (self.root / META_DIR / f"{sha}.json").unlink(missing_ok=True)
        (self.root / sha).unlink(missing_ok=True)

    def _not_found(self, sha: str) -> ArtifactNotFoundError:
        return ArtifactNotFoundError(f"no artifact {sha[:12]}... on node {self._host() or 'here'}")

    def _emit(self, kind: str, **data: Any) -> None:
        if self._events is not None:
            self._events.emit(kind, **data)


def _check_owner(owner: Any) -> str | None:
    if owner is None:
        return None
    if not isinstance(owner, str) or not AGENT_ID_PATTERN.match(owner):
        raise ArtifactError(f"artifact owner {owner!r:.80} is not an agent id")
    return owner


def _no_session(token: str) -> ArtifactError:
    return ArtifactError(f"no artifact transfer {token!r:.40} in progress here (it finished, failed or expired)")


__all__ = [
    "CHUNK_SIZE",
    "MAX_READ",
    "MAX_SESSIONS",
    "TRANSFER_CHUNK",
    "TRANSFER_WINDOW",
    "ArtifactMeta",
    "ArtifactStore",
    "Session",
    "sha256_of",
]

"""ManagedStorage: a quota-limited directory of files for one paglet class.

Worker processes of the same class share the directory, so every change
(write, delete) happens under an exclusive ``fcntl.flock`` on ``root/.lock``;
reads take no lock, because writes are atomic (temp file, fsync, ``os.replace``)
and a reader sees either the old content or the new one.

Names are relative paths of plain components (``notes.txt``, ``cache/a.bin``).
Anything starting with ``.`` is reserved: the lock file and the ``.tmp-*`` files
of writes in progress live there and never count as content or against the quota.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from paglets.core.errors import StorageQuotaError

LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"


def _check_name(name: object) -> str:
    """``name`` if it is a safe relative path inside the storage, else ValueError/TypeError."""
    if not isinstance(name, str):
        raise TypeError(f"storage name must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError("storage name must not be empty")
    if "\x00" in name or "\\" in name:
        raise ValueError(f"storage name {name!r} contains a NUL or a backslash")
    if name.startswith("/"):
        raise ValueError(f"storage name {name!r} must be relative")
    for part in name.split("/"):
        if not part or part in (".", ".."):
            raise ValueError(f"storage name {name!r} has an empty, '.' or '..' component")
        if part.startswith("."):
            raise ValueError(f"storage name {name!r} has a component starting with '.' (reserved)")
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _regular_size(path: Path) -> int:
    """Size of the regular file at ``path``; 0 when it is missing or not a regular file."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


class ManagedStorage:
    """A directory with a byte quota, owned by one paglet class.

    Owns ``root`` and everything below it: the content files, the lock file and
    the temp files of writes in progress. ``quota_bytes=None`` means no limit.
    The root is created on the first write.
    """

    def __init__(self, root: str | os.PathLike[str], quota_bytes: int | None = None) -> None:
        if quota_bytes is not None and (isinstance(quota_bytes, bool) or not isinstance(quota_bytes, int)):
            raise TypeError(f"quota_bytes must be an int or None, got {type(quota_bytes).__name__}")
        if quota_bytes is not None and quota_bytes < 0:
            raise ValueError(f"quota_bytes must be >= 0, got {quota_bytes}")
        self.root = Path(root)
        self.quota_bytes = quota_bytes

    def __repr__(self) -> str:
        quota = "unlimited" if self.quota_bytes is None else f"{self.quota_bytes} bytes"
        return f"ManagedStorage(root={str(self.root)!r}, quota={quota})"

    # ------------------------------------------------------------ reading

    def path(self, name: str) -> Path:
        """The file path of ``name``; ValueError for names that could leave the root."""
        return self.root / _check_name(name)

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def read_bytes(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def read_text(self, name: str, encoding: str = "utf-8") -> str:
        return self.path(name).read_bytes().decode(encoding)

    def names(self) -> list[str]:
        """Every stored name, sorted; the lock and temp files are not content."""
        return sorted(name for name, _ in self._scan()[0])

    def used_bytes(self) -> int:
        return sum(size for _, size in self._scan()[0])

    def free_bytes(self) -> int | None:
        """Bytes still writable under the quota, or None when there is no quota."""
        if self.quota_bytes is None:
            return None
        return max(0, self.quota_bytes - self.used_bytes())

    def status(self) -> dict[str, Any]:
        """``root``, ``quota_bytes`` (None: no limit), ``used_bytes``, ``free_bytes`` and ``file_count``."""
        files = self._scan()[0]
        used = sum(size for _, size in files)
        free = None if self.quota_bytes is None else max(0, self.quota_bytes - used)
        return {
            "root": str(self.root),
            "quota_bytes": self.quota_bytes,
            "used_bytes": used,
            "free_bytes": free,
            "file_count": len(files),
        }

    # ------------------------------------------------------------ changing

    def write_text(self, name: str, text: str, encoding: str = "utf-8") -> None:
        if not isinstance(text, str):
            raise TypeError(f"write_text needs a str, got {type(text).__name__}")
        self.write_bytes(name, text.encode(encoding))

    def write_bytes(self, name: str, data: bytes | bytearray | memoryview) -> None:
        """Replace ``name`` with ``data`` atomically and durably, within the quota.

        Raises :class:`StorageQuotaError` (old content intact, no temp file left)
        when the write would take the storage over its quota.
        """
        target = self.path(name)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write_bytes needs bytes, got {type(data).__name__}")
        data = bytes(data)
        with self._locked():
            self._check_quota(name, target, len(data))
            self._make_parents(target.parent)
            self._replace(target, data)

    def delete(self, name: str) -> None:
        """Remove ``name`` (a missing name is fine) and any directories it leaves empty."""
        target = self.path(name)
        if not self.root.is_dir():
            return
        with self._locked():
            try:
                target.unlink()
            except FileNotFoundError:
                return
            _fsync_dir(target.parent)
            self._prune_empty_dirs(target.parent)

    def clear(self) -> int:
        """Remove every stored file (and the directories that leaves empty); how many were removed.

        The storage is shared by the paglet's class on this node: every paglet of it sees it empty.
        """
        if not self.root.is_dir():
            return 0
        with self._locked():
            names = [name for name, _ in self._scan()[0]]
            for name in names:
                target = self.root / name
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                self._prune_empty_dirs(target.parent)
            _fsync_dir(self.root)
        return len(names)

    # ------------------------------------------------------------ internals

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the class-wide write lock; temp files seen under it are from crashed writers."""
        created = not self.root.is_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        if created:
            _fsync_dir(self.root.parent)
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._remove_stale_temps()
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _check_quota(self, name: str, target: Path, size: int) -> None:
        if self.quota_bytes is None:
            return
        used = self.used_bytes()
        current = _regular_size(target)
        after = used - current + size
        if after > self.quota_bytes:
            raise StorageQuotaError(
                f"storage quota exceeded writing {name!r} ({size} bytes, replacing {current}) in {self.root}: "
                f"{used} of {self.quota_bytes} bytes used, the write would make it {after}",
                name=name,
                size=size,
                used=used,
                quota=self.quota_bytes,
            )

    def _make_parents(self, directory: Path) -> None:
        """Create the missing directories between root and ``directory``, durably."""
        missing: list[Path] = []
        while directory != self.root and not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            path.mkdir()
            _fsync_dir(path.parent)

    def _replace(self, target: Path, data: bytes) -> None:
        fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, target)
        except BaseException:
            try:
                os.unlink(temp_name)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(target.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root:
            try:
                directory.rmdir()
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return
                raise
            _fsync_dir(directory.parent)
            directory = directory.parent

    def _remove_stale_temps(self) -> None:
        for temp in self._scan()[1]:
            try:
                temp.unlink()
            except FileNotFoundError:
                pass

    def _scan(self) -> tuple[list[tuple[str, int]], list[Path]]:
        """(name, size) of every content file, and the temp files found on the way."""
        files: list[tuple[str, int]] = []
        temps: list[Path] = []
        pending = [(self.root, "")]
        while pending:
            directory, prefix = pending.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                try:
                    if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                        temps.append(Path(entry.path))
                    elif entry.name.startswith("."):
                        continue
                    elif entry.is_dir(follow_symlinks=False):
                        pending.append((Path(entry.path), f"{prefix}{entry.name}/"))
                    elif entry.is_file(follow_symlinks=False):
                        files.append((prefix + entry.name, entry.stat(follow_symlinks=False).st_size))
                except FileNotFoundError:  # removed while we looked: it is not there
                    continue
        return files, temps


def class_storage_dir(root: Path, class_name: str) -> Path:
    """The persistent-storage directory shared by every paglet of ``class_name``."""
    key = "".join(c if c.isalnum() or c in "._-" else "_" for c in class_name.replace(":", "."))
    return root / (key or "storage")


__all__ = ["ManagedStorage", "StorageQuotaError", "class_storage_dir"]

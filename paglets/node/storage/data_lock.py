"""One running node per data directory: ``<data_dir>/node.lock``, held with ``flock`` while the node runs.

A node wipes ``work/`` when it starts and wakes every record under its data
directory, so two nodes sharing one would destroy each other's work and wake
each other's paglets. The lock is an advisory ``flock`` on an open file: the
kernel drops it when its holder exits, however it died, so a killed node never
blocks a restart. The file holds the holder's pid, for the refusal message
only (the lock, not the file, says who holds it). The file is never removed:
removing it would let two nodes lock two different files of the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from paglets.core.errors import HostError

LOCK_NAME = "node.lock"
PID_BYTES = 32  # the most of the file read back for the holder's pid


class DataDirLock:
    """The lock of one data directory, taken by :meth:`acquire` and given up by :meth:`release`."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (creating the directory if need be); HostError naming the holder if another has it."""
        if self._fd is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise HostError(
                f"data directory {self.data_dir} is in use by another running node ({holder}; lock file "
                f"{self.path}): stop that node first, or give this one its own --name or --data-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (the file stays, emptied)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor of the open file drops the flock


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, PID_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"


__all__ = ["LOCK_NAME", "DataDirLock"]

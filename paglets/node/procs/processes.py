"""Which worker processes of this node are alive.

The template process reports every fork and every exit; stop and dispose wait here for
a worker to be gone (woken by the exit report, not by polling) before they
fall back to SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading


class WorkerProcesses:
    """Owns the node's table of live worker pids."""

    def __init__(self) -> None:
        self._alive: dict[int, str] = {}
        self._cond = threading.Condition()

    def forked(self, agent_id: str, pid: int) -> None:
        with self._cond:
            self._alive[pid] = agent_id

    def exited(self, pid: int) -> None:
        with self._cond:
            self._alive.pop(pid, None)
            self._cond.notify_all()

    def alive(self) -> dict[int, str]:
        with self._cond:
            return dict(self._alive)

    def wait_gone(self, pid: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pid not in self._alive, timeout)

    def wait_all_gone(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._alive, timeout)

    def kill(self, pid: int) -> None:
        with self._cond:
            if pid not in self._alive:
                return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)

    def kill_all(self, wait: float = 2.0) -> None:
        """SIGKILL every worker still alive and wait (bounded) for the exit reports."""
        for pid in self.alive():
            self.kill(pid)
        with self._cond:
            self._cond.wait_for(lambda: not self._alive, wait)

    def forget_all(self) -> None:
        with self._cond:
            self._alive.clear()
            self._cond.notify_all()


__all__ = ["WorkerProcesses"]

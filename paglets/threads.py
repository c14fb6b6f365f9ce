"""Long-lived threads for a worker's node requests (hooks, state snapshots, dispose).

Threads start on demand and then stay, so each keeps the socket it opened to
the node: a request costs a queue hand-off, not a new thread, socket and
connect. A request that blocks (a slow hook) makes the pool grow, up to
``limit``, so it never holds up a state snapshot.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable


class ThreadPool:
    """Owns its threads and the jobs waiting for one."""

    def __init__(self, name: str, limit: int = 16):
        self._name = name
        self._limit = max(1, limit)
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._cond = threading.Condition()
        self._idle = 0  # threads waiting for a job and not yet promised one
        self._threads = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._cond:
            self._jobs.append(job)
            if self._idle:
                self._idle -= 1
                self._cond.notify()
                return
            if self._threads >= self._limit:
                return  # a busy thread takes it when it finishes
            self._threads += 1
            number = self._threads
        threading.Thread(target=self._serve, name=f"{self._name}-{number}", daemon=True).start()

    def _serve(self) -> None:
        jobs = self._jobs
        cond = self._cond
        while True:
            with cond:
                while not jobs:
                    self._idle += 1
                    cond.wait()
                job = jobs.popleft()
            job()


__all__ = ["ThreadPool"]

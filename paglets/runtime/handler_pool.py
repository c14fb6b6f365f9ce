"""The threads that run a paglet's message handlers.

At most ``size`` handlers run at once; the node never sends more queued
messages than that (credit), so a job never waits long for a thread. Threads
start lazily: an idle paglet costs no handler threads. Unqueued messages
(``UNQUEUED_PRIORITY``) bypass the limit and run on a thread of their own.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable


class HandlerPool:
    """Owns the handler threads and the jobs waiting for one."""

    def __init__(self, size: int, name: str):
        self._size = max(1, size)
        self._name = name
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
            if self._threads >= self._size:
                return  # a busy thread takes it when it finishes
            self._threads += 1
        self._start(self._serve, f"{self._name}-{self._threads}")

    def submit_unqueued(self, job: Callable[[], None]) -> None:
        self._start(job, f"{self._name}-unqueued")

    @staticmethod
    def _start(target: Callable[[], None], name: str) -> None:
        threading.Thread(target=target, name=name, daemon=True).start()

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


__all__ = ["HandlerPool"]

"""The one kind of thread pool in paglets: named, bounded, growing on demand, stoppable.

Threads start when work arrives and no thread is idle, up to ``limit``, and
then stay: a worker's control thread keeps the socket it opened to its node,
so a request costs a queue hand-off rather than a new thread, socket and
connect. A job that blocks makes the pool grow, so it never holds up the
next one while there is room. :meth:`submit` returns a Future that completes
with the job's result or exception; an exception never kills the thread that
ran it - nor does one raised by a callback of that Future - so a pool never
shrinks below what it counts. Whoever creates a pool owns it and calls
:meth:`shutdown`; its counts are guarded by its condition.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("paglets.threads")

Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Future]


class ThreadPool:
    """Owns its threads and the jobs waiting for one."""

    def __init__(self, name: str, limit: int = 16):
        self.name = name
        self._limit = max(1, limit)
        self._jobs: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._idle = 0  # threads waiting for a job and not yet promised one
        self._threads = 0
        self._stopped = False

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a pool thread; RuntimeError once the pool is shut down."""
        future: Future[Any] = Future()
        with self._cond:
            if self._stopped:
                raise RuntimeError(f"thread pool {self.name} is shut down")
            self._jobs.append((fn, args, kwargs, future))
            if self._idle:
                self._idle -= 1
                self._cond.notify()
                return future
            if self._threads >= self._limit:
                return future  # a busy thread takes it when it finishes
            self._threads += 1
            number = self._threads
        try:
            threading.Thread(target=self._serve, name=f"{self.name}-{number}", daemon=True).start()
        except BaseException:
            with self._cond:  # no thread was started: count none, and take the job back unless one took it
                self._threads -= 1
                taken_back = self._take_back(future)
            if taken_back:
                raise
        return future

    def _take_back(self, future: Future[Any]) -> bool:
        """Remove the job of ``future`` if it still waits (with the condition held); True if it did."""
        for index, job in enumerate(self._jobs):
            if job[3] is future:
                del self._jobs[index]
                return True
        return False

    def shutdown(self) -> None:
        """Take no more jobs; jobs not started yet fail with RuntimeError; idle threads end."""
        with self._cond:
            self._stopped = True
            waiting = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        for *_job, future in waiting:
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError(f"thread pool {self.name} shut down before the job ran"))

    def _serve(self) -> None:
        jobs = self._jobs
        cond = self._cond
        while True:
            with cond:
                while not jobs:
                    if self._stopped:
                        self._threads -= 1
                        return
                    self._idle += 1
                    cond.wait()
                    if self._stopped and not jobs:
                        self._threads -= 1
                        return
                fn, args, kwargs, future = jobs.popleft()
            try:
                self._run(fn, args, kwargs, future)
            except BaseException:  # from a callback of the job's Future: the thread carries on all the same
                log.exception("thread pool %s: a callback of a job's Future raised", self.name)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # the job's failure belongs to its Future, never to the thread
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                log.error("thread pool %s: a job raised %s", self.name, type(exc).__name__)
        else:
            future.set_result(result)


__all__ = ["ThreadPool"]

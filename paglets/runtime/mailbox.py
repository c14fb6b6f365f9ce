"""MessageMailbox: a priority mailbox with its own handler threads, for code outside a node's broker.

Code written for the HTTP paglets API drives a mailbox itself (host-side
dispatchers, tests of delivery order). The node's own mailboxes live in its
broker loop (:mod:`paglets.node.broker.mailbox`, no threads); this one wraps
the same ordering core - highest priority first, first in first out within a
priority - with up to ``max_workers`` threads that call ``handler(message,
oneway)``. :meth:`status` counts what is queued, in flight, delivered and
failed; :meth:`close` fails what is still queued with a LifecycleError.

Threads: a :class:`~paglets.threads.ThreadPool` owned by the mailbox runs the
handlers; every method may be called from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from paglets.core.errors import LifecycleError
from paglets.core.messages import Message
from paglets.node.broker.mailbox import MailboxQueue, MailboxStatus
from paglets.threads import ThreadPool

Handler = Callable[[Message, bool], Any]


class MessageMailbox:
    """Priority mailbox for one paglet; owns its queue, its counts and its handler threads."""

    def __init__(self, agent_id: str, handler: Handler, *, max_workers: int = 4):
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.agent_id = agent_id
        self._handler = handler
        self._max_workers = max_workers
        self._pool = ThreadPool(f"paglets-mailbox-{agent_id[:8]}", limit=max_workers + 4)
        self._changed = threading.Condition()  # guards everything below; notified as mail comes and goes
        self._queue: MailboxQueue[tuple[Message, bool, Future[Any]]] = MailboxQueue()
        self._closed = False
        self._draining = 0  # threads taking queued messages, at most max_workers
        self._in_flight = self._delivered = self._failed = 0

    def submit(self, message: Message, *, oneway: bool = False) -> Future[Any]:
        """Queue ``message``; the Future gets the handler's result (or error)."""
        future: Future[Any] = Future()
        with self._changed:
            if self._closed:
                future.set_exception(self._closed_error())
                return future
            self._queue.push(message.priority, (message, oneway, future))
            self._changed.notify_all()
            start = self._draining < self._max_workers
            if start:
                self._draining += 1
        if start:
            try:
                self._pool.submit(self._drain)
            except RuntimeError:  # closed meanwhile: close() failed what was queued
                pass
        return future

    def submit_unqueued(self, message: Message, *, oneway: bool = False) -> Future[Any]:
        """Run ``message`` at once on a thread of its own, past the queue."""
        future: Future[Any] = Future()
        with self._changed:
            if self._closed:
                future.set_exception(self._closed_error())
                return future
        try:
            self._pool.submit(self._run, message, oneway, future)
        except RuntimeError:  # closed meanwhile
            future.set_exception(self._closed_error())
        return future

    def wait_message(self, timeout: float | None = None) -> bool:
        """Wait until mail comes or goes (or a notify); False after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait(timeout)

    def notify_message(self) -> None:
        with self._changed:
            self._changed.notify(1)

    def notify_all_messages(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def status(self) -> MailboxStatus:
        with self._changed:
            return MailboxStatus(len(self._queue), self._in_flight, self._delivered, self._failed)

    def close(self) -> None:
        """Fail every queued message; what is running finishes. Later submissions fail at once."""
        with self._changed:
            self._closed = True
            queued = self._queue.drain()
            self._changed.notify_all()
        for _message, _oneway, future in queued:
            future.set_exception(self._closed_error())
        self._pool.shutdown()

    def _closed_error(self) -> LifecycleError:
        return LifecycleError(f"the mailbox of paglet {self.agent_id!r} is closed")

    def _drain(self) -> None:
        """A handler thread: take the next queued message until none is left."""
        while True:
            with self._changed:
                if self._closed or not len(self._queue):
                    self._draining -= 1
                    return
                message, oneway, future = self._queue.pop()
            self._run(message, oneway, future)

    def _run(self, message: Message, oneway: bool, future: Future[Any]) -> None:
        with self._changed:
            self._in_flight += 1
        try:
            result = self._handler(message, oneway)
        except Exception as exc:
            self._count(failed=True)
            future.set_exception(exc)
        else:
            self._count(failed=False)
            future.set_result(result)

    def _count(self, *, failed: bool) -> None:
        with self._changed:
            self._in_flight -= 1
            if failed:
                self._failed += 1
            else:
                self._delivered += 1
            self._changed.notify_all()


__all__ = ["MessageMailbox"]

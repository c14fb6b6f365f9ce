"""The broker's lanes: where work that leaves its loop runs, so cheap requests never wait behind slow ones.

Each lane is a thread pool plus a bound on the jobs it holds (running or
waiting for a thread). The count of held jobs is owned by the broker loop:
the loop admits a job into a lane and releases it once the job's answer is
posted back to it, so the count needs no lock; a lane that is full refuses
at once with :class:`~paglets.core.errors.OverloadedError` rather than
queueing forever. A job that raises fails only its own Future (and is
logged with its traceback): the lane keeps its threads.

The node has four (see :class:`~paglets.node.broker.loop.Broker`):

* ``reads`` — requests that only look (health, list, info, state, hosts,
  gossip): a few threads, a large bound.
* ``ops`` — what a client or another node asks that may take long (create,
  moves, parking, transfers, blobs, messages for a paglet not here yet): as
  many threads as the node allows and a bound (``max_slow_ops``) that a
  flood of moves toward a silent address fills long before the node starves.
* ``calls`` — what the node's own paglets ask (host calls) and the node's
  notices (a crash, an event, a parked paglet to wake): not bounded here,
  since they come from code the node runs, but never behind a remote flood.
* ``transfers`` — chunks of artifact transfers (``artifact_chunk``,
  ``artifact_get``): short, numerous and pipelined, so they neither fill
  ``max_slow_ops`` nor wait behind moves; a few threads, a bound of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from paglets.core.errors import OverloadedError
from paglets.threads import ThreadPool

log = logging.getLogger("paglets.broker")


class Lane:
    """One pool of the broker and the jobs it holds. :meth:`admit` and :meth:`release`: loop thread only."""

    def __init__(self, name: str, what: str, threads: int, limit: int | None = None):
        self.what = what
        self.limit = limit
        self.held = 0
        self._pool = ThreadPool(name, threads)

    def admit(self, node_name: str) -> OverloadedError | None:
        """Count one more job in; the refusal to give its caller when the lane is full."""
        if self.limit is not None and self.held >= self.limit:
            return OverloadedError(
                f"node {node_name} is busy: {self.held} {self.what} are running or waiting "
                f"(the limit is {self.limit}); try again later"
            )
        self.held += 1
        return None

    def release(self) -> None:
        self.held -= 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the lane's pool (RuntimeError once it is shut down).

        Nobody reads most of these Futures (notices of crashes and events), so
        what a job raises is logged here.
        """
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._log_failure)
        return future

    def _log_failure(self, future: Future[Any]) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is not None:
            log.error("broker lane %s: a job failed: %r", self._pool.name, exc, exc_info=exc)

    def shutdown(self) -> None:
        self._pool.shutdown()


__all__ = ["Lane"]

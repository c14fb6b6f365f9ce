"""The broker's lanes: where work that leaves its loop runs, so cheap requests never wait behind slow ones.

Each lane is a thread pool plus a bound on the jobs it holds (running or
waiting for a thread). The count of held jobs is owned by the broker loop:
the loop admits a job into a lane and releases it once the job's answer is
posted back to it, so the count needs no lock; a lane that is full refuses
at once with :class:`~paglets.core.errors.OverloadedError` rather than
queueing forever. A job that raises fails only its own Future (and is
logged with its traceback): the lane keeps its threads.

The node has four, held by :class:`BrokerLanes` (which also knows which
lane a front request takes and brings each job's answer back to the loop):

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

from paglets.core.errors import OverloadedError, PagletCrashedError, PagletError
from paglets.loops import LoopChannel
from paglets.node.broker.slots import Origin, Sender
from paglets.threads import ThreadPool
from paglets.wire import protocol
from paglets.wire.errors import error_to_wire

log = logging.getLogger("paglets.broker")

READ_THREADS = 16
READS_LIMIT = 4096  # read requests running or waiting; a flood beyond gets OverloadedError
# ping and mailbox: in the loop
READ_OPS = frozenset({"health", "list", "info", "state", "hosts", "gossip", "services", "events"})
# Chunks of artifact transfers: many, short and pipelined (a window per transfer), on a lane of their own so
# they neither fill max_slow_ops nor wait behind moves.
TRANSFER_OPS = frozenset({"artifact_chunk", "artifact_get"})
TRANSFER_THREADS = 8
TRANSFERS_LIMIT = 1024  # chunks running or waiting: 64 transfers x a window of 8, twice over
Answer = tuple[dict[str, Any], list[bytes]]


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


class BrokerLanes:
    """The four lanes of one broker, and the way a job's answer comes back to its loop."""

    def __init__(self, node_name: str, sender: Sender, channel: LoopChannel, *, op_threads: int, max_slow_ops: int):
        self._node_name = node_name
        self._sender = sender
        self._channel = channel
        self.reads = Lane(f"paglets-reads-{node_name}", "read requests", READ_THREADS, READS_LIMIT)
        self.ops = Lane(
            f"paglets-ops-{node_name}", "slow requests (create, moves, parking, transfers)", op_threads, max_slow_ops
        )
        self.calls = Lane(f"paglets-calls-{node_name}", "host calls", op_threads)  # the node's own paglets
        self.transfers = Lane(f"paglets-transfers-{node_name}", "artifact chunks", TRANSFER_THREADS, TRANSFERS_LIMIT)

    def run(self, origin: Origin, compute: Callable[[], Answer], lane: Lane) -> None:
        """In the loop: run ``compute`` on ``lane`` and answer ``origin`` from the loop when it is done.

        A full lane refuses at once; a stopping node fails the request.
        """
        sender = self._sender
        refusal = lane.admit(self._node_name)
        if refusal is not None:
            origin.fail(sender, error_to_wire(refusal))
            return

        def work() -> None:
            try:
                header, payload = compute()
                packed = protocol.pack(header)
            except BaseException as exc:  # every failure becomes a typed reply, and the lane is released
                if not isinstance(exc, PagletError):
                    log.exception("broker: op failed")
                wire = error_to_wire(exc)
                self._answer(lane, lambda: origin.fail(sender, wire))
                return
            self._answer(lane, lambda: origin.ok(sender, payload, packed))

        try:
            lane.submit(work)
        except RuntimeError:
            lane.release()
            origin.fail(sender, error_to_wire(PagletCrashedError(f"node {self._node_name} is stopping")))

    def _answer(self, lane: Lane, reply: Callable[[], None]) -> None:
        """From a lane's thread: in the loop, count the job out of its lane and send its reply."""

        def deliver() -> None:
            lane.release()
            reply()

        self._channel.post(deliver)

    def held(self) -> dict[str, int]:
        """Jobs the bounded front lanes hold now, for the metrics (loop thread)."""
        return {"reads": self.reads.held, "ops": self.ops.held}

    def shutdown(self) -> None:
        for lane in (self.reads, self.ops, self.calls, self.transfers):
            lane.shutdown()


def fans_out(request: protocol.Request) -> bool:
    """A MESH service lookup asks every other node (up to 2 s): a slow request, not a read."""
    return request.op == "services" and request.header.get("scope") == "mesh" and not request.header.get("peer")


__all__ = ["READ_OPS", "TRANSFER_OPS", "Answer", "BrokerLanes", "Lane", "fans_out"]

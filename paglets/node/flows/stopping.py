"""Parking every active paglet when its node stops, even those whose handlers never finish.

ARCHITECTURE.md rule 11: a stop parks every paglet even if a handler is stuck.
Each paglet goes the way a deactivation goes — its policy (made to wake on
startup), ``on_deactivating``, a freeze (new mail waits; the handlers running
finish), its resource cleanups, a snapshot, a record, its mailbox to the mail
log — with two differences: the node waits only ``grace`` seconds in all, and
a failing cleanup is logged but parks the paglet all the same. Then it cuts the
handlers still running short: the caller of each message they hold gets
:class:`~paglets.core.errors.HandlerInterruptedError` (the message is not
retried) and the paglet is parked with its state as the node can read it
then (a worker's control threads answer ``state`` while a handler blocks). A
hook that does not finish in time is left behind the same way.

The node still serves while it waits, so paglets may become active meanwhile
(they arrive, or a message wakes a parked one): the active paglets are listed
again once the first ones are parked, and those found go the same way.

While it waits it logs, about once a second, which paglets it waits for,
which handlers and how long is left. :meth:`StopParking.hurry` (a second stop
signal) ends the wait at once. What still cannot be parked — a paglet whose
state nobody can read, because a handler holds its state lock for good — is
logged as an error and returned, so the node's exit status can say so.

Threads: :meth:`StopParking.park_all` runs on the stopping thread, which
hands each paglet's steps to a pool; the waits on the worker's answers
return early when the grace ends or :meth:`StopParking.hurry` is called
(from any thread).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import ACTIVE
from paglets.core.errors import HandlerInterruptedError, InvalidAgentError, PagletError
from paglets.core.events import PersistencyEvent
from paglets.node.broker.commands import LOOP_DEADLINE, BrokerCommands
from paglets.node.flows.inspection import Inspection
from paglets.node.flows.parking import Parking
from paglets.node.identity import NodeIdentity
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.threads import ThreadPool
from paglets.waiting import wait_for
from paglets.wire import codec

log = logging.getLogger("paglets.host")

STOP_THREADS = 32  # paglets going through their steps at once (a stuck freeze holds no thread)
SNAPSHOT_DEADLINE = 3.0  # seconds a state snapshot may take once the grace is over
AFTER_CUT_DEADLINE = 20.0  # seconds the cut-short paglets get to reach the disk
PROGRESS_EVERY = 1.0  # seconds between "waiting for" log lines
LISTED = 10  # paglets named in one log line
ROUNDS = 3  # times the active paglets are listed again (ones that became active while the node waited)


@dataclass(eq=False)
class _Leaving:
    """One paglet on its way to disk."""

    agent_id: str
    class_name: str = ""
    step: str = "its deactivation policy"  # what it waits for, for the log
    policy: DeactivationPolicy | None = None
    frozen: Future[Any] | None = None  # the broker's freeze: done once no handler holds a message
    cut: bool = False  # its handlers were cut short
    writing: bool = False  # its snapshot and record are on their way
    parked: Future[None] = field(default_factory=Future)


class StopParking:
    """Parks a stopping node's active paglets within a grace period. One instance per stop."""

    def __init__(
        self,
        broker: BrokerCommands,
        inspection: Inspection,
        parking: Parking,
        here: NodeIdentity,
        *,
        grace: float,
    ):
        self._broker = broker
        self._inspection = inspection
        self._parking = parking
        self._here = here
        self._grace = grace
        self._changed = threading.Condition()
        self._news = 0  # bumped on every change the stopping thread may wait for
        self._cut = False  # no more waiting: the grace is over or hurry() was called
        self._hurried = False
        self._request = DeactivationRequest(reason="shutdown", source="node")

    # -- any thread ------------------------------------------------------------------------
    def hurry(self) -> None:
        """Stop waiting for handlers and hooks: park at once what can be parked."""
        with self._changed:
            self._hurried = True
            self._news += 1
            self._changed.notify_all()

    def _notify(self, _future: Future[Any] | None = None) -> None:
        with self._changed:
            self._news += 1
            self._changed.notify_all()

    def _wait_for_news(self, seen: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._news != seen, max(0.0, timeout))

    def _until(self, future: Future[Any]) -> bool:
        """Wait until ``future`` is done (True) or the waiting is over (False)."""
        future.add_done_callback(self._notify)
        with self._changed:
            self._changed.wait_for(lambda: future.done() or self._cut)
        return future.done()

    # -- the stopping thread ---------------------------------------------------------------
    def park_all(self) -> list[str]:
        """Park every active paglet; returns the ids of those that could not be parked (each logged).

        The node still serves while it waits, so a paglet may become active
        meanwhile (it arrived, or a message woke it): each round parks those
        the last one found, until a round finds none (at most ROUNDS).
        """
        deadline = time.monotonic() + self._grace
        leaving: list[_Leaving] = []
        pool = ThreadPool(f"paglets-stop-{self._here.name}", STOP_THREADS)
        try:
            for _round in range(ROUNDS):
                seen = {one.agent_id for one in leaving}
                new = [_Leaving(agent_id) for agent_id in self._inspection.agent_ids(ACTIVE) if agent_id not in seen]
                if not new:
                    break
                leaving.extend(new)
                for one in new:
                    self._submit(pool, self._prepare, one)
                self._wait_for_handlers(pool, leaving, deadline)
                if not all(one.parked.done() for one in leaving):
                    self._cut_short(leaving)
                    self._wait_for_records(pool, leaving, time.monotonic() + AFTER_CUT_DEADLINE)
        finally:
            pool.shutdown()
        return self._report(leaving)

    def _submit(self, pool: ThreadPool, step: Any, one: _Leaving) -> None:
        try:
            done = pool.submit(step, one)
        except RuntimeError as exc:  # the pool is shut down: we are past every deadline
            done = Future()
            done.set_exception(exc)
        done.add_done_callback(lambda future: self._step_done(one, future))

    def _step_done(self, one: _Leaving, future: Future[Any]) -> None:
        exc = future.exception()
        if exc is not None and not one.parked.done():
            one.parked.set_exception(exc)
        self._notify()

    def _wait_for_handlers(self, pool: ThreadPool, leaving: list[_Leaving], deadline: float) -> None:
        """Until each paglet is parked (or failed), or the grace is over, or hurry() was called."""
        next_report = time.monotonic() + PROGRESS_EVERY
        while True:
            seen = self._news
            self._write_frozen(pool, leaving)
            now = time.monotonic()
            waiting = [one for one in leaving if not one.parked.done()]
            if not waiting or self._hurried or now >= deadline:
                return
            if now >= next_report:
                self._log_waiting(waiting, deadline - now)
                next_report = now + PROGRESS_EVERY
            self._wait_for_news(seen, min(next_report, deadline) - now)

    def _cut_short(self, leaving: list[_Leaving]) -> None:
        """No more waiting: hooks are left behind, handlers still running lose their messages."""
        waiting = [one for one in leaving if not one.parked.done()]
        with self._changed:
            self._cut = True
            self._news += 1
            self._changed.notify_all()
        if not waiting:
            return
        why = "a second stop signal ended the wait" if self._hurried else f"the {self._grace:g} s stop grace is over"
        log.warning(
            "node %s: %s: parking %d paglet(s) without waiting any longer for %s",
            self._here.name, why, len(waiting), _steps(waiting),
        )  # fmt: skip
        for one in waiting:
            if one.frozen is not None:
                self._interrupt(one)

    def _wait_for_records(self, pool: ThreadPool, leaving: list[_Leaving], deadline: float) -> None:
        while True:
            seen = self._news
            self._write_frozen(pool, leaving)
            now = time.monotonic()
            if all(one.parked.done() for one in leaving) or now >= deadline:
                return
            self._wait_for_news(seen, deadline - now)

    def _write_frozen(self, pool: ThreadPool, leaving: list[_Leaving]) -> None:
        for one in leaving:
            if not one.writing and one.frozen is not None and one.frozen.done() and not one.parked.done():
                one.writing = True
                one.step = "its state"
                self._submit(pool, self._write, one)

    def _log_waiting(self, waiting: list[_Leaving], left: float) -> None:
        try:
            busy = wait_for(self._broker.busy_handlers([one.agent_id for one in waiting]), LOOP_DEADLINE, "the broker")
        except PagletError:
            busy = {}
        parts = []
        for one in waiting[:LISTED]:
            handlers = busy.get(one.agent_id) or []
            if one.frozen is not None and handlers:
                what = ", ".join(f"handler {name} busy for {seconds:.1f} s" for name, seconds in handlers)
            else:
                what = f"waiting for {one.step}"
            parts.append(f"{one.agent_id} ({one.class_name or 'class unknown'}): {what}")
        more = f"; and {len(waiting) - LISTED} more" if len(waiting) > LISTED else ""
        log.info(
            "node %s stopping: waiting for %d paglet(s), %.1f s left of the %g s stop grace "
            "(a second stop signal ends the wait): %s%s",
            self._here.name, len(waiting), left, self._grace, "; ".join(parts), more,
        )  # fmt: skip

    def _report(self, leaving: list[_Leaving]) -> list[str]:
        lost = []
        for one in leaving:
            if not one.parked.done():
                exc: BaseException | None = TimeoutError(f"not on disk {AFTER_CUT_DEADLINE:g} s after the wait ended")
            else:
                exc = one.parked.exception()
            if exc is None:
                continue
            if isinstance(exc, InvalidAgentError):  # disposed of or gone elsewhere meanwhile: nothing to keep
                log.debug("node %s: %s left before it could be parked: %s", self._here.name, one.agent_id, exc)
                continue
            log.error(
                "node %s: could not park paglet %s (%s) while stopping, so it is lost: %s",
                self._here.name, one.agent_id, one.class_name or "class unknown", exc,
            )  # fmt: skip
            lost.append(one.agent_id)
        return lost

    # -- pool threads: one paglet's steps ------------------------------------------------
    def _prepare(self, one: _Leaving) -> None:
        """Its policy and ``on_deactivating`` (unless the waiting is over), then the freeze."""
        agent_id = one.agent_id
        one.class_name = self._inspection.class_name(agent_id)
        policy = self._chosen_policy(agent_id) if not self._cut else None
        one.policy = (policy or DeactivationPolicy()).with_changes(activate_on_startup=True)
        if not self._cut:
            one.step = "its on_deactivating hook"
            self._run_hook(one)
        one.step = "its handlers"
        one.frozen = self._broker.freeze(agent_id, None)
        one.frozen.add_done_callback(self._notify)
        if self._cut:  # the waiting ended while this one was on its way here
            self._interrupt(one)

    def _chosen_policy(self, agent_id: str) -> DeactivationPolicy | None:
        future = self._broker.call_worker(agent_id, {"op": "policy", "request": self._request.to_wire()})
        if not self._until(future):
            return None
        try:
            _header, payload = future.result()
        except PagletError as exc:
            log.warning("node %s: deactivation_policy of %s failed: %s", self._here.name, agent_id, exc)
            return None
        wire = codec.decode(payload[0]) if payload and payload[0] else None
        return DeactivationPolicy.from_wire(wire) if wire else None

    def _run_hook(self, one: _Leaving) -> None:
        here = self._here
        assert one.policy is not None
        event = PersistencyEvent(
            one.agent_id, here.name, here.address,
            reason=self._request.reason, request=self._request.to_wire(), policy=one.policy.to_wire(),
        )  # fmt: skip
        header = {"op": "hook", "name": "on_deactivating", "event": event.to_wire()}
        future = self._broker.call_worker(one.agent_id, header)
        if not self._until(future):
            log.warning("node %s: parking %s without waiting for its on_deactivating hook", here.name, one.agent_id)
            return
        exc = future.exception()
        if exc is not None:  # a stop parks it all the same
            log.warning("node %s: on_deactivating of %s failed: %s", here.name, one.agent_id, exc)

    def _release_resources(self, one: _Leaving) -> None:
        """As before any deactivation; but a stopping node parks the paglet even if a cleanup fails."""
        here = self._here
        future = self._broker.call_worker(one.agent_id, {"op": "cleanup", "reason": "deactivate"})
        if not self._until(future):
            log.warning("node %s: parking %s without waiting for its resource cleanups", here.name, one.agent_id)
            return
        exc = future.exception()
        if exc is not None:
            log.warning(
                "node %s: resource cleanup of %s failed; parking it all the same: %s", here.name, one.agent_id, exc
            )

    def _interrupt(self, one: _Leaving) -> None:
        """Fail the messages its handlers still hold, so its freeze completes."""
        if one.cut or one.frozen is None or one.frozen.done():
            return
        one.cut = True
        if self._hurried:
            why = "a second stop signal ended the node's wait"
        else:
            why = f"the handler did not finish within the {self._grace:g} s stop grace"
        error = HandlerInterruptedError(
            f"node {self._here.name} stopped while paglet {one.agent_id!r} handled this message: {why}; "
            "the node parks the paglet without waiting for the handler, and this message is not retried"
        )
        try:
            count = wait_for(self._broker.cut_short(one.agent_id, error), LOOP_DEADLINE, "the broker")
        except PagletError as exc:
            if not one.parked.done():
                one.parked.set_exception(exc)
            return
        if count:
            log.warning(
                "node %s: cut short %d message(s) held by the handlers of %s; their callers get "
                "HandlerInterruptedError", self._here.name, count, one.agent_id,
            )  # fmt: skip

    def _write(self, one: _Leaving) -> None:
        """Resource cleanups (within the grace), snapshot, record, mail to disk (the freeze is done)."""
        assert one.frozen is not None and one.policy is not None
        one.frozen.result()  # a freeze that failed (the paglet crashed, say) fails this paglet's parking
        if not self._cut:
            self._release_resources(one)
        try:
            state = self._snapshot(one.agent_id)
        except BaseException:
            self._broker.unfreeze(one.agent_id)
            raise
        self._parking.park_frozen(one.agent_id, one.class_name, one.policy, self._request, SNAPSHOT_DEADLINE, state)
        one.parked.set_result(None)

    def _snapshot(self, agent_id: str) -> bytes:
        """The paglet's state: within the grace, or within SNAPSHOT_DEADLINE once the waiting is over."""
        future = self._broker.call_worker(agent_id, {"op": "state"})
        if not self._until(future):
            # A snapshot takes the state lock: one held for good (by a handler or run()) blocks it.
            wait_for(future, SNAPSHOT_DEADLINE, f"the state of paglet {agent_id} (is its state lock held for good?)")
        _header, payload = future.result()
        return payload[0] if payload else b""


def _steps(leaving: list[_Leaving]) -> str:
    """What each paglet waits for, for the log: ``<id>'s handlers, <id>'s state``."""
    steps = ", ".join(f"{one.agent_id}'s {one.step.removeprefix('its ')}" for one in leaving[:LISTED])
    return steps + (f" and {len(leaving) - LISTED} more" if len(leaving) > LISTED else "")


__all__ = ["StopParking"]

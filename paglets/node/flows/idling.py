"""Idle parking: a paglet nobody has talked to for a while is parked, to wake on its next message.

One mechanism for every paglet, resident services included. A paglet's idle
timeout is, first found: the node's override for it (a resident service's
``idle_timeout``), its class's ``IDLE_TIMEOUT``, the node's ``idle_park``
option; 0 or None means never. A paglet counts as idle once its ``run()`` has
returned and nothing is queued for it, in flight to it or asked of its
worker; the broker knows since when (:meth:`BrokerCommands.quiet`). A live
lease (see :mod:`paglets.node.services.leases`) keeps a paglet up.

Parking uses :meth:`Parking.deactivate` with wake on message forced and its
service records kept (``keep_services``), then emits ``idle-park``;
its next message wakes it (``woken``). A message that arrives while
it is being parked wakes it again at once: nothing is lost.

Owns a ticker thread (it ticks at a quarter of the shortest timeout in use,
between 0.05 and 1 second) and a few threads that park. Any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from paglets.core.errors import PagletError
from paglets.core.events import ContextEventLog
from paglets.node.broker.commands import LOOP_DEADLINE, BrokerCommands
from paglets.node.flows.parking import IDLE_REASON, Parking
from paglets.persistence.persistency import DeactivationRequest
from paglets.threads import ThreadPool
from paglets.waiting import wait_for

log = logging.getLogger("paglets.idling")
MIN_TICK = 0.05
MAX_TICK = 1.0
PARKERS = 4  # paglets parked at once
STOP_WAIT = 15.0  # seconds a stopping node waits for idle parkings under way
IDLE_POLICY = {"activate_on_message": True, "activate_on_startup": False, "activate_at": None}


class IdleParker:
    """Finds idle paglets and parks them."""

    def __init__(
        self, broker: BrokerCommands, parking: Parking, events: ContextEventLog, node_name: str,
        *, default: float | None = None,
    ):  # fmt: skip
        """``default``: the node's ``idle_park`` (seconds; None or 0: never)."""
        self._broker = broker
        self._parking = parking
        self._events = events
        self._node_name = node_name
        self._default = default or None
        self._overrides: dict[str, float] = {}
        self._keepers: list[Callable[[], set[str]]] = []
        self._cond = threading.Condition()
        self._busy: set[str] = set()  # being parked now
        self._class_min: float | None = None  # the shortest class IDLE_TIMEOUT seen last scan
        self._stopping = True
        self._thread: threading.Thread | None = None
        self._pool = ThreadPool(f"paglets-idle-{node_name}", PARKERS)

    # -- settings -----------------------------------------------------------------------------
    def set_timeout(self, agent_id: str, seconds: float | None) -> None:
        """The node's own idle timeout for one paglet (a resident service's); None: the usual rule."""
        with self._cond:
            if seconds is None:
                self._overrides.pop(agent_id, None)
            else:
                self._overrides[agent_id] = float(seconds)
            self._cond.notify_all()

    def add_keeper(self, keeper: Callable[[], set[str]]) -> None:
        """``keeper()`` gives agent ids that must stay up now (leased services)."""
        self._keepers.append(keeper)

    def timeout_for(self, agent_id: str, class_timeout: float | None) -> float | None:
        with self._cond:
            override = self._overrides.get(agent_id)
        chosen = override if override is not None else class_timeout if class_timeout is not None else self._default
        return chosen if chosen else None

    # -- running ------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=f"paglets-idle-{self._node_name}", daemon=True)
        self._thread.start()

    def stop(self, wait: float = STOP_WAIT) -> None:
        """Stop scanning, and wait (at most ``wait`` seconds) for parkings under way: a node that parks
        everything to stop must not meet a paglet half parked by us."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(5)
        deadline = time.monotonic() + wait
        with self._cond:
            while self._busy and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
        self._pool.shutdown()

    def _tick(self) -> float:
        with self._cond:
            timeouts = [t for t in (*self._overrides.values(), self._default, self._class_min) if t]
        shortest = min(timeouts, default=4 * MAX_TICK)
        return max(MIN_TICK, min(MAX_TICK, shortest / 4))

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(self._tick())
                if self._stopping:
                    return
            try:
                self.scan()
            except PagletError as exc:  # the broker is stopping, or slow: try again next tick
                log.debug("node %s: idle scan skipped: %s", self._node_name, exc)
            except Exception:
                log.exception("node %s: idle scan failed", self._node_name)

    def scan(self) -> list[str]:
        """Start parking every paglet idle for longer than its timeout; their ids."""
        with self._cond:  # without a node default or per-paglet timeouts only classes with IDLE_TIMEOUT count
            timed_only = self._default is None and not self._overrides
        quiet = wait_for(self._broker.quiet(timed_only), LOOP_DEADLINE, "the broker")
        kept: set[str] = set()
        for keeper in self._keepers:
            kept |= keeper()
        chosen: list[tuple[str, float]] = []
        class_min: float | None = None
        for agent_id, quiet_for, class_timeout in quiet:
            if class_timeout:
                class_min = class_timeout if class_min is None else min(class_min, class_timeout)
            timeout = self.timeout_for(agent_id, class_timeout)
            if timeout is not None and quiet_for >= timeout and agent_id not in kept:
                chosen.append((agent_id, quiet_for))
        with self._cond:
            self._class_min = class_min
            chosen = [(agent_id, quiet_for) for agent_id, quiet_for in chosen if agent_id not in self._busy]
            self._busy.update(agent_id for agent_id, _ in chosen)
        for agent_id, quiet_for in chosen:
            try:
                self._pool.submit(self._park, agent_id, quiet_for)
            except RuntimeError:  # stopping
                with self._cond:
                    self._busy.discard(agent_id)
        return [agent_id for agent_id, _ in chosen]

    def _park(self, agent_id: str, quiet_for: float) -> None:
        try:
            request = DeactivationRequest(reason=IDLE_REASON, source="node", metadata={"idle_for": round(quiet_for, 3)})
            self._parking.deactivate(agent_id, request, force_policy=IDLE_POLICY, keep_services=True)
            self._events.emit("idle-park", agent_id=agent_id, idle_for=round(quiet_for, 3))
        except PagletError as exc:  # it got a message, moved or went away meanwhile: it is not idle any more
            log.debug("node %s: %s was not parked as idle: %s", self._node_name, agent_id, exc)
        finally:
            with self._cond:
                self._busy.discard(agent_id)
                self._cond.notify_all()


__all__ = ["IDLE_POLICY", "IdleParker"]

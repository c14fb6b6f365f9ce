"""What the worker table tells the rest of the node about its slots, without changing any.

Listings and details of paglets, the figures of a metrics scrape, the
paglets quiet enough to be parked as idle, the handlers a stopping node
still waits for, and the message ids a moving paglet takes along. Read in
the broker loop like the table itself (other threads ask through
:class:`~paglets.node.broker.commands.BrokerCommands`).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Any

from paglets.node.broker.forwards import Forwards
from paglets.node.broker.message_path import MessagePath
from paglets.node.broker.slots import Phase, WorkerSlot


class SlotReports:
    """Read-only views of one table's slots (loop thread only)."""

    def __init__(
        self,
        slots: dict[str, WorkerSlot],
        mail: MessagePath,
        forwards: Forwards,
        require: Callable[[str], WorkerSlot],
    ):
        self._slots = slots  # the table's own dict: it is never replaced, only changed
        self._mail = mail
        self._forwards = forwards
        self._require = require

    def metrics(self, top: int) -> dict[str, Any]:
        """Slots per phase, mailbox depths (the ``top`` deepest and the total) and the path's figures."""
        phases: dict[str, int] = {}
        queued = in_flight = 0
        depths: list[tuple[int, str, str]] = []
        for slot in self._slots.values():
            phases[slot.phase.value] = phases.get(slot.phase.value, 0) + 1
            depth = len(slot.queue)
            queued += depth
            in_flight += slot.in_flight
            if depth:
                depths.append((depth, slot.agent_id, slot.class_name))
        return {
            "phases": phases,
            "queued": queued,
            "in_flight": in_flight,
            "deepest": heapq.nlargest(top, depths),
            "forwarding": len(self._forwards),
            **self._mail.stats.snapshot(),
        }

    def summaries(self) -> list[dict[str, Any]]:
        """Every paglet of this node — not workers waiting for a paglet that may still not come."""
        now = time.monotonic()
        return [self._summary(slot, now) for slot in self._slots.values() if slot.phase is not Phase.PREPARED]

    def summary(self, agent_id: str) -> dict[str, Any]:
        return self._summary(self._require(agent_id), time.monotonic())

    def _summary(self, slot: WorkerSlot, now: float) -> dict[str, Any]:
        started = self._mail.oldest_message(slot)
        return slot.summary(None if started is None else round(now - started, 3))

    def quiet(self, timed_only: bool = False) -> list[tuple[str, float, float | None]]:
        """``(agent_id, seconds quiet, class IDLE_TIMEOUT)`` of every paglet that could be parked as idle now:
        ready, ``run()`` returned, nothing queued, in flight or asked of its worker. ``timed_only``: only
        those whose class sets IDLE_TIMEOUT (the node has no default and no per-paglet timeout)."""
        now = time.monotonic()
        return [
            (slot.agent_id, now - slot.last_active, slot.idle_timeout)
            for slot in self._slots.values()
            if (slot.idle_timeout or not timed_only) and slot.phase is Phase.READY and slot.run_done
            and not slot.held and not slot.pending_cids and not slot.queue and slot.in_flight == 0
        ]  # fmt: skip

    def busy_handlers(self, agent_ids: list[str]) -> dict[str, list[tuple[str, float]]]:
        """For each of these paglets still here: (handler, seconds busy) of its messages in flight."""
        slots = self._slots
        return {agent_id: self._mail.busy_handlers(slots[agent_id]) for agent_id in agent_ids if agent_id in slots}

    def seen_ids(self, agent_id: str) -> list[str]:
        """Ids of messages this paglet already took in — not those still queued, which travel separately."""
        slot = self._require(agent_id)
        queued = {d.mid for d in slot.queue.items()}
        return [mid for mid in slot.seen.ids() if mid not in queued]


__all__ = ["SlotReports"]

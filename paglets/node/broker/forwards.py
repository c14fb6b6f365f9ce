"""Where paglets that left this node went: forwarding entries, for a while.

A message for a paglet that departed is sent on to its new node while the
entry lives (``forward_ttl``); a peer that reports a later move collapses
the chain. Owned by the broker thread (through
:class:`~paglets.node.broker.table.WorkerTable`) and touched by nothing else.
"""

from __future__ import annotations


class Forwards:
    """agent id -> (address it went to, monotonic expiry)."""

    def __init__(self, ttl: float):
        self._ttl = ttl
        self._entries: dict[str, tuple[str, float]] = {}

    def set(self, agent_id: str, address: str, now: float) -> None:
        self._entries[agent_id] = (address, now + self._ttl)

    def address_of(self, agent_id: str) -> str | None:
        entry = self._entries.get(agent_id)
        return entry[0] if entry else None

    def moved(self, agent_id: str, address: str, now: float) -> None:
        """A peer says the paglet is now at ``address``: follow it there directly."""
        if agent_id in self._entries:
            self.set(agent_id, address, now)

    def drop(self, agent_id: str) -> None:
        self._entries.pop(agent_id, None)

    def __len__(self) -> int:
        return len(self._entries)

    def expire(self, now: float) -> None:
        for agent_id, (_address, expires) in list(self._entries.items()):
            if now > expires:
                del self._entries[agent_id]


__all__ = ["Forwards"]

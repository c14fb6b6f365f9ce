"""Addresses a node must prove before the mesh table trusts them first-hand.

An address for node N is first-hand when this node dialled it and N
answered. A claim is an address we have not proven yet: a gossip sender's
own entry, a replier that says it lives elsewhere than where we reached it,
or hearsay that would move a name whose node has gone silent. Each claim is
settled by ``ping``s made from the gossip thread, one step per round:

1. When the name is already first-hand at another address, that address is
   asked first: if N still answers there, the claim is refused and the new
   address is never contacted (a name belongs to the node that proved it).
2. The claimed address is asked, unless we reached it already: it must
   answer with the name N.
3. The entry is handed back to the registry to install first-hand.

Pending claims and remembered refusals are bounded. Not thread-safe: the
registry calls it under its own lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from paglets.client.hosts import HostRef

log = logging.getLogger("paglets.mesh")
MAX_PENDING = 32  # claims being proven at once; more wait for a later gossip to bring them again
MAX_REFUSED = 1024  # (name, address) pairs remembered as refused


@dataclass(slots=True, eq=False)
class Claim:
    """``entry`` says node ``entry.name`` lives at ``entry.url``; not proven yet."""

    entry: HostRef
    reached: bool  # we dialled entry.url and entry.name answered
    owner_gone: bool = False  # the first-hand address it would replace no longer answers as that name
    probe: Future[Any] | None = None  # the ping in flight
    probed: str = ""  # the address that ping went to


class AddressClaims:
    """The claims being proven, and the ones refused lately."""

    def __init__(self, ping: Callable[[str], Future[Any]], *, refuse_for: float):
        """``ping(url)`` asks the node at ``url`` its name (a Future of the reply header)."""
        self._ping = ping
        self._refuse_for = refuse_for
        self._pending: dict[tuple[str, str], Claim] = {}
        self._refused: dict[tuple[str, str], float] = {}  # -> monotonic time the refusal ends

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, entry: HostRef, *, reached: bool) -> None:
        key = (entry.name, entry.url)
        pending = self._pending.get(key)
        if pending is not None:
            pending.entry = entry
            pending.reached = pending.reached or reached
            return
        if self._refused.get(key, float("-inf")) > time.monotonic() or len(self._pending) >= MAX_PENDING:
            return
        self._pending[key] = Claim(entry, reached)

    def advance(self, current: Callable[[str], tuple[HostRef | None, bool]]) -> list[HostRef]:
        """Move every claim one step; returns the entries proven first-hand.

        ``current(name)`` is the table's entry for ``name`` and whether it is first-hand.
        """
        proven: list[HostRef] = []
        for key, claim in list(self._pending.items()):
            known, firsthand = current(claim.entry.name)
            if known is not None and firsthand and known.url == claim.entry.url:
                del self._pending[key]  # proven meanwhile
                continue
            if claim.probe is not None:
                if not claim.probe.done():
                    continue
                if not self._settle(key, claim, known):
                    continue
            owner = known.url if known is not None and firsthand and not claim.owner_gone else None
            if owner is not None:
                self._start(claim, owner)
            elif not claim.reached:
                self._start(claim, claim.entry.url)
            else:
                del self._pending[key]
                proven.append(claim.entry)
        return proven

    def _settle(self, key: tuple[str, str], claim: Claim, known: HostRef | None) -> bool:
        """Take in the answer to a claim's ping; False when the claim is over (refused)."""
        probe, claim.probe = claim.probe, None
        answered = _name_in(probe)
        name = claim.entry.name
        if claim.probed != claim.entry.url:  # we asked the first-hand owner
            if answered == name:
                log.warning(
                    "mesh: node %s at %s still answers there; not taking %s for it (offered by gossip)",
                    name, claim.probed, claim.entry.url,
                )  # fmt: skip
                self._refuse(key)
                return False
            claim.owner_gone = True
            return True
        if answered != name:
            log.info("mesh: %s did not answer as node %s (%s); not taking it", claim.entry.url, name, answered)
            self._refuse(key)
            return False
        claim.reached = True
        return True

    def _start(self, claim: Claim, url: str) -> None:
        claim.probed = url
        claim.probe = self._ping(url)

    def _refuse(self, key: tuple[str, str]) -> None:
        del self._pending[key]
        if len(self._refused) >= MAX_REFUSED:
            now = time.monotonic()
            self._refused = {k: until for k, until in self._refused.items() if until > now}
            if len(self._refused) >= MAX_REFUSED:
                self._refused.clear()
        self._refused[key] = time.monotonic() + self._refuse_for


def _name_in(probe: Future[Any]) -> str | None:
    """The node name a finished ping answered, or None (an error, a timeout, no name)."""
    if probe.exception() is not None:
        return None
    name = probe.result().get("name")
    return name if isinstance(name, str) else None


__all__ = ["AddressClaims", "Claim"]

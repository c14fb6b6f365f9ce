"""The nodes registered at a relay: who owns each name, and on which connection.

A name belongs to the connection that proved it: a hello with the relay's
API key (when it has one) and the name's registration secret
(:class:`~paglets.relay.owners.NameOwners`). The routing id of that
connection is where the relay sends the node's requests and the only one
whose replies it passes on in the node's name. A connection that proves the
name again — the node restarted, while its old connection may still look
alive for a heartbeat or two — takes the name over; the old connection is
forgotten. Routing ids are never proof of anything: a peer chooses its own.
Owned by the relay loop thread.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from paglets.core.errors import AuthenticationError, OverloadedError
from paglets.relay.owners import Claim, NameOwners
from paglets.wire import relay

log = logging.getLogger("paglets.relay")


@dataclass(slots=True, eq=False)
class NodeEntry:
    """A registered node: its name and the connection (routing id) that proved it."""

    name: str
    ident: bytes
    last_seen: float  # monotonic
    connected: bool = True
    unanswered: int = 0  # queued deliveries sent and not answered yet


class NodeTable:
    """Registered nodes by name and by connection; decides every hello."""

    def __init__(self, owners: NameOwners, *, relay_name: str, api_key: bytes | None):
        self.owners = owners
        self._relay = relay_name
        self._api_key = api_key
        self._by_name: dict[str, NodeEntry] = {}
        self._by_ident: dict[bytes, NodeEntry] = {}

    def get(self, name: str) -> NodeEntry | None:
        return self._by_name.get(name)

    def on_connection(self, ident: bytes) -> NodeEntry | None:
        """The node whose registered connection has routing id ``ident``, if any."""
        return self._by_ident.get(ident)

    def __iter__(self) -> Iterator[NodeEntry]:
        return iter(self._by_name.values())

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def hello(self, source: bytes, hello: relay.Hello) -> tuple[NodeEntry, bool]:
        """Register or refresh ``hello.name`` for connection ``source``; returns (entry, came back).

        Raises AuthenticationError (wrong key, someone else's name, no
        secret) or OverloadedError (too many names) with the reason the
        node is told.
        """
        now = time.monotonic()
        entry = self._by_ident.get(source)
        if entry is not None and entry.name == hello.name:  # a heartbeat on the registered connection
            returning = not entry.connected
            if returning:
                log.info("relay: node %s is back", entry.name)
            entry.last_seen, entry.connected = now, True
            return entry, returning
        self._check(source, hello, entry)
        return self._register(source, hello, now), True

    def _check(self, source: bytes, hello: relay.Hello, registered: NodeEntry | None) -> None:
        name = hello.name
        if self._api_key is not None and not key_matches(hello.key, self._api_key):
            raise AuthenticationError(f"missing or wrong API key for node {name}")
        if registered is not None:
            raise AuthenticationError(f"this connection is already registered as node {registered.name}")
        if hello.secret is None:
            raise AuthenticationError(f"the hello for node {name} carries no registration secret")
        claim = self.owners.check(name, hello.secret)
        if claim is Claim.OTHER:
            raise AuthenticationError(
                f"node name {name} is registered to another node "
                "(its registration secret does not match); pick another name, or have the relay's "
                f"operator delete owners/{name} in the relay's data directory"
            )
        if claim is Claim.FREE and self.owners.full():
            raise OverloadedError(f"relay {self._relay} holds the most node names it may ({self.owners.limit})")

    def _register(self, source: bytes, hello: relay.Hello, now: float) -> NodeEntry:
        name = hello.name
        if self.owners.check(name, hello.secret) is Claim.FREE:
            try:
                self.owners.record(name, hello.secret)
            except OSError as exc:
                raise OverloadedError(f"relay {self._relay} cannot record node {name}: {exc}") from None
        old = self._by_name.get(name)
        if old is not None:
            self._by_ident.pop(old.ident, None)
            log.info("relay: node %s registered again, from a new connection", name)
        else:
            log.info("relay: node %s registered", name)
        entry = self._by_name[name] = NodeEntry(name, source, now)
        self._by_ident[source] = entry
        return entry


def key_matches(offered: object, expected: bytes) -> bool:
    return isinstance(offered, str) and hmac.compare_digest(offered.encode(), expected)


__all__ = ["NodeEntry", "NodeTable", "key_matches"]

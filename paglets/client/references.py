"""PagletProxyRef: where a paglet lives, as plain data that can be kept anywhere.

A :class:`~paglets.client.proxy.PagletProxy` carries a client (sockets,
threads); a reference carries only ``(host_url, agent_id)``. It is a
dataclass, so a paglet can keep one in its state: it moves and parks with
the paglet, and :meth:`PagletProxyRef.resolve` makes a proxy from it again
wherever the paglet is then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paglets.client.addresses import check_address
from paglets.client.proxy import PagletProxy
from paglets.core.agent import Paglet, PagletContext
from paglets.core.errors import ProtocolError, SerializationError
from paglets.wire.protocol import validate_agent_id


@dataclass(frozen=True)
class PagletProxyRef:
    """A paglet's node address and agent id; ``resolve`` turns it into a proxy."""

    host_url: str
    agent_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.host_url, str) or not isinstance(self.agent_id, str):
            raise SerializationError("a PagletProxyRef holds a host_url and an agent_id, both strings")

    def resolve(self, context_or_client: Any = None) -> PagletProxy:
        """A proxy on this paglet that talks through ``context_or_client``.

        That is a :class:`PagletContext` (or a paglet: its context), a
        HostClient, anything with a ``client`` (a Host), or None (a default
        HostClient).
        """
        where = context_or_client
        if isinstance(where, Paglet):
            where = where.context
        if isinstance(where, PagletContext):
            return where.get_proxy(self.agent_id, self.host_url)
        if where is None:
            return PagletProxy(self.host_url, self.agent_id)
        client = where if callable(getattr(where, "proxy", None)) else getattr(where, "client", None)
        if client is None or not callable(getattr(client, "proxy", None)):
            raise TypeError(
                f"resolve needs a PagletContext, a paglet, a HostClient or a Host, got {type(where).__name__}"
            )
        return client.proxy(self.host_url, self.agent_id)

    def to_wire(self) -> dict[str, str]:
        return {"host_url": self.host_url, "agent_id": self.agent_id}

    @classmethod
    def from_wire(cls, payload: Any) -> PagletProxyRef:
        """Check and build a reference from plain data (an address and an agent id), else SerializationError."""
        if not isinstance(payload, dict):
            raise SerializationError(f"not a paglet reference: {payload!r:.200}")
        host_url, agent_id = payload.get("host_url"), payload.get("agent_id")
        try:
            return cls(check_address(host_url), validate_agent_id(agent_id))
        except (ValueError, ProtocolError) as exc:
            raise SerializationError(f"not a paglet reference: {exc}") from None

    @classmethod
    def of(cls, proxy: PagletProxy) -> PagletProxyRef:
        return cls(proxy.host_url, proxy.agent_id)


__all__ = ["PagletProxyRef"]

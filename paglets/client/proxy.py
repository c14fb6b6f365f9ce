"""PagletProxy: a handle on one paglet, wherever it runs.

A proxy is just ``(host_url, agent_id)`` plus the
:class:`~paglets.client.host_client.HostClient` that carries its calls; it can
be copied between processes with :meth:`PagletProxy.to_wire` and used from any
thread. The client module creates proxies (``HostClient.create`` returns one),
so this module does not import it back: the client registers itself as the
default client of proxies made without one (``paglets.client`` does that on
import).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from paglets.client.addresses import check_address
from paglets.core.agent import ACTIVE, INACTIVE, Paglet, PagletContext
from paglets.core.errors import InvalidAgentError, ProtocolError, SerializationError
from paglets.core.messages import FutureReply, Message
from paglets.persistence.persistency import DeactivationPolicy
from paglets.wire.protocol import validate_agent_id


class PagletProxy:
    """Talks to one paglet through its node (``client``: a HostClient; None makes a default one)."""

    default_client: ClassVar[Callable[[], Any] | None] = None  # set by paglets.client.host_client

    def __init__(self, host_url: str, agent_id: str, client: Any = None):
        self.host_url = check_address(host_url)
        self.agent_id = agent_id
        if client is None:
            if PagletProxy.default_client is None:
                raise RuntimeError("import paglets.client (it provides the HostClient proxies use)")
            client = PagletProxy.default_client()
        self.client = client
        self._class_name: str | None = None

    # -- messages --------------------------------------------------------------
    def send(
        self,
        message: Message | str,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Deliver ``message`` and return the handler's reply (or raise its error).

        ``MessageQueuedError``: the message was queued, not handled (see :meth:`HostClient.send`).
        """
        return self.client.send(
            self.host_url,
            self.agent_id,
            message,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            timeout=timeout,
            on_moved=self._moved,
        )

    def _moved(self, address: str) -> None:
        self.host_url = address

    def send_future(
        self,
        message: Message | str,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> FutureReply:
        return self.client.send_future(
            self.host_url,
            self.agent_id,
            message,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            timeout=timeout,
        )

    def send_oneway(self, message: Message | str, activate_if_inactive: bool = True, no_delay: bool = False) -> None:
        self.client.send_oneway(
            self.host_url, self.agent_id, message, activate_if_inactive=activate_if_inactive, no_delay=no_delay
        )

    def send_artifact(
        self, message: Message | str, path: Any, *, name: str | None = None, timeout: float | None = None
    ) -> Any:
        """Upload the file at ``path`` to this paglet's node, then send ``message`` with the
        :class:`~paglets.core.artifacts.ArtifactRef` in ``args["artifact"]``; returns the reply."""
        ref = self.client.upload_artifact(self.host_url, path, name=name)
        message = Message(message) if isinstance(message, str) else message
        message.args["artifact"] = ref
        return self.send(message, timeout=timeout)

    # -- lifecycle ---------------------------------------------------------------
    def dispatch(self, target: Any) -> PagletProxy:
        """Move the paglet to ``target`` (address, mesh name or TransferTicket); this proxy follows it."""
        self.host_url = self.client.dispatch(self.host_url, self.agent_id, target)
        return self

    def clone(self, target: Any = None) -> PagletProxy:
        """Copy the paglet (on its node, or to ``target``); returns the copy's proxy."""
        return self.client.clone(self.host_url, self.agent_id, target)

    def deactivate(
        self, reason: str = "", policy: DeactivationPolicy | None = None, metadata: dict[str, Any] | None = None
    ) -> PagletProxy:
        """Park the paglet on its node's disk; returns this proxy, which still reaches it.

        ``policy`` None lets the paglet or its node decide how it wakes up.
        """
        parked = self.client.deactivate(self.host_url, self.agent_id, reason=reason, policy=policy, metadata=metadata)
        self.host_url = parked.host_url
        return self

    def activate(self) -> PagletProxy:
        """Wake the paglet if it is parked (its queued mail comes first); returns this proxy."""
        self.host_url = self.client.activate(self.host_url, self.agent_id).host_url
        return self

    def dispose(self) -> None:
        self.client.dispose(self.host_url, self.agent_id)

    # -- inspection --------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        info = self.client.info(self.host_url, self.agent_id)
        self._class_name = info.get("class_name", self._class_name)
        return info

    def is_valid(self) -> bool:
        """True while the node knows this paglet (active or parked)."""
        try:
            self.info()
        except InvalidAgentError:
            return False
        return True

    def is_active(self) -> bool:
        return self.is_state(ACTIVE)

    def is_state(self, flag: int) -> bool:
        """Whether the paglet is in one of the states of ``flag`` (ACTIVE, INACTIVE, or both or-ed)."""
        try:
            info = self.info()
        except InvalidAgentError:
            return False
        active = bool(info.get("active")) and not info.get("crashed")
        return bool(flag & ACTIVE and active) or bool(flag & INACTIVE and not active and not info.get("crashed"))

    def is_remote(self, url: str | None = None) -> bool:
        """Whether the paglet lives elsewhere than node ``url`` (e.g. ``is_remote(host.address)``).

        Without ``url``: True, since a proxy always reaches its paglet through the paglet's node.
        """
        if url is None:
            return True
        return self.host_url != check_address(url)

    def get_address(self) -> str:
        return self.host_url

    def get_agent_id(self) -> str:
        return self.agent_id

    def get_agent_class_name(self) -> str:
        if self._class_name is None:
            self.info()
        return str(self._class_name)

    def get_state(self, state_cls: type[Any] | None = None) -> Any:
        return self.client.get_state(self.host_url, self.agent_id, state_cls)

    def mailbox_status(self) -> dict[str, int]:
        return self.client.mailbox_status(self.host_url, self.agent_id)

    # -- wire --------------------------------------------------------------------
    def ref(self) -> Any:
        """A :class:`~paglets.client.references.PagletProxyRef`: this proxy as plain data, to keep in state."""
        return PagletProxyRef(self.host_url, self.agent_id)

    def to_wire(self) -> dict[str, str]:
        return {"host_url": self.host_url, "agent_id": self.agent_id}

    @classmethod
    def from_wire(cls, payload: Any, client: Any = None) -> PagletProxy:
        if not isinstance(payload, dict) or not isinstance(payload.get("host_url"), str):
            raise SerializationError(f"not a proxy: {payload!r:.200}")
        if not isinstance(payload.get("agent_id"), str):
            raise SerializationError(f"not a proxy: {payload!r:.200}")
        return cls(payload["host_url"], payload["agent_id"], client)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PagletProxy) and (other.host_url, other.agent_id) == (self.host_url, self.agent_id)

    def __hash__(self) -> int:
        return hash((self.host_url, self.agent_id))

    def __repr__(self) -> str:
        return f"PagletProxy({self.host_url!r}, {self.agent_id!r})"


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


__all__ = ["PagletProxy", "PagletProxyRef"]

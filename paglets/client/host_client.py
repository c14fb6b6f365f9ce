"""HostClient: the SDK that proxies, peer nodes and the CLI use to reach nodes.

Every call has a deadline; a timeout or an unreachable node raises a
:class:`~paglets.core.errors.NodeUnreachableError` (``RequestTimeoutError``
when the node was reachable but did not answer in time) naming the address
and op. Errors raised on the node arrive as the matching
:mod:`paglets.core.errors` type. A client may be shared by any number of
threads: each thread talks over its own socket.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paglets.client import artifacts
from paglets.client.addresses import check_address
from paglets.client.artifacts import Progress
from paglets.client.channel import channel
from paglets.client.dealer import reply_value
from paglets.client.payloads import create_request, decode_result
from paglets.client.proxy import PagletProxy
from paglets.client.reactor import Reactor, then
from paglets.client.security import CurveIdentity
from paglets.client.transfer import DEFAULT_TRANSFER_TIMEOUT, TransferTicket
from paglets.core.artifacts import ArtifactRef, check_artifact_id
from paglets.core.errors import SerializationError
from paglets.core.messages import NORMAL_PRIORITY, FutureReply, Message
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.wire import codec, protocol
from paglets.wire.message_codec import encode_message

if TYPE_CHECKING:
    from paglets.core.agent import Paglet, PagletState

API_KEY_ENV = "PAGLETS_API_KEY"  # the key a client sends when it is given none
DEFAULT_TIMEOUT = 30.0
CONTROL_TIMEOUT = 10.0
UPDATE_TIMEOUT = 300.0  # seconds an update may take: a fetch and a reinstall
HOOK_OPS = frozenset({"send", "create", "deactivate", "activate"})  # they wait on paglet code: the full timeout
MOVE_REPLY_MARGIN = 10.0  # a move's answer is waited for this much longer than the move may take


class HostClient:
    """Talks to paglets nodes over their front sockets."""

    def __init__(
        self,
        timeout: float | str | None = None,
        api_key: str | None = None,
        *,
        curve: CurveIdentity | None = None,
    ):
        """``timeout``: seconds every request waits for its answer, unless the call gives its own.

        ``HostClient(30.0)`` gives the timeout; ``api_key`` (when None: the ``PAGLETS_API_KEY``
        environment variable; ``""``: no key) goes with every request. A string as the first
        argument is taken as the key, as older code of ours passed it (``HostClient("s3cret")``).

        Without it, requests that run paglet code (send, create, deactivate,
        activate) wait ``DEFAULT_TIMEOUT`` (30 s) and the others
        ``CONTROL_TIMEOUT`` (10 s); a move waits for its ticket's timeout plus
        ``MOVE_REPLY_MARGIN``. ``curve``: our key pair and the servers' public
        key, for nodes that require CurveZMQ.
        """
        if isinstance(timeout, str):
            if api_key is not None:
                raise TypeError("HostClient: the first argument is the timeout (a number), and api_key is given too")
            timeout, api_key = None, timeout
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):  # NaN fails too
            raise ValueError("timeout must be positive")
        self.api_key = (os.environ.get(API_KEY_ENV) or None) if api_key is None else api_key
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self._timeout_given = timeout is not None
        self.curve = curve

    # -- raw requests ------------------------------------------------------------
    def request(
        self,
        address: str,
        op: str,
        header: dict[str, Any] | None = None,
        payload: tuple[bytes, ...] = (),
        timeout: float | None = None,
        watch_connection: bool = False,
    ) -> protocol.Reply:
        """Send one request and wait for its reply; raises the node's error.

        With ``watch_connection`` a connection the node drops meanwhile fails
        the request at once (for long operations such as moves) instead of at
        the deadline.
        """
        address = check_address(address)
        reply = channel(address, self.curve).request(
            op, self._header(header), payload, self._timeout(timeout, op), watch_connection
        )
        return reply_value(reply, address, op)

    def request_future(
        self,
        address: str,
        op: str,
        header: dict[str, Any] | None = None,
        payload: tuple[bytes, ...] = (),
        timeout: float | None = None,
    ) -> Future[protocol.Reply]:
        address = check_address(address)
        future = Reactor.shared().submit(
            address, op, self._header(header), payload, self._timeout(timeout, op), self.curve
        )
        return then(future, lambda reply: reply_value(reply, address, op))

    def _header(self, header: dict[str, Any] | None) -> dict[str, Any]:
        """Add the API key (to a header the caller built for this request)."""
        if header is None:
            header = {}
        if self.api_key:
            header["key"] = self.api_key
        return header

    def _timeout(self, timeout: float | None, op: str) -> float:
        """The call's own timeout, else the client's when it was given one, else the op's default."""
        if timeout is not None:
            return timeout
        if self._timeout_given or op in HOOK_OPS:
            return self.timeout
        return CONTROL_TIMEOUT

    # -- node ----------------------------------------------------------------------
    def ping(self, address: str, timeout: float | None = None) -> dict[str, Any]:
        return self.request(address, "ping", timeout=timeout).header

    def health(self, address: str, timeout: float | None = None) -> dict[str, Any]:
        return self.request(address, "health", timeout=timeout).header

    def update(self, address: str, target: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Ask a node that follows a git checkout to fetch, fast-forward and, with new code, reinstall and
        restart (its paglets parked across the restart); its answer: before, after, changed, restarting.

        ``target``: the commit id (or its first hex digits) the node's upstream must be at.
        """
        header = {} if target is None else {"target": target}
        return self.request(address, "update", header, timeout=timeout or UPDATE_TIMEOUT).header

    def list_agents(
        self, address: str, *, active: bool = True, inactive: bool = False, include_state: bool = False
    ) -> list[dict[str, Any]]:
        header = {"active": active, "inactive": inactive, "state": include_state}
        return list(self.request(address, "list", header).header.get("agents", []))

    def services(
        self,
        address: str,
        *,
        name: str | None = None,
        capability: str | None = None,
        mesh: bool = False,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """The service records node ``address`` knows (``mesh``: plus every other node's MESH records), as maps.

        Each map holds a ServiceRecord's fields (:mod:`paglets.services.records`
        checks and builds one from it).
        """
        header: dict[str, Any] = {"scope": "mesh" if mesh else "local"}
        if name is not None:
            header["name"] = name
        if capability is not None:
            header["cap"] = capability
        reply = self.request(address, "services", header, timeout=timeout)
        body = protocol.unpack_map(reply.payload[0] if reply.payload else b"", f"services answer from {address}")
        records = body.get("records")
        if not isinstance(records, list):
            raise SerializationError(f"services answer from {address} holds no list of records")
        return records

    def lease(self, address: str, agent_id: str, service_name: str, ttl: float, timeout: float | None = None) -> Any:
        """Lease resident service ``agent_id`` (offering ``service_name``) on node ``address`` for ``ttl`` seconds.

        The node's grant, as a map (lease_id, agent_id, service_name,
        expires_at); :class:`~paglets.services.resident.LeaseGrant` checks it.
        """
        reply = self.request(
            address, "lease", {"agent": agent_id, "service": service_name, "ttl": float(ttl)}, timeout=timeout
        )
        return reply.header

    def unlease(self, address: str, lease_id: str, timeout: float | None = None) -> Any:
        """Give a lease back to node ``address``; ``{"lease_id", "released"}``."""
        return self.request(address, "unlease", {"lease": lease_id}, timeout=timeout).header

    # -- one paglet ----------------------------------------------------------------
    def info(self, address: str, agent_id: str) -> dict[str, Any]:
        return self.request(address, "info", {"agent": agent_id}).header

    def get_state(self, address: str, agent_id: str, state_cls: type[PagletState] | None = None) -> Any:
        """The paglet's state: an instance of ``state_cls``, or plain data when it is None."""
        reply = self.request(address, "state", {"agent": agent_id})
        data = reply.payload[0] if reply.payload else b""
        return codec.decode(data, expected=state_cls) if state_cls is not None else codec.decode_plain(data)

    def mailbox_status(self, address: str, agent_id: str) -> dict[str, int]:
        return dict(self.request(address, "mailbox", {"agent": agent_id}).header["mailbox"])

    def create(
        self,
        address: str,
        cls: type[Paglet[Any]] | str,
        state: PagletState | dict[str, Any] | None = None,
        init: Any = None,
        agent_id: str | None = None,
        timeout: float | None = None,
    ) -> PagletProxy:
        header, payload = create_request(cls, state, init, agent_id)
        reply = self.request(address, "create", header, payload, timeout=timeout)
        return self.proxy(reply.header.get("address", address), reply.header["agent"])

    def dispose(self, address: str, agent_id: str) -> None:
        self.request(address, "dispose", {"agent": agent_id})

    def send(
        self,
        address: str,
        agent_id: str,
        message: Message | str,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
        on_moved: Callable[[str], None] | None = None,
    ) -> Any:
        """Deliver ``message`` and return the handler's reply.

        If the paglet has moved and the old node forwarded the message,
        ``on_moved`` is called with its new address. A message queued instead
        of handled (the paglet is parked and does not wake on messages, or its
        node is away behind a relay) raises
        :class:`~paglets.core.errors.MessageQueuedError` with its ``message_id``.
        """
        header, payload = self._send_request(agent_id, message, False, activate_if_inactive, no_delay)
        reply = self.request(address, "send", header, payload, timeout=timeout)
        moved_to = reply.header.get("moved_to")
        if moved_to and on_moved is not None:
            on_moved(moved_to)
        return decode_result(reply)

    def send_future(
        self,
        address: str,
        agent_id: str,
        message: Message | str,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> FutureReply:
        header, payload = self._send_request(agent_id, message, False, activate_if_inactive, no_delay)
        return FutureReply(then(self.request_future(address, "send", header, payload, timeout), decode_result))

    def send_oneway(
        self,
        address: str,
        agent_id: str,
        message: Message | str,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
    ) -> None:
        """Queue a message without waiting for the handler.

        The node acknowledges acceptance asynchronously; a refusal (unknown
        paglet, full mailbox) is raised by a later ``send_oneway`` or
        :meth:`flush` from the same thread to the same node.
        """
        header, payload = self._send_request(agent_id, message, True, activate_if_inactive, no_delay)
        channel(check_address(address), self.curve).send_oneway(self._header(header), payload, self.timeout)

    def flush(self, address: str, timeout: float | None = None) -> None:
        """Wait until ``address`` accepted every oneway send this thread made to it."""
        channel(check_address(address), self.curve).flush(self.timeout if timeout is None else timeout)

    @staticmethod
    def _send_request(
        agent_id: str, message: Message | str, oneway: bool, activate: bool, no_delay: bool
    ) -> tuple[dict[str, Any], tuple[bytes, ...]]:
        if isinstance(message, str):
            message = Message(message)
        header: dict[str, Any] = {"agent": agent_id, "mid": message.message_id}
        if oneway:
            header["oneway"] = True
        if message.priority != NORMAL_PRIORITY:
            header["prio"] = message.priority
        if not activate:
            header["act"] = False
        if no_delay:
            header["nodelay"] = True
        return header, (encode_message(message),)

    # -- movement ---------------------------------------------------------------------
    def dispatch(self, address: str, agent_id: str, target: Any) -> str:
        """Ask ``address`` to move its paglet to ``target``; returns the paglet's new address."""
        ticket = TransferTicket.of(target)
        reply = self.request(
            address,
            "dispatch",
            {"agent": agent_id, "ticket": ticket.to_wire()},
            timeout=ticket.timeout + MOVE_REPLY_MARGIN,
        )
        return str(reply.header["address"])

    def clone(self, address: str, agent_id: str, target: Any = None) -> PagletProxy:
        header: dict[str, Any] = {"agent": agent_id}
        timeout = None
        if target is not None:
            ticket = TransferTicket.of(target)
            header["ticket"] = ticket.to_wire()
            timeout = ticket.timeout + MOVE_REPLY_MARGIN
        reply = self.request(address, "clone", header, timeout=timeout)
        return self.proxy(reply.header["address"], reply.header["agent"])

    def retract(self, from_address: str, agent_id: str, to_address: str, timeout: float | None = None) -> str:
        """Pull the paglet living at ``from_address`` back to the node ``to_address``; returns its address.

        ``timeout``: seconds to wait for the answer; by default the client's
        timeout if it was given one, else as long as a move with a default
        ticket may take plus ``MOVE_REPLY_MARGIN``.
        """
        if timeout is None and not self._timeout_given:
            timeout = DEFAULT_TRANSFER_TIMEOUT + MOVE_REPLY_MARGIN  # the node moves it with a default ticket
        header = {"agent": agent_id, "target": to_address}
        return str(self.request(from_address, "retract", header, timeout=timeout).header["address"])

    # -- parking ---------------------------------------------------------------------
    def deactivate(
        self,
        address: str,
        agent_id: str,
        *,
        reason: str = "",
        policy: DeactivationPolicy | None = None,
        metadata: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> PagletProxy:
        """Park the paglet on disk at ``address``; returns its proxy once the record is durable.

        ``policy`` None lets the paglet (its ``deactivation_policy``) or the node decide
        how it wakes. ``metadata`` must be plain msgpack data with string keys.
        """
        request = DeactivationRequest(reason=reason, source="client", policy=policy, metadata=dict(metadata or {}))
        wire = request.to_wire()
        try:
            protocol.pack(wire)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"deactivate {agent_id!r} at {address}: metadata is not plain data: {exc}"
            ) from None
        reply = self.request(address, "deactivate", {"agent": agent_id, "request": wire}, timeout=timeout)
        return self.proxy(reply.header.get("address", address), reply.header.get("agent", agent_id))

    def activate(self, address: str, agent_id: str, timeout: float | None = None) -> PagletProxy:
        """Wake a paglet parked at ``address`` (a no-op if it is active); returns its proxy.

        Returns once ``on_activation`` has run; mail queued while it was parked is
        delivered before any message sent after this call.
        """
        reply = self.request(address, "activate", {"agent": agent_id}, timeout=timeout)
        return self.proxy(reply.header.get("address", address), reply.header.get("agent", agent_id))

    # -- observing -------------------------------------------------------------------
    def events(
        self,
        address: str,
        *,
        since: int = 0,
        limit: int = 100,
        agent_id: str | None = None,
        kind: str | None = None,
        wait: float = 0.0,
    ) -> dict[str, Any]:
        """A read of the node's event log: ``{"events": [...], "next", "last", "first", "busy"}``.

        ``next`` is the ``since`` of the following read; with ``wait`` the node
        holds the read up to that many seconds (30 at most) until there is news.
        """
        header: dict[str, Any] = {"since": since, "limit": limit, "wait": wait}
        if agent_id is not None:
            header["agent"] = agent_id
        if kind is not None:
            header["kind"] = kind
        return self.request(address, "events", header, timeout=max(self.timeout, wait + 5.0)).header

    def proxy(self, address: str, agent_id: str) -> PagletProxy:
        return PagletProxy(address, agent_id, self)

    # -- artifacts (streamed in chunks with a window: paglets.client.artifacts) ----------------
    def upload_artifact(
        self,
        address: str,
        path: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
        progress: Progress | None = None,
    ) -> ArtifactRef:
        """Store the file at ``path`` on node ``address``; returns its ref there.

        ``name`` (metadata only; default: the file's name); ``owner``: the
        agent id of the paglet uploading (its artifact goes when it is
        disposed on that node); ``progress(done, total)`` is called as
        chunks are acked. A file over the node's limits is refused
        (``ArtifactQuotaError``) before a byte is sent.
        """
        return artifacts.upload_file(self, address, path, name=name, owner=owner, progress=progress)

    def download_artifact(self, ref: ArtifactRef, target_path: str | Path, *, progress: Progress | None = None) -> Path:
        """Write artifact ``ref`` (from ``ref.host``) to ``target_path``, checked; nothing is left half-written."""
        return artifacts.download_file(self, ref, target_path, progress=progress)

    def delete_artifact(self, ref: ArtifactRef) -> None:
        """Remove artifact ``ref`` from ``ref.host`` (for every holder)."""
        self.request(ref.host, "artifact_delete", {"sha": check_artifact_id(ref.id)})

    def stat_artifact(self, address: str, artifact_id: str) -> ArtifactRef:
        """The ref of artifact ``artifact_id`` on node ``address`` (``ArtifactNotFoundError`` if it has none)."""
        reply = self.request(address, "artifact_stat", {"sha": check_artifact_id(artifact_id)})
        return ArtifactRef.from_wire(reply.header.get("artifact"))

    def list_artifacts(self, address: str) -> list[ArtifactRef]:
        """The artifacts node ``address`` holds, oldest first."""
        reply = self.request(address, "artifact_list")
        return [ArtifactRef.from_wire(item) for item in reply.header.get("artifacts") or []]

    def fetch_artifact(
        self, address: str, ref: ArtifactRef, *, name: str | None = None, timeout: float | None = None
    ) -> ArtifactRef:
        """Make node ``address`` pull artifact ``ref`` from ``ref.host`` (node to node); its ref on ``address``."""
        header: dict[str, Any] = {"sha": check_artifact_id(ref.id), "source": ref.host}
        if name is not None:
            header["name"] = name
        limit = timeout if timeout is not None else artifacts.step_timeout(ref.size, self.timeout)
        reply = self.request(address, "artifact_fetch", header, timeout=limit, watch_connection=True)
        return ArtifactRef.from_wire(reply.header.get("artifact"))


PagletProxy.default_client = HostClient  # proxies made without a client use a default HostClient

__all__ = ["HostClient", "create_request", "decode_result"]

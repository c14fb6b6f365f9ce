"""What the source of a move asks of its target node, and how a failed transfer is told.

:class:`MoveRequests` speaks the source's half of the two-phase move (see
:mod:`paglets.node.flows.movement`) over a :class:`~paglets.client.host_client.HostClient`:
``prepare`` (retried while the target cannot be reached), ``blob_has`` and
``blob_put`` for the registered files, ``arrive`` (and ``transfer`` to ask
whether the paglet did arrive when the answer got lost) and ``abort`` for a
prepared arrival that will not come. It owns no state.

:func:`transfer_error` turns what went wrong on either side into the
:class:`~paglets.core.errors.TransferError` a caller is given;
:func:`time_left` is what remains of a transfer's deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from paglets.client.host_client import HostClient
from paglets.client.transfer import TransferTicket
from paglets.core.errors import HostError, InvalidAgentError, NodeUnreachableError, PagletError, TransferError
from paglets.core.runtime_values import EnvelopeKind
from paglets.node.identity import NodeIdentity
from paglets.node.storage.files import CHUNK_SIZE
from paglets.wire.envelope import PagletEnvelope

log = logging.getLogger("paglets.movement")
ABORT_DEADLINE = 2.0  # seconds the target gets to drop a prepared arrival that will not come
ARRIVAL_POLL = 0.2  # seconds between questions to a target whose arrival hook is still running


class MoveRequests:
    """The requests a source node sends the target of a move (on the mover's thread)."""

    def __init__(self, client: HostClient, here: NodeIdentity):
        self._client = client
        self._here = here

    def prepare(
        self, address: str, agent_id: str, class_name: str, kind: EnvelopeKind, token: str, ticket: TransferTicket
    ) -> dict[str, Any]:
        """Ask the target to get a worker ready for the paglet; its answer's header (name, max_message_size)."""
        here = self._here
        header: dict[str, Any] = {
            "agent": agent_id,
            "cls": class_name,
            "kind": kind.value,
            "token": token,
            "source": here.address,
            "ttl": float(ticket.timeout) + 5.0,
            "caps": list(ticket.required_capabilities),
        }
        if ticket.expected_code_version is not None:
            header["version"] = ticket.expected_code_version
        header["srcver"] = here.code_version  # the target refuses another version unless the ticket allows it
        last: PagletError | None = None
        for attempt in range(ticket.retries + 1):
            if attempt:
                threading.Event().wait(ticket.retry_interval)  # a deliberate back-off between attempts
            try:
                return self._client.request(
                    address, "prepare", dict(header), timeout=ticket.timeout, watch_connection=True
                ).header
            except NodeUnreachableError as exc:
                last = exc
            except PagletError as exc:
                raise TransferError(f"{address} refused paglet {agent_id}: {exc}") from None
        raise TransferError(f"cannot reach {address} to move paglet {agent_id}: {last}") from None

    def upload_files(self, address: str, envelope: PagletEnvelope, deadline: float) -> None:
        """Send the target each registered file it lacks, in chunks; the envelope keeps no local paths."""
        client = self._client
        for item in envelope.metadata["files"]:
            sha, size = item["sha256"], item["size"]
            if client.request(address, "blob_has", {"sha": sha, "size": size}, timeout=time_left(deadline)).header.get(
                "have"
            ):
                continue
            with open(item.pop("path"), "rb") as handle:
                offset = 0
                while True:
                    chunk = handle.read(CHUNK_SIZE)
                    final = offset + len(chunk) >= size
                    header = {"sha": sha, "offset": offset, "size": size, "final": final}
                    client.request(
                        address, "blob_put", header, (chunk,), timeout=time_left(deadline), watch_connection=True
                    )
                    offset += len(chunk)
                    if final:
                        break
        for item in envelope.metadata["files"]:
            item.pop("path", None)

    def arrive(self, address: str, envelope: PagletEnvelope, deadline: float, limit: Any) -> dict[str, Any]:
        """Send the envelope (``limit``: the target's max_message_size, from its prepare answer, if it said)."""
        client = self._client
        header = {"agent": envelope.agent_id, "token": envelope.metadata["token"]}
        data = envelope.to_bytes()
        if isinstance(limit, int) and len(data) > limit:  # the target would drop it unanswered: say so now
            raise TransferError(
                f"paglet {envelope.agent_id}'s envelope is {len(data)} bytes; {address} takes messages of at most "
                f"{limit} bytes (its max_message_size)"
            )
        try:
            return client.request(
                address, "arrive", dict(header), (data,), timeout=time_left(deadline), watch_connection=True
            ).header
        except NodeUnreachableError:
            # Did it arrive and only the answer got lost? Ask before deciding.
            if self._arrived(address, header, deadline):
                return {"agent": envelope.agent_id, "address": address}
            raise

    def _arrived(self, address: str, header: dict[str, Any], deadline: float) -> bool:
        for _ in range(3):
            try:
                status = self._client.request(address, "transfer", dict(header), timeout=max(1.0, time_left(deadline)))
            except PagletError:
                return False
            if status.header.get("status") == "arrived":
                return True
            if status.header.get("status") != "starting":
                return False
            threading.Event().wait(ARRIVAL_POLL)  # arrival hook still running there: give it a moment
        return False

    def abort_later(self, address: str, agent_id: str, token: str) -> None:
        """On a thread of its own: tell the target to drop the arrival it prepared (it expires anyway)."""

        def abort() -> None:
            try:
                self._client.request(address, "abort", {"agent": agent_id, "token": token}, timeout=ABORT_DEADLINE)
            except PagletError as exc:
                log.debug("abort of %s at %s: %s", agent_id, address, exc)

        threading.Thread(target=abort, name="paglets-abort", daemon=True).start()


def time_left(deadline: float) -> float:
    """Seconds until ``deadline`` (monotonic); TimeoutError once it has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the transfer's time ran out")
    return remaining


def transfer_error(exc: BaseException, what: str) -> BaseException:
    """What a failed ``what`` raises: a TransferError saying why, or ``exc`` itself for anything else (a bug)."""
    if isinstance(exc, TransferError):
        return exc
    if isinstance(exc, (PagletError, TimeoutError, OSError)):
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError) and not str(exc):
            reason = "timed out"
        return TransferError(f"{what} failed: {reason}")
    if isinstance(exc, (InvalidAgentError, HostError)):
        return TransferError(f"{what} failed: {exc}")
    return exc


__all__ = ["MoveRequests", "time_left", "transfer_error"]

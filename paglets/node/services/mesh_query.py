"""MESH lookups: ask every online node of the mesh for its MESH records, in parallel, within a deadline.

A MESH lookup must see a record the moment its provider advertised it and
stop seeing it the moment the provider is gone (moved, disposed, crashed),
so records are not copied around by gossip: the asking node sends one
``services`` request (``peer: true``: "your own MESH records, no fan-out")
to each online node its gossip table lists, all at once, and merges what
comes back before the deadline. A node that does not answer in time is
left out of that lookup (and logged); the lookup never waits longer than
``timeout``.

Bounded: at most ``max_nodes`` nodes per lookup, ``max_concurrent`` lookups
fanning out at once (more wait for a turn within their deadline, then get
OverloadedError), and each answer is at most ``MAX_REPLY_BYTES`` and
``max_records`` records, each checked by :meth:`ServiceRecord.from_wire`;
a record that names another node's address than the one asked is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any

from paglets.client.host_client import HostClient
from paglets.core.errors import OverloadedError, PagletError, SerializationError
from paglets.core.runtime_values import ServiceScope
from paglets.node.mesh.registry import MeshRegistry
from paglets.services.records import ServiceRecord
from paglets.wire import protocol

log = logging.getLogger("paglets.services")

QUERY_TIMEOUT = 2.0  # seconds a MESH lookup waits for the other nodes
MAX_QUERY_NODES = 64  # nodes one MESH lookup asks
MAX_CONCURRENT_QUERIES = 16  # MESH lookups fanning out at once from one node
MAX_REPLY_BYTES = 8 * 1024 * 1024  # one node's answer


class MeshQuery:
    """Asks the other nodes of the mesh for their MESH records. Any thread."""

    def __init__(
        self,
        mesh: MeshRegistry,
        client: HostClient,
        node_name: str,
        *,
        timeout: float = QUERY_TIMEOUT,
        max_nodes: int = MAX_QUERY_NODES,
        max_concurrent: int = MAX_CONCURRENT_QUERIES,
        max_records: int = 10_000,
    ):
        self._mesh = mesh
        self._client = client
        self._node_name = node_name
        self.timeout = timeout
        self.max_nodes = max_nodes
        self.max_records = max_records
        self._turns = threading.BoundedSemaphore(max_concurrent)

    def records(self, name: str | None, capability: str | None) -> list[ServiceRecord]:
        """The MESH records of every other online node (those that answered in time), node by node."""
        others = self._mesh.hosts(online_only=True, include_self=False)
        if not others:
            return []
        if len(others) > self.max_nodes:
            log.warning(
                "node %s: a MESH lookup asks %d of the %d online nodes (the limit)",
                self._node_name, self.max_nodes, len(others),
            )  # fmt: skip
            others = others[: self.max_nodes]
        deadline = time.monotonic() + self.timeout
        if not self._turns.acquire(timeout=self.timeout):
            raise OverloadedError(f"node {self._node_name}: too many MESH service lookups at once; retry later")
        try:
            header: dict[str, Any] = {"scope": ServiceScope.MESH.value, "peer": True}
            if name is not None:
                header["name"] = name
            if capability is not None:
                header["cap"] = capability
            asked = {
                ref.url: self._client.request_future(ref.url, "services", dict(header), timeout=self.timeout)
                for ref in others
            }
            wait_futures(list(asked.values()), timeout=max(0.0, deadline - time.monotonic()))
            found: list[ServiceRecord] = []
            for url, future in asked.items():
                found.extend(self._answer(url, future))
            return found
        finally:
            self._turns.release()

    def _answer(self, url: str, future: Future[Any]) -> list[ServiceRecord]:
        if not future.done():
            future.cancel()
            log.info("node %s: %s did not answer a MESH service lookup in time", self._node_name, url)
            return []
        try:
            reply = future.result()
            return parse_records(reply.payload, url, self.max_records)
        except (PagletError, ValueError) as exc:
            log.info("node %s: MESH service lookup at %s: %s", self._node_name, url, exc)
            return []


def parse_records(payload: list[bytes], url: str, max_records: int) -> list[ServiceRecord]:
    """The MESH records in a peer's ``services`` answer, each checked; SerializationError if malformed."""
    if len(payload) != 1 or len(payload[0]) > MAX_REPLY_BYTES:
        raise SerializationError(f"services answer from {url}: one frame of at most {MAX_REPLY_BYTES} bytes expected")
    wires = protocol.unpack_map(payload[0], f"services answer from {url}").get("records")
    if not isinstance(wires, list) or len(wires) > max_records:
        raise SerializationError(f"services answer from {url}: a list of at most {max_records} records expected")
    records = []
    for wire in wires:
        record = ServiceRecord.from_wire(wire)
        if record.host_url != url or record.scope is not ServiceScope.MESH:
            continue  # a node speaks for its own MESH records only
        records.append(record)
    return records


def pack_records(records: list[ServiceRecord]) -> bytes:
    return protocol.pack({"records": [record.to_wire() for record in records]})


__all__ = ["MAX_QUERY_NODES", "QUERY_TIMEOUT", "MeshQuery", "pack_records", "parse_records"]

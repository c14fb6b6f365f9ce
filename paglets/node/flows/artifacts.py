"""Artifacts on a node: the front ops and host calls that store, serve, fetch and delete them.

Clients and other nodes ask over the front socket (``artifact_*`` ops, see
:mod:`paglets.client.artifacts` for the streaming side); the node's own
paglets ask with host calls, which carry who they are, so what a paglet
uploads is owned by it (and goes when it is disposed here, see
:func:`release_on_dispose`). A node fetches an artifact from another node
(``artifact_fetch``) by pulling its chunks into its own store: the bytes go
node to node, through neither the client nor a worker. Owns no state: the
store (:class:`~paglets.node.storage.artifacts.ArtifactStore`) holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paglets.client.addresses import check_address
from paglets.client.artifacts import receive_into, transfer_plan
from paglets.client.host_client import HostClient
from paglets.core.artifacts import ArtifactRef, check_artifact_id
from paglets.core.errors import ArtifactError, HostError
from paglets.core.events import ContextEvent
from paglets.node.identity import NodeIdentity
from paglets.node.storage.artifacts import TRANSFER_CHUNK, TRANSFER_WINDOW, ArtifactStore
from paglets.wire import codec, protocol

Answer = tuple[dict[str, Any], list[bytes]]
FRONT_OPS = frozenset(
    {"artifact_begin", "artifact_chunk", "artifact_commit", "artifact_abort", "artifact_stat", "artifact_get",
     "artifact_list", "artifact_delete", "artifact_fetch"}
)  # fmt: skip
HOST_CALLS = frozenset({"artifact_put", "artifact_fetch", "artifact_path", "artifact_delete"})
HEADER_ROOM = 64 * 1024  # bytes of a chunk request that are not the chunk


class ArtifactExchange:
    """One method per front op (``_op_<name>``) and host call (``_call_<name>``) on artifacts."""

    def __init__(self, store: ArtifactStore, client: HostClient, here: NodeIdentity, *, max_message_size: int):
        self._store = store
        self._client = client
        self._here = here
        self._chunk = max(4096, min(TRANSFER_CHUNK, max_message_size - HEADER_ROOM))

    def handle_front(self, request: protocol.Request) -> Answer:
        return getattr(self, f"_op_{request.op}")(request.header, request.payload)

    def handle_host_call(self, agent_id: str, header: dict[str, Any]) -> list[bytes]:
        op = str(header.get("op"))
        result = getattr(self, f"_call_{op}")(agent_id, header)
        return [codec.encode(result, root=f"{op} result")]

    def _plan(self) -> dict[str, Any]:
        return {"chunk": self._chunk, "window": TRANSFER_WINDOW}

    # -- front ops ----------------------------------------------------------------------------
    def _op_artifact_begin(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        started = self._store.begin(header["sha"], header["size"], header["name"], owner=header.get("owner"))
        if isinstance(started, ArtifactRef):
            return {"artifact": started.to_wire()}, []
        return {"token": started.token, **self._plan()}, []

    def _op_artifact_chunk(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {"held": self._store.put(header["token"], header["offset"], payload[0])}, []

    def _op_artifact_commit(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {"artifact": self._store.commit(header["token"]).to_wire()}, []

    def _op_artifact_abort(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        self._store.abort(header["token"])
        return {}, []

    def _op_artifact_stat(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {"artifact": self._store.stat(header["sha"]).to_wire(), **self._plan()}, []

    def _op_artifact_get(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {}, [self._store.read(header["sha"], header["offset"], header["length"])]

    def _op_artifact_list(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {"artifacts": [ref.to_wire() for ref in self._store.refs()], "usage": self._store.usage()}, []

    def _op_artifact_delete(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {"artifact": self._store.delete(header["sha"]).to_wire()}, []

    def _op_artifact_fetch(self, header: dict[str, Any], payload: list[bytes]) -> Answer:
        return {"artifact": self.fetch(header["sha"], header["source"], header.get("name")).to_wire()}, []

    # -- host calls (owner: the calling paglet) --------------------------------------------------
    def _call_artifact_put(self, agent_id: str, header: dict[str, Any]) -> Any:
        path = Path(str(header.get("path")))
        if not path.is_absolute():
            raise ArtifactError(f"cannot upload {str(path)!r}: the node needs an absolute path")
        return self._store.import_file(path, header.get("name"), agent_id).to_wire()

    def _call_artifact_fetch(self, agent_id: str, header: dict[str, Any]) -> Any:
        return self.fetch(str(header.get("sha")), str(header.get("source")), header.get("name"), agent_id).to_wire()

    def _call_artifact_path(self, agent_id: str, header: dict[str, Any]) -> Any:
        ref = self._store.stat(str(header.get("sha")))
        return {"artifact": ref.to_wire(), "path": str(self._store.blob_path(ref.id))}

    def _call_artifact_delete(self, agent_id: str, header: dict[str, Any]) -> Any:
        self._store.delete(str(header.get("sha")))

    # -- node to node ---------------------------------------------------------------------------
    def fetch(self, sha: str, source: str, name: str | None = None, owner: str | None = None) -> ArtifactRef:
        """Pull artifact ``sha`` from node ``source`` into this node's store (a no-op if it holds it); its ref here."""
        sha = check_artifact_id(sha)
        try:
            source = check_address(source)
        except ValueError as exc:
            raise ArtifactError(f"cannot fetch artifact {sha[:12]}: {exc}") from None
        if source == self._here.address:
            held = self._store.stat(sha)
            started = self._store.begin(sha, held.size, name or held.name, owner=owner)
        else:
            answer = self._client.request(source, "artifact_stat", {"sha": sha}).header
            remote = ArtifactRef.from_wire(answer.get("artifact"))
            if remote.id != sha:
                raise HostError(f"node {source} answered for artifact {remote.id[:12]}, not {sha[:12]}")
            started = self._store.begin(sha, remote.size, name or remote.name, owner=owner, what=f"fetch from {source}")
            if not isinstance(started, ArtifactRef):
                try:
                    receive_into(self._client, source, sha, started.sink, transfer_plan(answer))
                except BaseException:
                    self._store.abort(started.token)
                    raise
                return self._store.commit(started.token)
        if not isinstance(started, ArtifactRef):  # the blob went away meanwhile
            self._store.abort(started.token)
            raise ArtifactError(f"artifact {sha[:12]} was deleted from this node while it was fetched")
        return started


def release_on_dispose(store: ArtifactStore) -> Any:
    """An event listener: when a paglet is disposed here, the artifacts it owns (alone) go too."""

    def listener(event: ContextEvent) -> None:
        if event.kind == "dispose" and event.agent_id:
            store.release_owner(event.agent_id)

    return listener


__all__ = ["FRONT_OPS", "HOST_CALLS", "ArtifactExchange", "release_on_dispose"]

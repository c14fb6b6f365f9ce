"""Artifacts: files exchanged explicitly between paglets, clients and nodes, as the programming model sees them.

An artifact is a file a node keeps in its content-addressed store (named by
its sha256). An :class:`ArtifactRef` says where one is and what it holds; it
is plain data, so it can live in a paglet's state and travel in a message's
args. The bytes never travel with the ref: whoever holds a ref downloads the
file from ``ref.host`` (or asks its own node to fetch it from there).

The store itself is in :mod:`paglets.node.storage.artifacts`; the streamed
transfers in :mod:`paglets.client.artifacts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from paglets.core.errors import ArtifactError

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}\Z")
MAX_ARTIFACT_NAME = 255  # characters of a name (metadata only, never a path)


@dataclass(frozen=True)
class ArtifactRef:
    """One artifact on one node.

    ``host``: the address of the node that holds it; ``id``: its id there,
    which is its ``sha256`` (hex); ``name``: a file name kept as metadata
    (never used as a path on the node); ``size`` in bytes; ``created``: UNIX
    time it was first stored there; ``owner``: the agent id of the paglet
    that uploaded it (the artifact goes when that paglet is disposed on that
    node), None for one a client uploaded.
    """

    host: str
    id: str
    name: str
    size: int
    sha256: str
    created: float
    owner: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "host": self.host, "id": self.id, "name": self.name, "size": self.size,
            "sha256": self.sha256, "created": self.created, "owner": self.owner,
        }  # fmt: skip

    @classmethod
    def from_wire(cls, payload: Any, host: str | None = None) -> ArtifactRef:
        """A ref from a plain map (a node's answer); ``host`` overrides the map's."""
        if not isinstance(payload, dict):
            raise ArtifactError(f"not an artifact description: {payload!r:.200}")
        try:
            ref = cls(
                host=str(host if host is not None else payload["host"]),
                id=check_artifact_id(payload["id"]),
                name=str(payload.get("name") or ""),
                size=int(payload["size"]),
                sha256=check_artifact_id(payload.get("sha256") or payload["id"]),
                created=float(payload.get("created") or 0.0),
                owner=payload.get("owner") if isinstance(payload.get("owner"), str) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"not an artifact description ({exc}): {payload!r:.200}") from None
        if ref.size < 0:
            raise ArtifactError(f"artifact {ref.id[:12]} has a negative size {ref.size}")
        return ref


def check_artifact_id(value: Any) -> str:
    """``value`` if it is an artifact id (a sha256: 64 characters of 0-9 a-f); else ArtifactError."""
    if not isinstance(value, str) or not SHA256_PATTERN.match(value):
        raise ArtifactError(f"artifact id {value!r:.80} is not a sha256 hex digest (64 characters of 0-9 a-f)")
    return value


def check_artifact_name(value: Any) -> str:
    """``value`` if it is a plain file name (a name is metadata, never a path); else ArtifactError."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ARTIFACT_NAME
        or value in (".", "..")
        or any(c in value for c in "/\\\0")
        or not value.isprintable()
    ):
        raise ArtifactError(
            f"artifact name {value!r:.80} must be a plain file name: 1-{MAX_ARTIFACT_NAME} printable "
            "characters, no / or \\, not . or .."
        )
    return value


__all__ = ["MAX_ARTIFACT_NAME", "SHA256_PATTERN", "ArtifactRef", "check_artifact_id", "check_artifact_name"]

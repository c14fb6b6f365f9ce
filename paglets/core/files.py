"""Files a paglet registers so they travel with it (``register_file``), as the paglet sees them.

A :class:`PagletFileRef` names one registered file: where it is now on this
node and how it moves (``copy`` keeps the original, ``move`` removes it once
the paglet has left). The node's registry and the blobs that carry files
between nodes are in :mod:`paglets.node.storage.files`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paglets.core.errors import HostError

MODES = ("copy", "move")


@dataclass(frozen=True)
class PagletFileRef:
    """A file registered by a paglet: its name, where it is now, and how it travels."""

    name: str
    path: str
    size: int
    mode: str = "copy"
    sha256: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "size": self.size, "mode": self.mode, "sha256": self.sha256}

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> PagletFileRef:
        return cls(
            name=str(payload["name"]),
            path=str(payload.get("path") or ""),
            size=int(payload["size"]),
            mode=str(payload.get("mode") or "copy"),
            sha256=payload.get("sha256"),
        )


def check_file_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise HostError(f"file name {name!r} must be a plain file name")
    return name


__all__ = ["MODES", "PagletFileRef", "check_file_name"]

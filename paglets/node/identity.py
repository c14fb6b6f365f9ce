"""Who this node is: its name, where it can be reached, what it runs and offers.

One :class:`NodeIdentity` per node, created by the Host from its config and
completed when the node starts (the front port and HTTP address are known
only then). Every part that names the node in an error, an event or an
envelope reads it here. Written by the Host's start-up only; read by any
thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from paglets.client.hosts import HostRef

CAPABILITIES = (
    "messages", "create", "dispose", "state", "http", "dispatch", "clone", "retract", "files",
    "deactivate", "activate", "storage",
)  # fmt: skip


@dataclass
class NodeIdentity:
    """Name, addresses, code version and mesh labels of one node."""

    name: str
    address: str
    data_dir: Path
    code_version: str
    tags: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    http_address: str | None = None
    started_at: float = 0.0
    insecure: bool = False  # reachable off loopback with neither an API key nor CurveZMQ (--insecure)

    def capabilities(self) -> list[str]:
        return [c for c in CAPABILITIES if c != "http" or self.http_address is not None]

    def mesh_entry(self, active: int, parked: int) -> HostRef:
        """How this node describes itself in the mesh's gossip, with its paglet counts."""
        return HostRef(
            name=self.name, url=self.address, code_version=self.code_version, active_count=active,
            inactive_count=parked, tags=tuple(self.tags), properties=dict(self.properties),
            http_url=self.http_address,
        )  # fmt: skip

    def uptime(self) -> float:
        return round(time.time() - self.started_at, 3) if self.started_at else 0.0

    @property
    def work_root(self) -> Path:
        """Where paglets' work directories live (wiped at node start)."""
        return self.data_dir / "work"

    @property
    def storage_root(self) -> Path:
        """Persistent storage per paglet class."""
        return self.data_dir / "storage"


__all__ = ["CAPABILITIES", "NodeIdentity"]

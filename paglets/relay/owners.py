"""Who owns each node name at the relay: a hash of the secret that first registered it.

A node registers with its registration secret (kept in its own data
directory). The first registration of a name stores the secret's SHA-256 in
``<data dir>/owners/<name>`` — written to a temp file, fsync'd, renamed, the
directory fsync'd — so a relay that restarts still knows who owns what. From
then on only a hello carrying the same secret gets the name. Owned by the
relay loop thread.

Releasing a name (its node's data directory is lost for good): stop the
relay and delete ``owners/<name>``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from enum import Enum
from pathlib import Path

from paglets.persistence.journal import write_atomically
from paglets.wire.protocol import AGENT_ID_PATTERN

log = logging.getLogger("paglets.relay.owners")


class Claim(Enum):
    """How a registration secret compares with the one a name was first registered with."""

    FREE = "free"  # nobody registered the name yet
    OWNER = "owner"  # the same secret
    OTHER = "other"  # another secret: someone else's name


class NameOwners:
    """The durable table name -> SHA-256 of its registration secret."""

    def __init__(self, root: Path, *, limit: int):
        self.root = root / "owners"
        self.limit = limit
        self._digests: dict[str, bytes] = {}

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for path in self.root.iterdir():
            if path.name.startswith(".") or not AGENT_ID_PATTERN.match(path.name):
                continue  # a temp file left by a crash, or not ours
            try:
                digest = bytes.fromhex(path.read_text().strip())
            except (OSError, ValueError) as exc:
                log.error("relay: owner record %s is unreadable (%s); the name is free again", path, exc)
                continue
            if len(digest) == hashlib.sha256().digest_size:
                self._digests[path.name] = digest

    def __len__(self) -> int:
        return len(self._digests)

    def full(self) -> bool:
        return len(self._digests) >= self.limit

    def check(self, name: str, secret: str) -> Claim:
        known = self._digests.get(name)
        if known is None:
            return Claim.FREE
        return Claim.OWNER if hmac.compare_digest(known, _digest(secret)) else Claim.OTHER

    def record(self, name: str, secret: str) -> None:
        """Remember ``secret`` as the owner of the free name ``name``, durably (OSError if the disk says no)."""
        digest = _digest(secret)
        write_atomically(self.root / name, digest.hex().encode() + b"\n")
        self._digests[name] = digest


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


__all__ = ["Claim", "NameOwners"]

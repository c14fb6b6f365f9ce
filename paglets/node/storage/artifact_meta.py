"""What the artifact store records about each artifact besides its bytes: ``.meta/<sha256>.json``.

A record is written through a temporary file, fsync'd and renamed, and its
directory synced, so a crash leaves the old record or the new one. At start
a record is kept only if its id is a sha256 and its blob is there with the
recorded size: an artifact the store cannot vouch for is not listed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paglets.client.artifact_sink import sync_directory
from paglets.core.artifacts import check_artifact_id, check_artifact_name
from paglets.core.errors import ArtifactError

META_DIR = ".meta"


@dataclass
class ArtifactMeta:
    """What the store records about one artifact besides its bytes."""

    name: str
    size: int
    created: float
    owners: list[str] = field(default_factory=list)  # paglets that uploaded it
    kept: bool = False  # a client uploaded it: it stays until deleted

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "created": self.created, "owners": self.owners,
                "kept": self.kept}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> ArtifactMeta:
        owners = data.get("owners")
        return cls(
            name=check_artifact_name(data["name"]),
            size=int(data["size"]),
            created=float(data["created"]),
            owners=[o for o in owners if isinstance(o, str)] if isinstance(owners, list) else [],
            kept=bool(data.get("kept")),
        )


def load_metadata(root: Path) -> dict[str, ArtifactMeta]:
    """The records under ``root/.meta`` whose blobs are there with their sizes; the others are removed."""
    loaded: dict[str, ArtifactMeta] = {}
    for record in (root / META_DIR).glob("*.json"):
        sha = record.stem
        try:
            check_artifact_id(sha)
            meta = ArtifactMeta.from_json(json.loads(record.read_text()))
            blob = root / sha
            if not blob.is_file() or blob.stat().st_size != meta.size:
                raise ValueError("its blob is missing or has another size")
        except (ArtifactError, ValueError, TypeError, KeyError, OSError):
            record.unlink(missing_ok=True)  # an artifact we cannot vouch for is not listed
            continue
        loaded[sha] = meta
    return loaded


def write_meta(root: Path, sha: str, meta: ArtifactMeta) -> None:
    """Write the record of artifact ``sha`` durably (temporary file, fsync, rename, directory sync)."""
    record = root / META_DIR / f"{sha}.json"
    temporary = record.with_suffix(".tmp")
    with open(temporary, "w") as handle:
        json.dump(meta.to_json(), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, record)
    sync_directory(record.parent)


__all__ = ["META_DIR", "ArtifactMeta", "load_metadata", "write_meta"]

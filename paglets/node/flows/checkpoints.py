"""Checkpoints of active paglets, so a node killed outright brings them back.

With ``checkpoint_interval`` set on the node (or ``CHECKPOINT_INTERVAL`` on a
paglet class; 0 turns it off for that class), a thread snapshots each active
paglet's state that often and writes it durably to
``checkpoints/<agent_id>.mpk`` — skipping the write when the state has not
changed. When a node starts and finds checkpoints (it was killed, not
stopped), each becomes a parked record that wakes on startup: the paglets
come back active with their last checkpointed state. Messages they received
after that checkpoint are lost; a clean ``stop()`` removes the checkpoints,
since stopping alone does not persist.

Owns the ``checkpoints/`` directory and the per-paglet digests of what it last
wrote.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from paglets.core.errors import PagletError, SerializationError
from paglets.core.events import ContextEventLog
from paglets.core.runtime_values import EnvelopeKind
from paglets.node.flows.inspection import Inspection
from paglets.node.identity import NodeIdentity
from paglets.persistence.journal import fsync_dir, write_atomically
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest, InactiveRecord
from paglets.wire.envelope import PagletEnvelope

log = logging.getLogger("paglets.checkpoints")
TICK = 0.25  # how often the thread looks for checkpoints that are due


class Checkpointer:
    """Periodic durable snapshots of a node's active paglets."""

    def __init__(self, inspection: Inspection, here: NodeIdentity, events: ContextEventLog, interval: float | None):
        self._inspection = inspection
        self._here = here
        self._events = events
        self.interval = interval if interval and interval > 0 else None
        self.root = here.data_dir / "checkpoints"
        self._written: dict[str, tuple[float, bytes]] = {}  # agent -> (when, digest)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restore_into(self, inactive_dir: Path) -> list[str]:
        """Turn checkpoints left by a killed node into parked records that wake on startup."""
        if not self.root.is_dir():
            return []
        restored = []
        for path in sorted(self.root.glob("*.mpk")):
            target = inactive_dir / path.name
            if not target.exists():  # a parked record is newer than any checkpoint
                inactive_dir.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
                restored.append(path.stem)
            else:
                path.unlink(missing_ok=True)
        fsync_dir(inactive_dir)
        return restored

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"paglets-checkpoints-{self._here.name}", daemon=True)
        self._thread.start()

    def stop(self, *, keep: bool) -> None:
        """Stop checkpointing; without ``keep`` forget every checkpoint (a clean stop persists nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if not keep and self.root.is_dir():
            for path in self.root.glob("*.mpk"):
                path.unlink(missing_ok=True)
        self._written.clear()

    def forget(self, agent_id: str) -> None:
        """The paglet left, was parked or disposed of: its checkpoint must not bring it back."""
        self._written.pop(agent_id, None)
        (self.root / f"{agent_id}.mpk").unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self._checkpoint_due()
            except PagletError as exc:
                log.debug("checkpoint round failed: %s", exc)

    def _checkpoint_due(self) -> None:
        now = time.monotonic()
        for summary in self._inspection.active_summaries():
            interval = summary.get("checkpoint_interval")
            interval = self.interval if interval is None else interval
            if not interval or summary["phase"] != "ready":
                continue
            agent_id = summary["agent_id"]
            last = self._written.get(agent_id)
            if last is not None and now - last[0] < interval:
                continue
            try:
                self._write(agent_id, summary["class_name"], last[1] if last else b"")
            except (PagletError, OSError, SerializationError) as exc:
                log.debug("no checkpoint for %s this time: %s", agent_id, exc)

    def _write(self, agent_id: str, class_name: str, previous: bytes) -> None:
        here = self._here
        state = self._inspection.state_bytes(agent_id)
        digest = hashlib.blake2b(state, digest_size=16).digest()
        if digest != previous:
            envelope = PagletEnvelope(
                kind=EnvelopeKind.ACTIVATION,
                agent_id=agent_id,
                agent_class_name=class_name,
                state_class_name="",
                state=state,
                source_host_name=here.name,
                source_host_address=here.address,
                target_host_name=here.name,
                target_host_address=here.address,
            )
            record = InactiveRecord(
                envelope,
                DeactivationPolicy(activate_on_startup=True),
                DeactivationRequest(reason="checkpoint", source="node"),
                time.time(),
            )
            write_atomically(self.root / f"{agent_id}.mpk", record.to_bytes())
            self._events.emit("checkpoint", agent_id=agent_id, class_name=class_name)
        self._written[agent_id] = (time.monotonic(), digest)


__all__ = ["Checkpointer"]

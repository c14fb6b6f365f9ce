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

A checkpoint never outlives its paglet's departure: before a paglet leaves
(dispatch, retract, disposal) :meth:`Checkpointer.hold` deletes its
checkpoint and fences off writes for it, and the checkpoint thread checks
that fence under the same lock just before it renames a new checkpoint into
place. So a crash after the paglet has arrived elsewhere never brings a
second copy back here. (A crash in the middle of a move may then lose the
paglet's last checkpoint; it never duplicates the paglet.)

Failures to write (a full disk, a broken directory) are logged as errors,
once until that paglet's checkpoint works again; a paglet that is busy or
gone this round is skipped quietly.

Owns the ``checkpoints/`` directory, the per-paglet digests of what it last
wrote and the fences of paglets leaving; one lock guards them, taken by the
checkpoint thread and by the flows that move, park and dispose of paglets.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from paglets.core.errors import PagletError
from paglets.core.events import ContextEventLog
from paglets.core.runtime_values import EnvelopeKind
from paglets.node.flows.inspection import Inspection
from paglets.node.identity import NodeIdentity
from paglets.persistence.journal import fsync_dir, write_atomically
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest, InactiveRecord
from paglets.wire.envelope import PagletEnvelope

log = logging.getLogger("paglets.checkpoints")
TICK = 0.25  # how often the thread looks for checkpoints that are due
STOP_DEADLINE = 10.0  # seconds the checkpoint thread may take to finish its round when the node stops


class Checkpointer:
    """Periodic durable snapshots of a node's active paglets."""

    def __init__(self, inspection: Inspection, here: NodeIdentity, events: ContextEventLog, interval: float | None):
        self._inspection = inspection
        self._here = here
        self._events = events
        self.interval = interval if interval and interval > 0 else None
        self.root = here.data_dir / "checkpoints"
        self._lock = threading.Lock()
        self._written: dict[str, tuple[float, bytes]] = {}  # agent -> (when, digest)
        self._held: set[str] = set()  # paglets on their way out: no checkpoint may be written for them
        self._writing: str | None = None  # the paglet whose state the checkpoint thread is reading now
        self._cancelled = False  # that paglet was held or forgotten meanwhile: its checkpoint must not land
        self._failing: dict[str, str] = {}  # agent -> the write error last logged (logged once per streak)
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
            self._thread.join(STOP_DEADLINE)
            self._thread = None
        if not keep and self.root.is_dir():
            for path in self.root.glob("*.mpk"):
                path.unlink(missing_ok=True)
        with self._lock:
            self._written.clear()
            self._held.clear()
            self._failing.clear()

    # -- the flows (any thread) -----------------------------------------------------------
    def hold(self, agent_id: str) -> None:
        """The paglet is about to leave: delete its checkpoint (durably) and write none until
        :meth:`release` (it stayed after all) or :meth:`forget` (it is gone)."""
        with self._lock:
            self._held.add(agent_id)
            self._cancel(agent_id)
            self._delete(agent_id)

    def release(self, agent_id: str) -> None:
        """The move was cancelled: the paglet stays, and its checkpoints resume at the next round."""
        with self._lock:
            self._held.discard(agent_id)
            self._written.pop(agent_id, None)

    def forget(self, agent_id: str) -> None:
        """The paglet left, was parked or disposed of: its checkpoint must not bring it back."""
        with self._lock:
            self._held.discard(agent_id)
            self._cancel(agent_id)
            self._written.pop(agent_id, None)
            self._failing.pop(agent_id, None)
            self._delete(agent_id)

    def _cancel(self, agent_id: str) -> None:
        if self._writing == agent_id:
            self._cancelled = True

    def _delete(self, agent_id: str) -> None:
        path = self.root / f"{agent_id}.mpk"
        if path.exists():
            path.unlink(missing_ok=True)
            fsync_dir(self.root)  # gone for good before the paglet may exist anywhere else

    # -- the checkpoint thread --------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self._checkpoint_due()
            except PagletError as exc:  # the broker is stopping, say
                log.debug("checkpoint round failed: %s", exc)
            except Exception:  # the thread must outlive anything one round does
                log.exception("node %s: checkpoint round failed", self._here.name)

    def _checkpoint_due(self) -> None:
        now = time.monotonic()
        for summary in self._inspection.active_summaries():
            interval = summary.get("checkpoint_interval")
            interval = self.interval if interval is None else interval
            if not interval or summary["phase"] != "ready":
                continue
            agent_id = summary["agent_id"]
            with self._lock:
                last = self._written.get(agent_id)
            if last is not None and now - last[0] < interval:
                continue
            try:
                self._write(agent_id, summary["class_name"], last[1] if last else b"")
            except PagletError as exc:  # busy, crashed or gone this round; the next one tries again
                log.debug("no checkpoint for %s this time: %s", agent_id, exc)
            except OSError as exc:
                self._write_failed(agent_id, exc)

    def _write(self, agent_id: str, class_name: str, previous: bytes) -> None:
        with self._lock:
            if agent_id in self._held:
                return
            self._writing, self._cancelled = agent_id, False
        try:
            state = self._inspection.state_bytes(agent_id)
            digest = hashlib.blake2b(state, digest_size=16).digest()
            data = self._record(agent_id, class_name, state) if digest != previous else None
            with self._lock:
                if self._cancelled:  # it left (or is leaving) while its state was read
                    return
                if data is not None:
                    write_atomically(self.root / f"{agent_id}.mpk", data)
                self._written[agent_id] = (time.monotonic(), digest)
                recovered = self._failing.pop(agent_id, None) is not None
        finally:
            with self._lock:
                self._writing = None
        if recovered:
            log.info("node %s: checkpoints of paglet %s are written again", self._here.name, agent_id)
        if data is not None:
            self._events.emit("checkpoint", agent_id=agent_id, class_name=class_name)

    def _record(self, agent_id: str, class_name: str, state: bytes) -> bytes:
        here = self._here
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
        return record.to_bytes()

    def _write_failed(self, agent_id: str, exc: OSError) -> None:
        """A checkpoint could not be written: an error the first time, quieter while it keeps failing."""
        reason = f"{type(exc).__name__}: {exc}"
        with self._lock:
            repeated = self._failing.get(agent_id) == reason
            self._failing[agent_id] = reason
        if repeated:
            log.debug("node %s: still no checkpoint for paglet %s: %s", self._here.name, agent_id, reason)
        else:
            log.error(
                "node %s: could not write the checkpoint of paglet %s to %s: %s; a crash now would lose it",
                self._here.name, agent_id, self.root, reason,
            )  # fmt: skip


__all__ = ["Checkpointer"]

"""The artifact spool sweeper: unfinished uploads do not outlive ``artifact_spool_ttl_seconds``.

An upload or fetch that stops half-way (its client died, the network went,
nobody sent ``artifact_abort``) leaves a session and its ``.part`` file in
the store. :class:`SpoolSweeper` owns one thread that, a few times per TTL
(at most once a minute), asks the store to drop every session nobody touched
for the TTL and every stray ``.part`` as old; the store emits an
``artifact-upload-expired`` event for each session it drops. A node start
removes every ``.part`` of an earlier run (``ArtifactStore.prepare``).
"""

from __future__ import annotations

import logging
import threading

from paglets.node.storage.artifacts import ArtifactStore

log = logging.getLogger("paglets.artifacts")
MIN_INTERVAL = 0.05
MAX_INTERVAL = 60.0


class SpoolSweeper:
    """The thread that expires idle artifact uploads. Start and stop from the node's start-up and stop."""

    def __init__(self, store: ArtifactStore, ttl: float, node_name: str):
        self.ttl = ttl
        self.interval = min(max(ttl / 4, MIN_INTERVAL), MAX_INTERVAL)
        self._store = store
        self._name = f"paglets-artifact-spool-{node_name}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._store.expire(self.ttl)
            except Exception:  # a sweep that fails (a disk error) is logged; the next one tries again
                log.exception("%s: sweeping the artifact spool failed", self._name)


__all__ = ["SpoolSweeper"]

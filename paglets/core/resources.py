"""Per-paglet resources that must be released when the paglet leaves or stops.

A paglet registers a cleanup for each thing it opens (a file, a socket, a
thread pool). Before it is dispatched, retracted, deactivated or disposed of,
the runtime calls :meth:`ResourceRegistry.cleanup`, which releases them
newest first, so a resource built on another is closed before the one it
depends on. A cleanup that fails (unless registered with ``suppress=True``)
cancels that operation: the paglet stays where it was, active, and the
caller gets a :class:`~paglets.core.errors.LifecycleError` naming the
resource and its error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from paglets.core.errors import LifecycleError

logger = logging.getLogger("paglets.resources")

T = TypeVar("T")


class ResourceCleanupError(LifecycleError):
    """One or more cleanups failed; ``failures`` maps each name to its error."""

    def __init__(self, failures: dict[str, Exception], *, reason: str = "lifecycle") -> None:
        self.failures = dict(failures)
        self.reason = reason
        listed = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in self.failures.items())
        super().__init__(f"resource cleanup ({reason}) failed for {listed}")


@dataclass(frozen=True)
class _Entry:
    cleanup: Callable[[], Any]
    suppress: bool


class ResourceRegistry:
    """Named cleanups for one paglet, released in reverse registration order.

    Owns the ordered name -> cleanup table and its lock. Cleanups run outside
    the lock, so a cleanup may itself register or remove resources.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def register(self, name: str, cleanup: Callable[[], Any], *, suppress: bool = False) -> None:
        """Register ``cleanup`` under ``name``.

        Registering a name again replaces its cleanup and counts as a new
        registration (it is now the newest). With ``suppress=True`` a failing
        cleanup is logged instead of reported.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"resource name must be a non-empty str, got {name!r}")
        if not callable(cleanup):
            raise TypeError(f"cleanup for resource {name!r} must be callable")
        with self._lock:
            self._entries.pop(name, None)
            self._entries[name] = _Entry(cleanup, bool(suppress))

    def track_closeable(self, name: str, obj: T, *, method: str = "close", suppress: bool = False) -> T:
        """Register ``obj.<method>()`` as the cleanup of ``name``; return ``obj``."""
        cleanup = getattr(obj, method, None)
        if not callable(cleanup):
            raise TypeError(f"resource {name!r}: {type(obj).__name__} has no callable {method!r} method")
        self.register(name, cleanup, suppress=suppress)
        return obj

    def remove(self, name: str) -> bool:
        """Forget ``name`` without calling its cleanup; True if it was registered."""
        with self._lock:
            return self._entries.pop(name, None) is not None

    def cleanup(self, *, reason: str = "lifecycle") -> None:
        """Call every cleanup, newest first.

        Cleanups that succeed, or fail with ``suppress=True``, are removed.
        Failing ones stay registered and are reported together in a
        :class:`ResourceCleanupError`.
        """
        with self._lock:
            taken = list(self._entries.items())
            self._entries.clear()
        failed: dict[str, _Entry] = {}
        failures: dict[str, Exception] = {}
        for name, entry in reversed(taken):
            error = self._run_cleanup(name, entry, reason)
            if error is not None:
                failed[name] = entry
                failures[name] = error
        if failures:
            self._restore(taken, failed)
            raise ResourceCleanupError(failures, reason=reason)

    @staticmethod
    def _run_cleanup(name: str, entry: _Entry, reason: str) -> Exception | None:
        try:
            entry.cleanup()
        except Exception as exc:
            if not entry.suppress:
                return exc
            logger.warning("suppressed cleanup failure of %r (%s): %r", name, reason, exc)
        return None

    def _restore(self, taken: list[tuple[str, _Entry]], failed: dict[str, _Entry]) -> None:
        """Put failed entries back, ahead of anything registered meanwhile."""
        with self._lock:
            newer = self._entries
            self._entries = {name: entry for name, entry in taken if name in failed and name not in newer}
            self._entries.update(newer)

    def clear(self) -> None:
        """Forget every resource without calling any cleanup."""
        with self._lock:
            self._entries.clear()

    def status(self) -> dict[str, bool]:
        """Registered names, oldest first, each with its ``suppress`` flag."""
        with self._lock:
            return {name: entry.suppress for name, entry in self._entries.items()}

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


__all__ = ["ResourceCleanupError", "ResourceRegistry"]

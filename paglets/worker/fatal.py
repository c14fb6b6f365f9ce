"""A paglet's code raised a BaseException: the paglet is crashed, at once and for everyone to see.

``SystemExit``, ``KeyboardInterrupt`` or any other ``BaseException`` out of
a handler, a batch, a lifecycle hook or ``run()`` - or anything at all that
escapes one of the worker's threads - must not leave a paglet that looks
alive but answers nobody (a thread that dies silently takes a mailbox
credit, or a caller's reply, with it). :meth:`CrashReport.crash` tells the
node (the ``crashed`` host call: the node marks the paglet crashed, fails
every caller waiting on it with ``PagletCrashedError`` and emits
``paglet-crashed``), waits briefly for its answer, and ends the process
with :data:`~paglets.wire.back.CRASH_EXIT_CODE`; if the node cannot be
told, that exit code tells it.

Every thread of a worker runs its body through :meth:`CrashReport.run`
(control pool jobs: their Futures are read by nobody) or catches
``BaseException`` itself and calls :meth:`CrashReport.crash`.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

import zmq

from paglets.core.errors import PagletCrashedError
from paglets.wire import back
from paglets.worker.link import NodeLink

log = logging.getLogger("paglets.worker")

REPORT_TIMEOUT = 2.0  # seconds to wait for the node's answer to the crash report
MAX_REASON = 1000  # characters of the reason the node shows


class CrashReport:
    """Ends the worker when its paglet's code (or the worker itself) raised what nothing should."""

    def __init__(self, agent_id: str, link: NodeLink):
        self._agent_id = agent_id
        self._link = link
        self._lock = threading.Lock()  # one report; a second crashing thread waits for the exit

    def run(self, where: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``; anything it raises crashes the paglet (except the worker's own shutdown)."""
        try:
            return fn(*args)
        except (PagletCrashedError, zmq.ContextTerminated):
            return None  # from the worker's own sockets: the process is exiting
        except BaseException as exc:
            self.crash(where, exc)

    def crash(self, where: str, exc: BaseException) -> NoReturn:
        """Report ``exc`` (raised in ``where``) to the node and exit; never returns."""
        reason = f"{where} raised {type(exc).__name__}: {exc}"[:MAX_REASON]
        log.error("paglet %s crashed: %s", self._agent_id, describe(exc))
        with self._lock:
            try:
                self._link.call("crashed", {"reason": reason}, timeout=REPORT_TIMEOUT)
            except BaseException as report_failed:  # the exit code still tells the node
                log.debug("paglet %s: crash report failed: %r", self._agent_id, report_failed)
            os._exit(back.CRASH_EXIT_CODE)


def describe(exc: BaseException) -> str:
    """``exc`` with its traceback, for the log."""
    return "".join(traceback.format_exception(exc)).rstrip()


__all__ = ["REPORT_TIMEOUT", "CrashReport", "describe"]

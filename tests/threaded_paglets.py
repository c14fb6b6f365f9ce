"""A paglet module that starts a thread when imported: the template process must not import it."""

from __future__ import annotations

import threading
from typing import Any

from paglets.core.agent import Paglet, PagletState

_ticker = threading.Event()
threading.Thread(target=_ticker.wait, name="import-time-thread", daemon=True).start()


class ThreadedModulePaglet(Paglet[PagletState]):
    def handle_message(self, message: Any) -> Any:
        """The names of the threads alive in this worker process."""
        return sorted(thread.name for thread in threading.enumerate())

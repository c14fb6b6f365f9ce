"""Watching a logger from a test: what the node logs is part of what it promises (errors are not debug)."""

from __future__ import annotations

import logging
import threading


class LogRecords(logging.Handler):
    """Collects the records of one logger; ``seen`` is set by the first one at ``level`` or above."""

    def __init__(self, name: str, level: int = logging.ERROR):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.seen = threading.Event()
        self._level = level
        self._logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.levelno >= self._level:
            self.seen.set()

    def __enter__(self) -> LogRecords:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)

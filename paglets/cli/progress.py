"""A plain-text progress bar on stderr for long transfers (``paglets artifacts put|get``).

On a terminal the bar redraws in place (at most ten times a second); to a
file or pipe it prints one line per tenth of the way, so logs stay short.
Files under :data:`PROGRESS_FROM` bytes get no bar at all.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

MIB = 1024 * 1024
PROGRESS_FROM = 4 * MIB
WIDTH = 30
REDRAW_EVERY = 0.1  # seconds between two redraws on a terminal


class ProgressBar:
    """Called with ``(done, total)`` bytes as a transfer goes; draws ``label [####----] 40% 4.0/10.0 MiB 85 MiB/s``."""

    def __init__(self, label: str, *, enabled: bool = True, stream: TextIO | None = None):
        self.label = label
        self.enabled = enabled
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._started: float | None = None  # the first report: hashing before it is not transfer time
        self._last_draw = 0.0
        self._last_tenth = -1
        self._finished = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < PROGRESS_FROM or self._finished:
            return
        final = done >= total
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if self._tty:
            if not final and now - self._last_draw < REDRAW_EVERY:
                return
            self._stream.write("\r" + self._line(done, total, now) + ("\n" if final else ""))
        else:
            tenth = done * 10 // total
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self._stream.write(self._line(done, total, now) + "\n")
        self._stream.flush()
        self._last_draw = now
        self._finished = final

    def _line(self, done: int, total: int, now: float) -> str:
        fraction = done / total
        filled = int(fraction * WIDTH)
        rate = done / MIB / max(now - (self._started or now), 1e-3)
        return (
            f"{self.label} [{'#' * filled}{'-' * (WIDTH - filled)}] {fraction * 100:5.1f}% "
            f"{done / MIB:.1f}/{total / MIB:.1f} MiB {rate:.1f} MiB/s"
        )


__all__ = ["PROGRESS_FROM", "ProgressBar"]

"""Memory of the node's processes, read from /proc at scrape time (Linux; elsewhere nothing)."""

from __future__ import annotations

import os

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int | str = "self") -> int | None:
    """Resident memory of ``pid`` (``"self"``: this process) in bytes; None when it is gone or unknown."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            fields = statm.read(256).split()
    except OSError:
        return None
    try:
        return int(fields[1]) * PAGE_SIZE
    except (IndexError, ValueError):
        return None


__all__ = ["PAGE_SIZE", "rss_bytes"]

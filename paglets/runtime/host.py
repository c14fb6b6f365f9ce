"""Public import path kept for paglet authors (see API.md); the code lives in ``paglets.node.host``."""

from paglets.node.host import Host, WorkerResources

__all__ = ["Host", "WorkerResources"]

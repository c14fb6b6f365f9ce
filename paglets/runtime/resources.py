"""Public import path kept for paglet authors (see API.md); the code lives in ``paglets.worker.resources``."""

from paglets.worker.resources import ResourceCleanupError, ResourceRegistry

__all__ = ["ResourceCleanupError", "ResourceRegistry"]

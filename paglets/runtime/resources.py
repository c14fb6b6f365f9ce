"""Public import path kept for paglet authors (see API.md); the code lives in ``paglets.core.resources``."""

from paglets.core.resources import ResourceCleanupError, ResourceRegistry

__all__ = ["ResourceCleanupError", "ResourceRegistry"]

"""Public import path kept for paglet authors (see API.md); the code lives in ``paglets.wire.envelope``."""

from paglets.wire.envelope import PagletEnvelope

__all__ = ["PagletEnvelope"]

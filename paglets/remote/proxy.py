"""Public import path kept for paglet authors (see API.md); the code lives in ``paglets.client.proxy``."""

from paglets.client.proxy import PagletProxy

__all__ = ["PagletProxy"]

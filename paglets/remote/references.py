"""Public import path kept for paglet authors (see SERVICES.md); the code lives in ``paglets.client.references``."""

from paglets.client.references import PagletProxyRef

__all__ = ["PagletProxyRef"]

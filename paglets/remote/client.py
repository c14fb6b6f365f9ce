"""Public import path kept for paglet authors (see API.md); the code lives in ``paglets.client.host_client``."""

from paglets.client.host_client import HostClient, create_request, decode_result

__all__ = ["HostClient", "create_request", "decode_result"]

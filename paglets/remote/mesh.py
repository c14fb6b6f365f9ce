"""Public import path kept for paglet authors (see API.md).

The code lives in ``paglets.client.hosts`` and ``paglets.node.mesh.registry``.
"""

from paglets.client.hosts import HostRef
from paglets.node.mesh.registry import MeshRegistry

__all__ = ["HostRef", "MeshRegistry"]

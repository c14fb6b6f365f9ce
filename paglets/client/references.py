"""PagletProxyRef: where a paglet lives, as plain data that can be kept anywhere.

A :class:`~paglets.client.proxy.PagletProxy` carries a client (sockets,
threads); a reference carries only ``(host_url, agent_id)``. It is a
dataclass, so a paglet can keep one in its state: it moves and parks with
the paglet, and :meth:`PagletProxyRef.resolve` makes a proxy from it again
wherever the paglet is then.
"""

from paglets.client.proxy import PagletProxyRef

__all__ = ["PagletProxyRef"]

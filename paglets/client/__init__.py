"""The client SDK: HostClient and PagletProxy (importing the package wires the two together)."""

from paglets.client import host_client as _host_client  # noqa: F401  (registers the default client of proxies)

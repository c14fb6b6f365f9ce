"""Services: how paglets find each other by what they offer.

* :mod:`paglets.services.records` — :class:`ServiceRecord` (one
  advertisement) and the bounds on what an advertisement may hold;
* :mod:`paglets.services.contracts` — typed contracts: operations with
  dataclass requests and replies, :class:`ServiceHandle` to call a provider;
* :mod:`paglets.services.plain` — dataclass trees to plain data and back,
  checked against their type hints.

The registry itself lives in the node (:mod:`paglets.node.services`); paglets
reach it through their context, clients through the ``services`` front op.
This package sits between the worker and the client SDK: workers and nodes
import it, it imports the client SDK (proxies and references) and below.
"""

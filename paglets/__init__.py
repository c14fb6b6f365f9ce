"""paglets: mobile Python objects on ZeroMQ.

Import from the topic packages (``paglets.core.agent``, ``paglets.node.host``,
``paglets.client.proxy``...); flat imports from ``paglets`` are not part of the API.
"""

__version__ = "0.1.0"

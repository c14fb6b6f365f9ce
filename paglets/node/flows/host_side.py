"""Host-side handles on one paglet: its resource registry and its mail signal, as the Host offers them.

:class:`HostResources` keeps one :class:`~paglets.node.flows.lifecycle.WorkerResources`
per paglet that host-side code asked for (``Host.resources_for``), so what it
registers there stays registered between calls, and runs those cleanups when
the paglet is disposed, leaves, parks or crashes (it listens to the node's
events; cleanups run on the emitting thread, so they should be quick).

:class:`PagletMail` is ``Host.wait_message`` / ``notify_message`` /
``notify_all_messages``: the same signal the paglet's own ``wait_message``
waits on, in its worker, reached with the ``mail`` call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from paglets.core import event_kinds
from paglets.core.errors import PagletError
from paglets.core.events import ContextEvent
from paglets.node.broker.commands import BrokerCommands
from paglets.node.flows.lifecycle import WorkerResources
from paglets.waiting import wait_for
from paglets.wire import codec
from paglets.wire.back_ops import MAIL_WAIT_MAX

log = logging.getLogger("paglets.host")

LEAVING_KINDS = frozenset(
    {event_kinds.DISPOSE, event_kinds.DISPATCH, event_kinds.DEACTIVATE, event_kinds.CRASH, event_kinds.RETRACT}
)
MAIL_SLACK = 10.0  # seconds the node waits beyond the worker's wait for its answer


class HostResources:
    """The registries host-side code holds for this node's paglets; owns the id -> registry table."""

    def __init__(self, broker: Callable[[], BrokerCommands]):
        self._broker = broker
        self._lock = threading.Lock()
        self._registries: dict[str, WorkerResources] = {}

    def for_paglet(self, agent_id: str) -> WorkerResources:
        with self._lock:
            registry = self._registries.get(agent_id)
            if registry is None:
                registry = self._registries[agent_id] = WorkerResources(self._broker(), agent_id)
            else:
                registry.broker = self._broker()  # a restarted node has a new broker
            return registry

    def on_event(self, event: ContextEvent) -> None:
        """A node event listener: a paglet that goes away takes its host-side resources with it."""
        if event.kind not in LEAVING_KINDS or event.agent_id is None:
            return
        with self._lock:
            registry = self._registries.pop(event.agent_id, None)
        if registry is not None and len(registry):
            try:
                registry.cleanup_host_side(reason=event.kind)
            except PagletError as exc:
                log.warning("host-side resources of %s (%s): %s", event.agent_id, event.kind, exc)


class PagletMail:
    """Wait on, or ring, a paglet's mail signal from the node."""

    def __init__(self, broker: Callable[[], BrokerCommands]):
        self._broker = broker

    def wait(self, agent_id: str, timeout: float | None) -> bool:
        """Wait until a handler of the paglet takes a message or someone notifies; False on timeout."""
        wait = MAIL_WAIT_MAX if timeout is None else min(max(0.0, float(timeout)), MAIL_WAIT_MAX)
        future = self._broker().call_worker(agent_id, {"op": "mail", "wait": wait})
        _header, payload = wait_for(future, wait + MAIL_SLACK, f"the mail signal of paglet {agent_id}")
        return bool(codec.decode(payload[0])) if payload else False

    def notify(self, agent_id: str, *, everyone: bool = False) -> None:
        future = self._broker().call_worker(agent_id, {"op": "mail", "notify": "all" if everyone else "one"})
        wait_for(future, MAIL_SLACK, f"the mail signal of paglet {agent_id}")


__all__ = ["HostResources", "PagletMail"]

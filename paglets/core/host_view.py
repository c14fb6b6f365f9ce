"""HostView: the host facade a running paglet may use (``self.context.host``).

Code written for runtimes where a paglet held its Host asks it for the node's
name and address, proxies, properties and the mesh. A paglet here runs in a
worker process, away from the Host object, so this view answers the same
questions through the paglet's context: each method is a context call, and
the paglet can do nothing through it that it could not do through its context.
"""

from __future__ import annotations

from typing import Any

ACTIVE = 0x1  # the same bit as paglets.core.agent.ACTIVE (that module imports this one)


class HostView:
    """A Host-shaped view of one paglet's node, built on that paglet's context."""

    def __init__(self, context: Any) -> None:
        self._context = context

    @property
    def name(self) -> str:
        return self._context.name

    @property
    def address(self) -> str:
        return self._context.address

    def get_proxy(self, agent_id: str, host_url: str | None = None) -> Any:
        return self._context.get_proxy(agent_id, host_url)

    def get_proxies(self, state: int = ACTIVE) -> list[Any]:
        return self._context.get_proxies(state)

    def get_property(self, key: str, default: Any = None) -> Any:
        return self._context.get_property(key, default)

    def set_property(self, key: str, value: Any) -> None:
        self._context.set_property(key, value)

    def create(self, cls: Any, state: Any = None, init: Any = None) -> Any:
        """Create a paglet on this node; its proxy."""
        return self._context.create_paglet(cls, state, init=init)

    def create_remote(self, target: str, cls: Any, state: Any = None, init: Any = None) -> Any:
        return self._context.create_paglet(cls, state, init=init, host_url=target)

    def list_hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[Any]:
        return self._context.available_hosts(online_only=online_only, include_self=include_self)

    def host_status(self, name_or_url: str) -> Any:
        return self._context.host_status(name_or_url)

    def wait_for_host(self, name_or_url: str, timeout: float | None = 10.0) -> Any:
        return self._context.wait_for_host(name_or_url, timeout)

    def __repr__(self) -> str:
        return f"HostView({self._context.name!r})"


__all__ = ["HostView"]

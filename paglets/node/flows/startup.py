"""Startup paglets: the ``[[paglets]]`` of a node's launch configuration, created when it starts.

Each enabled entry is created through the node's ordinary ``create`` (so its
class is imported only by a worker, and only if the module policy allows
it). A ``singleton`` is created once: when a paglet with its agent id exists
on the node, active or parked, it is left alone, so restarts are idempotent
(a node that parked it on stop wakes it itself). A paglet that cannot be
created is logged; the node keeps serving and the other entries still start.
"""

from __future__ import annotations

import logging
from typing import Any

from paglets.core.errors import InvalidAgentError, PagletError
from paglets.node.launch import LaunchConfig, StartupPaglet

log = logging.getLogger("paglets.launch")


def start_launch_paglets(node: Any, config: LaunchConfig | None) -> list[str]:
    """Create ``config``'s enabled startup paglets on the running ``node`` (the Host); the ids created."""
    if config is None:
        return []
    created: list[str] = []
    for paglet in config.paglets:
        if not paglet.enabled:
            log.info("%s: %s is disabled (enabled = false)", paglet.where, paglet.class_name)
            continue
        if paglet.singleton and _exists(node, paglet):
            log.info("%s: singleton %s exists on node %s; left as it is", paglet.where, paglet.agent_id, node.name)
            continue
        try:
            proxy = node.create(paglet.class_name, dict(paglet.state), agent_id=paglet.agent_id)
        except PagletError as exc:
            log.error("%s: cannot create %s on node %s: %s: %s", paglet.where, paglet.class_name, node.name,
                      type(exc).__name__, exc)  # fmt: skip
            continue
        created.append(proxy.agent_id)
        log.info("%s: created %s (%s) on node %s", paglet.where, proxy.agent_id, paglet.class_name, node.name)
    return created


def _exists(node: Any, paglet: StartupPaglet) -> bool:
    """Whether the node holds a paglet with this id, active or parked (one waking up counts too)."""
    assert paglet.agent_id is not None  # the launch config requires it of a singleton
    try:
        node.agent_info(paglet.agent_id, resources=False)
    except InvalidAgentError:
        return False
    return True


__all__ = ["start_launch_paglets"]

"""The fields of a paglet listing (``info``, ``list``) that code written for the HTTP paglets API reads.

``exitcode`` (the worker's exit status once it ended, else None), ``resources``
(the paglet's ResourceRegistry status: ``{name: still registered}``),
``state_class_name`` and ``queued_count``, beside the fields the node always
gave. Active paglets are asked for their resources all at once, within
:data:`RESOURCES_WAIT` seconds in total: a worker too busy to answer shows
``{}`` rather than holding the listing up.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack

from paglets.core.errors import PagletError
from paglets.node.broker.commands import BrokerCommands
from paglets.wire import codec
from paglets.wire.codec.codes import EXT_DATACLASS

RESOURCES_WAIT = 2.0  # seconds a listing waits, in total, for its active paglets' resources


def add_active_fields(infos: list[dict[str, Any]], broker: BrokerCommands, *, resources: bool = True) -> None:
    """Fill in the fields for active paglets (``infos``: their summaries, changed in place). Without
    ``resources`` the workers are not asked (``resources`` is then ``{}``): for the node's own flows."""
    asked = {}
    for info in infos:
        if resources and info.get("phase") == "ready":
            asked[info["agent_id"]] = broker.call_worker(info["agent_id"], {"op": "resources"})
    deadline = time.monotonic() + RESOURCES_WAIT
    for info in infos:
        info.setdefault("exitcode", None)
        info.setdefault("state_class_name", "")
        info["queued_count"] = int((info.get("mailbox") or {}).get("queued") or 0)
        info["resources"] = _resources(asked.get(info["agent_id"]), deadline)


def add_parked_fields(info: dict[str, Any], state: bytes) -> dict[str, Any]:
    """Fill in the fields for a parked paglet (``state``: its encoded state); returns ``info``."""
    info["exitcode"] = None
    info["resources"] = {}  # released when it was parked
    info["state_class_name"] = state_class_name(state)
    info["queued_count"] = int(info.get("queued_messages") or 0)
    return info


def state_class_name(state: bytes) -> str:
    """The ``module:Qual.Name`` tag of an encoded dataclass state, read without decoding (or importing) it."""
    try:
        outer = msgpack.unpackb(state, ext_hook=msgpack.ExtType, raw=False)
        if isinstance(outer, msgpack.ExtType) and outer.code == EXT_DATACLASS:
            name = msgpack.unpackb(outer.data, ext_hook=msgpack.ExtType, raw=False)[0]
            return name if isinstance(name, str) else ""
    except (ValueError, TypeError, IndexError, msgpack.UnpackException):
        pass
    return ""


def _resources(future: Any, deadline: float) -> dict[str, bool]:
    if future is None:
        return {}
    try:
        _header, payload = future.result(max(0.0, deadline - time.monotonic()))
        status = codec.decode(payload[0]) if payload else {}
    except (PagletError, TimeoutError):
        return {}
    return {str(name): bool(held) for name, held in status.items()} if isinstance(status, dict) else {}


__all__ = ["RESOURCES_WAIT", "add_active_fields", "add_parked_fields", "state_class_name"]

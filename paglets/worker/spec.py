"""WorkerSpec: everything a worker process needs to know to run its paglet.

The node builds one per worker (:meth:`paglets.node.flows.lifecycle.Lifecycle.worker_spec`);
it crosses the pipe to the template process as a msgpack map
(:meth:`WorkerSpec.to_wire`) and the forked child rebuilds and checks it
(:meth:`WorkerSpec.from_wire`) before it becomes a worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from paglets.client.security import CurveIdentity
from paglets.core.errors import ProtocolError

_CURVE_KEYS = ("public", "secret", "server")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One worker's configuration, as its node gives it."""

    agent_id: str
    token: str  # echoed in ``ready``: a fresh one per start, or an arriving paglet's transfer token
    class_name: str  # ``module:Qual.Name`` of the paglet class
    back_endpoint: str  # the node's back ROUTER
    node_name: str
    node_address: str
    work_dir: str  # the paglet's own scratch directory
    storage_root: str  # persistent storage of every class lives below it
    heartbeat: float = 0.5  # seconds between heartbeats
    heartbeat_misses: int = 3  # silent beats before the worker gives its node up and exits
    sys_path: list[str] = field(default_factory=list)  # the node's; empty: keep the inherited one
    cwd: str = ""  # the node's working directory; empty: "/"
    api_key: str | None = None  # for the worker's own calls to nodes
    curve: CurveIdentity | None = None  # likewise, when the node uses Curve
    storage_quota: int | None = None  # bytes, default quota of persistent storage
    log_level: str = "WARNING"
    allow_modules: list[str] = field(default_factory=list)  # module prefixes names from outside may import
    allow_any_module: bool = False  # development only: import whatever a peer names
    ident: str = ""  # routing id of the main socket (agent_id/KEY, a secret of the node); empty: the agent id

    def to_wire(self) -> dict[str, Any]:
        """A msgpack-ready map (the Curve keys as text)."""
        wire = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        wire["sys_path"] = list(self.sys_path)
        wire["allow_modules"] = list(self.allow_modules)
        curve = self.curve
        if curve is not None:
            wire["curve"] = {
                "public": curve.public.decode(),
                "secret": curve.secret.decode(),
                "server": curve.server_key.decode(),
            }
        return wire

    @classmethod
    def from_wire(cls, wire: Any) -> WorkerSpec:
        """Rebuild a spec from :meth:`to_wire`'s map; a missing, unknown or mistyped field is a ProtocolError."""
        if not isinstance(wire, dict):
            raise ProtocolError(f"worker spec must be a map, got {type(wire).__name__}")
        unknown = set(wire) - _FIELD_TYPES.keys()
        if unknown:
            raise ProtocolError(f"worker spec: unknown field {sorted(unknown)[0]!r}")
        values: dict[str, Any] = {}
        for name, (types, required) in _FIELD_TYPES.items():
            value = wire.get(name)
            if value is None:
                if required:
                    raise ProtocolError(f"worker spec: missing field {name!r}")
                continue
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                expected = " or ".join(t.__name__ for t in types)
                raise ProtocolError(f"worker spec: field {name!r} must be {expected}, got {type(value).__name__}")
            values[name] = value
        if "heartbeat" in values:
            values["heartbeat"] = float(values["heartbeat"])
        for name in ("sys_path", "allow_modules"):
            if name in values:
                values[name] = _strings(values[name], name)
        if "curve" in values:
            values["curve"] = _curve(values["curve"])
        return cls(**values)


_FIELD_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "agent_id": ((str,), True),
    "token": ((str,), True),
    "class_name": ((str,), True),
    "back_endpoint": ((str,), True),
    "node_name": ((str,), True),
    "node_address": ((str,), True),
    "work_dir": ((str,), True),
    "storage_root": ((str,), True),
    "heartbeat": ((int, float), False),
    "heartbeat_misses": ((int,), False),
    "sys_path": ((list,), False),
    "cwd": ((str,), False),
    "api_key": ((str,), False),
    "curve": ((dict,), False),
    "storage_quota": ((int,), False),
    "log_level": ((str,), False),
    "allow_modules": ((list,), False),
    "allow_any_module": ((bool,), False),
    "ident": ((str,), False),
}


def _strings(items: list[Any], name: str) -> list[str]:
    if not all(isinstance(item, str) for item in items):
        raise ProtocolError(f"worker spec: field {name!r} must be a list of str")
    return list(items)


def _curve(keys: dict[str, Any]) -> CurveIdentity:
    if not all(isinstance(keys.get(name), str) for name in _CURVE_KEYS):
        raise ProtocolError("worker spec: field 'curve' must map public, secret and server to str")
    return CurveIdentity(keys["public"].encode(), keys["secret"].encode(), keys["server"].encode())


__all__ = ["WorkerSpec"]

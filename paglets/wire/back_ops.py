"""The ops of the back protocol a node and a worker ask each other, and the types of their fields.

The frames and the other ops are in :mod:`paglets.wire.back`, which checks
every header it parses with :func:`check_fields` against the schemas here.

``call`` ops (node -> worker main socket):

=========  ===========================  =====================================
op         fields                       result
=========  ===========================  =====================================
state      -                            codec-encoded state
hook       name, event                  - (runs that lifecycle hook)
resources  -                            codec-encoded ``{name: open}``
cleanup    reason?                      - (cleans up the paglet's resources)
dispose    event                        - (``on_disposing``, then cleanup)
policy     request                      codec-encoded deactivation policy
mail       wait? or notify? (one, all)  codec-encoded bool (wait) or - (the paglet's mail signal)
exit       -                            no reply: the worker exits
=========  ===========================  =====================================

``hcall`` ops (a paglet -> its node; result: one codec-encoded frame):

================  =========================================  ===============
op                fields                                     payload
================  =========================================  ===============
send              agent, local?, oneway?, prio?, mid?        [message]
list              state?                                     -
create            cls, agent?, plain?                        [state, init]
dispose           agent                                      -
dispatch          target (str or ticket map), agent?         -
clone             agent?, target? (str or ticket map)        -
register_file     path, name?, mode?                         -
registered_files  -                                          -
unregister_file   name                                       -
file_path         name                                       -
deactivate        agent?, reason?, policy?, metadata?        -
activate          agent                                      -
get_property      key                                        -
set_property      key                                        [value]
hosts             online?                                    -
host_status       name                                       -
wait_for_host     name, wait?                                -
crashed           reason                                     -
advertise         name, caps?, meta?, scope?, ttl?           -
unadvertise       name                                       -
lookup            name?, cap?, scope?                        -
artifact_put      path, name?                                -
artifact_fetch    sha, source, name?                         -
artifact_path     sha                                        -
artifact_delete   sha                                        -
================  =========================================  ===============

``advertise``, ``unadvertise``: the calling paglet's service records
(:mod:`paglets.node.services`); the result is the record's wire map, or
whether there was one. ``lookup``: the records of this node (``scope``
``local``, the default) or of the mesh (``mesh``), as wire maps.

``crashed``: the paglet's code raised a ``BaseException`` (``SystemExit``,
``KeyboardInterrupt``...) in a handler, a hook or ``run()``. The node marks
the paglet crashed at once, failing every caller waiting on it with
``PagletCrashedError``, and answers; the worker then exits with
:data:`CRASH_EXIT_CODE` (it does so too when no answer comes in time).

Field types are in :data:`READY_FIELDS`, :data:`START_FIELDS`,
:data:`MSG_FIELDS`, :data:`EVENT_FIELDS`, :data:`CALL_OPS` and
:data:`HCALL_OPS`. A field that is ``None`` counts as absent. Fields not
listed are ignored. String, list and map fields have the size limits of
:mod:`paglets.wire.limits` (a message id at most 256 characters, an agent
id 128, a class name 512...).
"""

from __future__ import annotations

from typing import Any

from paglets.core.errors import ProtocolError
from paglets.wire.limits import check_value

MAIL_WAIT_MAX = 3600.0  # seconds one ``mail`` wait may take (the worker caps it; the node waits as long)
MAIL_WAITERS_MAX = 4  # ``mail`` waits a worker holds at once (each holds a thread of its control pool)

# (accepted types, required) per field
Schema = dict[str, tuple[tuple[type, ...], bool]]
_STR = (str,)
_BOOL = (bool,)
_INT = (int,)
_NUM = (int, float)
_MAP = (dict,)
_LIST = (list,)
_TARGET = (str, dict)

READY_FIELDS: Schema = {
    "token": (_STR, True),
    "pid": (_INT, True),
    "workers": (_INT, False),
    "batch": (_INT, False),
    "checkpoint": (_NUM, False),
    "idle": (_NUM, False),
    "state_class": (_STR, False),
    "error": (_MAP, False),
}
START_FIELDS: Schema = {"hook": (_STR, False), "plain": (_BOOL, False), "event": (_MAP, False)}
MSG_FIELDS: Schema = {"oneway": (_BOOL, True), "unqueued": (_BOOL, False)}
EVENT_FIELDS: Schema = {"kind": (_STR, True), "ok": (_BOOL, False)}

CALL_OPS: dict[str, Schema] = {
    "state": {},
    "hook": {"name": (_STR, True), "event": (_MAP, True)},
    "resources": {},
    "cleanup": {"reason": (_STR, False)},
    "dispose": {"event": (_MAP, True)},
    "policy": {"request": (_MAP, True)},
    "mail": {"wait": (_NUM, False), "notify": (_STR, False)},
    "exit": {},
}

HCALL_OPS: dict[str, Schema] = {
    "send": {
        "agent": (_STR, True),
        "local": (_BOOL, False),
        "oneway": (_BOOL, False),
        "prio": (_INT, False),
        "mid": (_STR, False),
    },
    "list": {"state": (_INT, False)},
    "create": {"cls": (_STR, True), "agent": (_STR, False), "plain": (_BOOL, False)},
    "dispose": {"agent": (_STR, True)},
    "dispatch": {"agent": (_STR, False), "target": (_TARGET, True)},
    "clone": {"agent": (_STR, False), "target": (_TARGET, False)},
    "register_file": {"path": (_STR, True), "name": (_STR, False), "mode": (_STR, False)},
    "registered_files": {},
    "unregister_file": {"name": (_STR, True)},
    "file_path": {"name": (_STR, True)},
    "deactivate": {
        "agent": (_STR, False),
        "reason": (_STR, False),
        "policy": (_MAP, False),
        "metadata": (_MAP, False),
    },
    "activate": {"agent": (_STR, True)},
    "get_property": {"key": (_STR, True)},
    "set_property": {"key": (_STR, True)},
    "hosts": {"online": (_BOOL, False)},
    "host_status": {"name": (_STR, True)},
    "wait_for_host": {"name": (_STR, True), "wait": (_NUM, False)},
    "crashed": {"reason": (_STR, True)},
    "advertise": {
        "name": (_STR, True),
        "caps": (_LIST, False),
        "meta": (_MAP, False),
        "scope": (_STR, False),
        "ttl": (_NUM, False),
    },
    "unadvertise": {"name": (_STR, True)},
    "lookup": {"name": (_STR, False), "cap": (_STR, False), "scope": (_STR, False)},
    "lease": {"agent": (_STR, True), "service": (_STR, True), "ttl": (_NUM, True)},
    "unlease": {"lease": (_STR, True)},
    # artifacts (paglets.node.flows.artifacts)
    "artifact_put": {"path": (_STR, True), "name": (_STR, False)},
    "artifact_fetch": {"sha": (_STR, True), "source": (_STR, True), "name": (_STR, False)},
    "artifact_path": {"sha": (_STR, True)},
    "artifact_delete": {"sha": (_STR, True)},
}
HCALL_PAYLOAD: dict[str, tuple[int, int]] = {"send": (1, 1), "create": (2, 2), "set_property": (1, 1)}


def check_fields(what: str, header: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """``header`` if every field of ``schema`` is there (when required) with its type and size; else ProtocolError.

    Sizes: :mod:`paglets.wire.limits` (names, ids and addresses; any string, list or map).
    """
    for name, (types, required) in schema.items():
        value = header.get(name)
        if value is None:
            if required:
                raise ProtocolError(f"{what}: missing field {name!r}")
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(t.__name__ for t in types)
            raise ProtocolError(f"{what}: field {name!r} must be {expected}, got {type(value).__name__}")
        check_value(what, name, value)
    return header


__all__ = [
    "CALL_OPS",
    "EVENT_FIELDS",
    "HCALL_OPS",
    "HCALL_PAYLOAD",
    "MAIL_WAITERS_MAX",
    "MAIL_WAIT_MAX",
    "MSG_FIELDS",
    "READY_FIELDS",
    "START_FIELDS",
    "Schema",
    "check_fields",
]

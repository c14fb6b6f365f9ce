"""The kinds of a node's context events, what each means, and the old names they replace.

A :class:`~paglets.core.events.ContextEvent`'s ``kind`` is one of
:data:`EVENT_KINDS` (parts of the node may add their own; the log records any
kind it is given). Kinds used to have other names (``paglet-created``,
``node-start``...); :data:`KIND_ALIASES` maps each old name to the kinds that
replaced it, so code that still emits or filters by an old name keeps working:

* emitting an old name records the new kind (:func:`canonical_kind`);
* filtering by an old name (``events_since(kind=...)``, ``wait_for(kind=...)``,
  the ``events`` op, ``GET /events``) matches the new kinds
  (:func:`kind_matches`).

Listeners and predicates see the new kind only.
"""

from __future__ import annotations

# Node.
CONTEXT_START = "context-start"
CONTEXT_STOP = "context-stop"
PEER_ONLINE = "peer-online"
PEER_OFFLINE = "peer-offline"
LISTENER_FAILED = "listener-failed"
# A paglet's life.
CREATE = "create"
DISPATCH = "dispatch"
RETRACT = "retract"
ARRIVAL = "arrival"
CLONE = "clone"
DEACTIVATE = "deactivate"
ACTIVATE = "activate"
ACTIVATION_FAILED = "activation-failed"
DISPOSE = "dispose"
CRASH = "crash"
RUN_FINISHED = "run-finished"
IDLE_PARK = "idle-park"
WOKEN = "woken"
CREATE_PARKED = "create-parked"
# Messages and moves that went wrong.
MESSAGE_FAILED = "message-failed"
TRANSFER_FAILED = "transfer-failed"
# Disk.
CHECKPOINT = "checkpoint"
RESTORE = "restore"
RECORD_QUARANTINED = "record-quarantined"
# Services.
SERVICE_ADVERTISED = "service-advertised"
SERVICE_WITHDRAWN = "service-withdrawn"
SERVICE_EXPIRED = "service-expired"
LEASE_ACQUIRED = "lease-acquired"
LEASE_RELEASED = "lease-released"
LEASE_EXPIRED = "lease-expired"
SERVICE_RESTARTING = "service-restarting"
SERVICE_RESTART_ABANDONED = "service-restart-abandoned"
SERVICE_SETUP_FAILED = "service-setup-failed"

# kind -> what it means and the details it carries (docs/operations.md shows this table).
EVENT_KINDS: dict[str, str] = {
    CONTEXT_START: "the node started serving; details: address, http_address",
    CONTEXT_STOP: "the node stops; details: deactivate_active (parks its paglets first)",
    PEER_ONLINE: "a node of the mesh is heard from (again); details: peer, url, code_version",
    PEER_OFFLINE: "a node of the mesh fell silent for mesh_offline_after; details: peer, url",
    LISTENER_FAILED: "an event listener raised; error, details: listener, failed_event_id, failed_kind",
    CREATE: "a paglet was created here; class_name, details: hook",
    DISPATCH: "a paglet left for another node; details: target, duration (s)",
    RETRACT: "a paglet was pulled back by another node and left; details: target, duration (s)",
    ARRIVAL: "a paglet arrived (or a clone landed); details: source, how (dispatch, retract, clone, parked)",
    CLONE: "a paglet was copied; details: clone_id, target, duration (s)",
    DEACTIVATE: "a paglet was parked on disk; details: reason",
    ACTIVATE: "a parked paglet woke; details: reason, mail (queued messages delivered first)",
    ACTIVATION_FAILED: "a parked paglet could not wake; error, details: reason",
    DISPOSE: "a paglet was disposed of",
    CRASH: "a paglet's worker died or its code raised a BaseException; error, details: pid",
    RUN_FINISHED: "a paglet's run() returned or raised; details: ok",
    IDLE_PARK: "an idle paglet was parked, to wake on its next message; details: idle_for (s)",
    WOKEN: "a paglet parked as idle woke (after its activate event); details: reason, mail",
    CREATE_PARKED: "a paglet was created parked: it starts on its first message; class_name",
    MESSAGE_FAILED: "a handler raised, or a message met a crashed paglet; message_id, error, details: count",
    TRANSFER_FAILED: "a move did not happen (the paglet stays where it was); error, details: target or source, how",
    CHECKPOINT: "a changed state was written to checkpoints/",
    RESTORE: "a checkpoint came back after a kill; details: source",
    RECORD_QUARANTINED: "an unreadable record was moved to quarantine/; details: path, reason",
    SERVICE_ADVERTISED: "a paglet advertised a service; service_name, details: scope",
    SERVICE_WITHDRAWN: "a service was withdrawn; service_name",
    SERVICE_EXPIRED: "a service's registration ran out; service_name",
    LEASE_ACQUIRED: "a lease on a resident service was taken; service_name, details: lease_id, expires_at, ttl",
    LEASE_RELEASED: "a lease was given back; service_name, details: lease_id, expires_at",
    LEASE_EXPIRED: "a lease ran out without being given back; service_name, details: lease_id, expires_at",
    SERVICE_RESTARTING: "an eager resident service crashed and starts again; details: attempt, delay (s), reason",
    SERVICE_RESTART_ABANDONED: "an eager resident service kept crashing: no more restarts; details: attempts, reason",
    SERVICE_SETUP_FAILED: "a resident service could not be set up at node start; details: reason",
}

# old name -> the kinds that replaced it (the first is what emitting the old name records).
KIND_ALIASES: dict[str, tuple[str, ...]] = {
    "node-start": (CONTEXT_START,),
    "node-stop": (CONTEXT_STOP,),
    "context-shutdown": (CONTEXT_STOP,),
    "paglet-created": (CREATE,),
    "paglet-dispatched": (DISPATCH, RETRACT),
    "paglet-retracted": (RETRACT,),
    "paglet-arrived": (ARRIVAL,),
    "paglet-cloned": (CLONE,),
    "paglet-deactivated": (DEACTIVATE,),
    "paglet-activated": (ACTIVATE,),
    "paglet-activation-failed": (ACTIVATION_FAILED,),
    "paglet-disposed": (DISPOSE,),
    "paglet-crashed": (CRASH,),
    "paglet-run-finished": (RUN_FINISHED,),
    "paglet-checkpointed": (CHECKPOINT,),
    "paglet-restored": (RESTORE,),
}


def canonical_kind(kind: str) -> str:
    """The kind to record for ``kind``: itself, or what an old name became."""
    replaced = KIND_ALIASES.get(kind)
    return replaced[0] if replaced else kind


def kinds_for(name: str) -> frozenset[str]:
    """The recorded kinds a filter by ``name`` (a kind or an old name) matches."""
    return frozenset(KIND_ALIASES.get(name, (name,)))


def kind_matches(kind: str, name: str) -> bool:
    """Whether an event of ``kind`` matches a filter by ``name`` (a kind or an old name)."""
    return kind == name or kind in KIND_ALIASES.get(name, ())


__all__ = [
    "ACTIVATE",
    "ACTIVATION_FAILED",
    "ARRIVAL",
    "CHECKPOINT",
    "CLONE",
    "CONTEXT_START",
    "CONTEXT_STOP",
    "CRASH",
    "CREATE",
    "CREATE_PARKED",
    "DEACTIVATE",
    "DISPATCH",
    "DISPOSE",
    "EVENT_KINDS",
    "IDLE_PARK",
    "KIND_ALIASES",
    "LEASE_ACQUIRED",
    "LEASE_EXPIRED",
    "LEASE_RELEASED",
    "LISTENER_FAILED",
    "MESSAGE_FAILED",
    "PEER_OFFLINE",
    "PEER_ONLINE",
    "RECORD_QUARANTINED",
    "RESTORE",
    "RETRACT",
    "RUN_FINISHED",
    "SERVICE_ADVERTISED",
    "SERVICE_EXPIRED",
    "SERVICE_RESTARTING",
    "SERVICE_RESTART_ABANDONED",
    "SERVICE_SETUP_FAILED",
    "SERVICE_WITHDRAWN",
    "TRANSFER_FAILED",
    "WOKEN",
    "canonical_kind",
    "kind_matches",
    "kinds_for",
]

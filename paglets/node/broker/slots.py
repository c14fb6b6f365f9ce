"""What the broker loop knows about each worker, and who waits for answers.

Everything here is owned by the broker thread and touched by nothing else.

* :class:`WorkerSlot` — one paglet's worker process as the broker sees it:
  its phase, liveness deadline, idle handler sockets and mailbox.
* :class:`Delivery` — a message waiting in a mailbox.
* :class:`SeenMessages` — recent message ids, to drop duplicates.
* Origins — who gets the answer to a request: a front peer
  (:class:`FrontOrigin`), a worker's host call (:class:`BackOrigin`) or a
  thread in the node process (:class:`FutureOrigin`).
"""

from __future__ import annotations

import collections
import enum
import hmac
import os
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from paglets.node.broker.mailbox import MailboxQueue, MailboxStatus
from paglets.wire import back, protocol
from paglets.wire.back import EMPTY_MAP
from paglets.wire.errors import error_from_wire

ACCEPTED = protocol.pack(protocol.ACCEPTED)
_IDENT_SECRET = os.urandom(16)  # this node process's: worker routing ids cannot be guessed from outside it


def worker_ident(agent_id: str, token: str) -> str:
    """The routing id of the main socket of the worker started with ``token``: ``agent_id/KEY``.

    ``KEY`` is derived from the token with a secret of this process, so a
    process that knows an agent id (or an arriving paglet's transfer token)
    cannot pose as its worker on the back socket: the table only takes frames
    from ``agent_id/KEY`` and ``agent_id/KEY/N``.
    """
    key = hmac.new(_IDENT_SECRET, token.encode(), "sha256").hexdigest()[:32]
    return f"{agent_id}/{key}"


class Sender(Protocol):
    def send_front(self, frames: list[bytes]) -> None: ...

    def send_relay(self, frames: list[bytes]) -> None: ...

    def send_back(self, frames: list[bytes]) -> None: ...

    def accept_oneway(self, peer: bytes, cid: bytes, relay: bool) -> None:
        """Acknowledge a oneway send; the acks of one loop pass go out together."""


class Origin(Protocol):
    """Who is waiting for the answer to one request."""

    def ok(self, sender: Sender, payload: list[bytes], header: bytes = EMPTY_MAP) -> None: ...

    def fail(self, sender: Sender, error: dict[str, Any]) -> None: ...

    def accepted(self, sender: Sender) -> None:
        """A oneway message is in the mailbox: ``ok`` with ``{"accepted": true}``."""


@dataclass(slots=True)
class FrontOrigin:
    """A client or peer node: on the front socket, or (``relay``) behind the relay we dial out to."""

    peer: bytes
    cid: bytes
    relay: bool = False

    def ok(self, sender: Sender, payload: list[bytes], header: bytes = EMPTY_MAP) -> None:
        self._send(sender, [self.peer, protocol.MAGIC, protocol.OK, self.cid, header, *payload])

    def fail(self, sender: Sender, error: dict[str, Any]) -> None:
        self._send(sender, [self.peer, *protocol.err_frames(self.cid, error)])

    def accepted(self, sender: Sender) -> None:
        sender.accept_oneway(self.peer, self.cid, self.relay)

    def _send(self, sender: Sender, frames: list[bytes]) -> None:
        if self.relay:
            sender.send_relay(frames)
        else:
            sender.send_front(frames)


@dataclass(slots=True)
class BackOrigin:
    """A paglet's host call, answered on the worker socket that made it."""

    ident: bytes
    cid: bytes

    def ok(self, sender: Sender, payload: list[bytes], header: bytes = EMPTY_MAP) -> None:
        sender.send_back(back.hrep_ok(self.ident, self.cid, payload))  # an hrep has no header

    def fail(self, sender: Sender, error: dict[str, Any]) -> None:
        sender.send_back(back.hrep_err(self.ident, self.cid, error))

    def accepted(self, sender: Sender) -> None:
        self.ok(sender, [], ACCEPTED)


@dataclass(slots=True)
class FutureOrigin:
    """A thread in the node process waiting on a Future for ``(header, payload)``."""

    future: Future[Any]

    def ok(self, sender: Sender, payload: list[bytes], header: bytes = EMPTY_MAP) -> None:
        if not self.future.done():
            self.future.set_result((header, payload))

    def fail(self, sender: Sender, error: dict[str, Any]) -> None:
        if not self.future.done():
            self.future.set_exception(error_from_wire(error))

    def accepted(self, sender: Sender) -> None:
        self.ok(sender, [], ACCEPTED)


class Phase(enum.Enum):
    STARTING = "starting"  # forked or about to be; waiting for ready + start reply
    PREPARED = "prepared"  # an arriving paglet's worker, loaded and waiting for its state
    READY = "ready"
    MOVING = "moving"  # leaving: new messages wait, in-flight ones finish
    DEPARTED = "departed"  # gone elsewhere; the worker finishes what it holds and exits
    CRASHED = "crashed"
    STOPPING = "stopping"  # asked to exit; replies still accepted


@dataclass(slots=True, eq=False)
class Delivery:
    """A message waiting in a mailbox (body stays encoded: the broker never decodes it)."""

    body: bytes
    oneway: bool
    origin: Origin | None
    priority: int = 5
    mid: str | None = None
    forwarded: bool = False  # sent on by another node: may repeat one already delivered
    activate: bool = True  # may wake the paglet if it is parked
    no_delay: bool = False  # never queue it for a parked paglet
    ack_deferred: bool = False
    unqueued: bool = False
    received_at: float = 0.0  # monotonic, set for sync messages when they enter a mailbox


@dataclass(slots=True, eq=False)
class Pending:
    """A request sent to a worker and not answered yet."""

    slot: WorkerSlot
    origin: Origin | None
    is_message: bool = False  # counts in the mailbox status
    handler: bytes | None = None  # the handler socket holding it; idle again on reply
    is_start: bool = False  # the start hook: its reply makes the slot READY
    mid: str | None = None
    batch: list[Delivery] | None = None  # several oneway messages sent as one request
    sent_at: float = 0.0  # monotonic, for messages: how long the handler takes
    received_at: float = 0.0  # monotonic, for sync messages: when they entered the mailbox

    @property
    def count(self) -> int:
        """How many messages it stands for."""
        return 1 if self.batch is None else len(self.batch)


@dataclass(slots=True, eq=False)
class WorkerSlot:
    """One paglet's worker process, as the broker loop sees it."""

    agent_id: str
    ident: bytes
    token: str  # the worker's token (WorkerSpec.token), echoed in its ready; an arrival's transfer token
    class_name: str
    start_header: bytes | None  # None: prepared for an arrival, start comes later
    start_payload: list[bytes]
    start_origin: Origin | None
    start_deadline: float
    source_address: str | None = None  # where an arriving paglet comes from
    phase: Phase = Phase.STARTING
    pid: int | None = None
    connected: bool = False
    expires_at: float = 0.0
    queue: MailboxQueue[Delivery] = field(default_factory=MailboxQueue)
    pending_cids: set[bytes] = field(default_factory=set)
    idle_handlers: collections.deque[bytes] = field(default_factory=collections.deque)
    in_flight: int = 0
    batch_max: int = 32  # the class's MAILBOX_BATCH: oneway messages one handler may hold
    handling_time: float = 0.0  # seconds per message of the last batch (or a faster single message)
    delivered: int = 0
    failed: int = 0
    crash_reason: str = ""
    freeze_origin: Origin | None = None  # told once in-flight messages (but the mover's) are done
    freeze_except: bytes | None = None  # the handler that asked to move: its message stays in flight
    moved_to: str | None = None
    held: bool = False  # waking from disk: its parked mail goes first, so nothing is handed out yet
    checkpoint_interval: float | None = None  # the class's own CHECKPOINT_INTERVAL, if it has one
    idle_timeout: float | None = None  # the class's own IDLE_TIMEOUT, if it has one
    last_active: float = 0.0  # monotonic: when it started, or a message last went to it or came back
    run_done: bool = False  # its run() has returned (an idle paglet may then be parked)
    seen: SeenMessages = field(default_factory=lambda: SeenMessages())
    started_at: float = field(default_factory=time.time)  # when this node reserved the slot (UNIX time)
    state_class_name: str = ""  # the class's State, as its worker reported it
    exitcode: int | None = None  # the worker process's exit status, once it ended (negative: a signal)

    def status(self) -> MailboxStatus:
        return MailboxStatus(
            queued_count=len(self.queue),
            in_flight_count=self.in_flight,
            delivered_count=self.delivered,
            failed_count=self.failed,
        )

    def summary(self, oldest_handler_age: float | None = None) -> dict[str, Any]:
        """What ``info`` and ``list`` show; ``oldest_handler_age``: seconds the longest-running message has run."""
        return {
            "agent_id": self.agent_id,
            "class_name": self.class_name,
            "phase": self.phase.value,
            "pid": self.pid,
            "crashed": self.phase is Phase.CRASHED,
            "error": self.crash_reason,
            "mailbox": self.status().to_wire(),
            "checkpoint_interval": self.checkpoint_interval,
            "oldest_handler_age": oldest_handler_age,
            "started_at": self.started_at,
            "source": self.source_address,  # the node it arrived from; None when it was created or woke here
            "state_class_name": self.state_class_name,
            "exitcode": self.exitcode,
        }


class SeenMessages:
    """Recent message ids of one paglet, and small replies to them, for dropping duplicates.

    The ids travel with the paglet when it moves; the replies stay behind.
    """

    LIMIT = 2048
    REPLY_LIMIT = 4096  # bytes; bigger replies are not kept

    __slots__ = ("_entries",)

    def __init__(self, ids: list[str] | None = None):
        self._entries: collections.OrderedDict[str, Any] = collections.OrderedDict()
        for mid in (ids or [])[-self.LIMIT :]:
            self._entries[mid] = None

    def lookup(self, mid: str) -> tuple[bool, Any]:
        """(seen before, the recorded reply or None)."""
        if mid in self._entries:
            return True, self._entries[mid]
        return False, None

    def add(self, mid: str) -> None:
        self._entries[mid] = None
        if len(self._entries) > self.LIMIT:
            self._entries.popitem(last=False)

    def record_reply(self, mid: str, ok: bool, payload: list[bytes]) -> None:
        if mid in self._entries and sum(len(p) for p in payload) <= self.REPLY_LIMIT:
            self._entries[mid] = (ok, payload)

    def ids(self) -> list[str]:
        return list(self._entries)


__all__ = [
    "EMPTY_MAP",
    "BackOrigin",
    "Delivery",
    "FrontOrigin",
    "FutureOrigin",
    "Origin",
    "Pending",
    "Phase",
    "SeenMessages",
    "WorkerSlot",
    "worker_ident",
]

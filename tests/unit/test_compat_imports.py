"""Every public name that API.md and SERVICES.md give a module path for imports from that path (issue 15).

Paglets written for the HTTP paglets API import these; a missing one fails
such a paglet before it runs.
"""

from __future__ import annotations

import importlib
import threading

import pytest

PUBLIC_NAMES = {
    "paglets.core.agent": "ACTIVE INACTIVE PagletState Paglet PagletContext state_locked NOT_HANDLED",
    "paglets.core.messages": (
        "Message SYNCHRONOUS FUTURE ONEWAY MIN_PRIORITY NORMAL_PRIORITY MAX_PRIORITY UNQUEUED_PRIORITY "
        "REENTRANT_PRIORITY SYSTEM_PRIORITY REQUEST_PRIORITY FutureReply ReplySet DEACTIVATE"
    ),
    "paglets.core.events": "PagletEvent CreationEvent MobilityEvent CloneEvent PersistencyEvent ContextEvent",
    "paglets.core.errors": (
        "PagletError SerializationError HostError AuthenticationError ForbiddenError ServiceContractError "
        "ServiceNotFoundError RemoteHostError InvalidAgentError PagletInactiveError PagletCrashedError "
        "NotHandledError LifecycleError TransferError"
    ),
    "paglets.core.itinerary": (
        "ItineraryPlan ItineraryAgentMixin TaskItineraryPlan ItineraryTask "
        "EXECUTE_ON_ARRIVAL EXECUTE_ON_DISPATCH EXECUTE_ON_DEFAULT"
    ),
    "paglets.core.runtime_values": "ServiceScope ResidentLifecycle ArrivalMode EnvelopeKind",
    "paglets.runtime.host": "Host",
    "paglets.runtime.envelope": "PagletEnvelope",
    "paglets.runtime.mailbox": "MessageMailbox",
    "paglets.runtime.resources": "ResourceRegistry ResourceCleanupError",
    "paglets.remote.proxy": "PagletProxy",
    "paglets.remote.client": "HostClient",
    "paglets.remote.transfer": "TransferTicket",
    "paglets.remote.mesh": "HostRef MeshRegistry",
    "paglets.remote.references": "PagletProxyRef",
    "paglets.persistence.persistency": "DeactivationPolicy DeactivationRequest QueuedMessage InactiveRecord",
    "paglets.persistence.storage": "ManagedStorage",
    "paglets.services.contracts": "EmptyPayload ServiceOperation ServiceContract ServiceHandle ServiceRecord",
    "paglets.services.resident": "ResidentServiceSpec ServiceLease",
}


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_every_documented_name_imports_from_its_documented_path(module):
    imported = importlib.import_module(module)
    missing = [name for name in PUBLIC_NAMES[module].split() if not hasattr(imported, name)]
    assert missing == [], f"{module} lacks {', '.join(missing)}"


# -- paglets.runtime.mailbox.MessageMailbox: the semantics API.md gives it --------------------------
def test_a_mailbox_hands_out_by_priority_then_in_arrival_order_and_counts():
    from concurrent.futures import wait

    from paglets.core.messages import MAX_PRIORITY, MIN_PRIORITY, Message
    from paglets.runtime.mailbox import MessageMailbox

    gate = threading.Event()
    order: list[str] = []

    def handler(message: Message, oneway: bool) -> str:
        if message.kind == "hold":
            gate.wait(10)
        elif message.kind == "boom":
            raise ValueError("boom")
        order.append(message.kind)
        return message.kind.upper()

    mailbox = MessageMailbox("m1", handler, max_workers=1)
    held = mailbox.submit(Message("hold"))
    later = [
        mailbox.submit(Message("low-1", priority=MIN_PRIORITY)),
        mailbox.submit(Message("normal-1")),
        mailbox.submit(Message("high", priority=MAX_PRIORITY)),
        mailbox.submit(Message("normal-2")),
        mailbox.submit(Message("boom")),
    ]
    assert mailbox.status().queued_count == 5 and mailbox.status().in_flight_count == 1
    gate.set()
    wait([held, *later], timeout=10)
    assert order == ["hold", "high", "normal-1", "normal-2", "low-1"]
    assert later[2].result() == "HIGH" and isinstance(later[4].exception(), ValueError)
    assert mailbox.status().to_wire() == {
        "queued": 0, "in_flight": 0, "delivered": 5, "failed": 1,
        "queued_count": 0, "in_flight_count": 0, "delivered_count": 5, "failed_count": 1,
    }  # fmt: skip


def test_closing_a_mailbox_fails_what_is_still_queued():
    from paglets.core.errors import LifecycleError
    from paglets.core.messages import Message
    from paglets.runtime.mailbox import MessageMailbox

    gate = threading.Event()
    mailbox = MessageMailbox("m2", lambda message, oneway: gate.wait(10), max_workers=1)
    running = mailbox.submit(Message("first"))
    queued = mailbox.submit(Message("second"))
    mailbox.close()
    with pytest.raises(LifecycleError, match="closed"):
        queued.result(5)
    with pytest.raises(LifecycleError, match="closed"):
        mailbox.submit(Message("third")).result(5)
    gate.set()
    assert running.result(5) is True

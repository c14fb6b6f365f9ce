"""Typed service contracts: named, versioned sets of operations with dataclass requests and replies.

A provider advertises a :class:`ServiceContract` (``advertise_contract``)
and answers its operations in ``handle_message`` with :meth:`ServiceContract.route`;
a client finds providers (``lookup_contract``, ``require_contract``) and calls
them through a :class:`ServiceHandle`::

    QUOTE = ServiceOperation("quote", QuoteRequest, Quote)
    QUOTES = ServiceContract("quotes", operations=(QUOTE,), version="1")

    class QuoteService(Paglet):
        def on_creation(self, event): self.advertise_contract(QUOTES)
        def handle_message(self, message):
            return QUOTES.route(message, {QUOTE: self.quote})

    handle = paglet.require_contract(QUOTES)
    quote = handle.call(QUOTE, QuoteRequest("ACME"))  # a Quote

Requests and replies travel as plain data (:mod:`paglets.services.plain`):
a message's ``args`` are the request's fields, the reply is a map of the
reply's fields; both are checked against their dataclass on both sides. A
handler that returns the wrong type fails on the provider's side with a
:class:`~paglets.core.errors.ServiceContractError`, which reaches the caller
as that error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from paglets.core.agent import NOT_HANDLED
from paglets.core.errors import ServiceContractError, ServiceNotFoundError
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.services.plain import check_dataclass, from_plain, to_plain
from paglets.services.records import ServiceRecord

CONTRACT_KEY = "paglets.contract"  # the metadata key a contract's advertisement reserves for itself


@dataclass(frozen=True)
class EmptyPayload:
    """The request or reply of an operation that carries nothing."""


class ServiceOperation:
    """One typed operation: its name (the message kind), request type and reply type."""

    __slots__ = ("_reply_what", "_request_what", "name", "reply_type", "request_type")

    def __init__(self, name: str, request_type: type = EmptyPayload, reply_type: type = EmptyPayload):
        if not isinstance(name, str) or not name:
            raise ServiceContractError(f"an operation needs a non-empty name, got {name!r:.80}")
        self.name = name
        self.request_type = request_type
        self.reply_type = reply_type
        self._request_what = f"request of operation {name!r}"
        self._reply_what = f"reply of operation {name!r}"
        check_dataclass(request_type, self._request_what)
        check_dataclass(reply_type, self._reply_what)

    # -- requests ----------------------------------------------------------------------------
    def encode_request(self, request: Any = None) -> dict[str, Any]:
        """The request's fields as plain data (None: the request type built without arguments)."""
        if request is None:
            request = self._default(self.request_type, self._request_what)
        elif type(request) is not self.request_type and not isinstance(request, self.request_type):
            raise ServiceContractError(
                f"{self._request_what} must be a {self.request_type.__qualname__}, got {type(request).__qualname__}"
            )
        return to_plain(self.request_type, request, self._request_what)

    def to_message(self, request: Any = None) -> Message:
        """A message for this operation: kind = its name, args = the request's fields."""
        return Message(self.name, self.encode_request(request))

    def decode_request(self, message_or_args: Message | Mapping[str, Any] | None) -> Any:
        """The typed request from a message (its ``args``) or an args map; ServiceContractError if it does not fit."""
        args = message_or_args.args if isinstance(message_or_args, Message) else message_or_args
        if args is None:
            args = {}
        return from_plain(self.request_type, args, self._request_what)

    # -- replies -----------------------------------------------------------------------------
    def encode_reply(self, reply: Any) -> dict[str, Any]:
        """The reply's fields as plain data; ServiceContractError unless it is a ``reply_type``."""
        if reply is None and self.reply_type is EmptyPayload:
            return {}
        if not isinstance(reply, self.reply_type):
            raise ServiceContractError(
                f"{self._reply_what} must be a {self.reply_type.__qualname__}, "
                f"the handler returned {type(reply).__qualname__}"
            )
        return to_plain(self.reply_type, reply, self._reply_what)

    def decode_reply(self, payload: Any) -> Any:
        """The typed reply (``None`` or ``{}`` is ``EmptyPayload()`` where that is the type)."""
        if payload is None and self.reply_type is EmptyPayload:
            return EmptyPayload()
        return from_plain(self.reply_type, payload, self._reply_what)

    @staticmethod
    def _default(cls: type, what: str) -> Any:
        try:
            return cls()
        except TypeError:
            raise ServiceContractError(
                f"{what}: a {cls.__qualname__} is required (it has fields without defaults)"
            ) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServiceOperation) and (self.name, self.request_type, self.reply_type) == (
            other.name, other.request_type, other.reply_type,
        )  # fmt: skip

    def __hash__(self) -> int:
        return hash((self.name, self.request_type, self.reply_type))

    def __repr__(self) -> str:
        return f"ServiceOperation({self.name!r}, {self.request_type.__qualname__}, {self.reply_type.__qualname__})"


class ServiceContract:
    """A named, versioned set of operations."""

    def __init__(
        self,
        name: str,
        operations: Iterable[ServiceOperation] = (),
        version: str = "1",
        capabilities: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ):
        if not isinstance(name, str) or not name.strip():
            raise ServiceContractError(f"a contract needs a non-empty name, got {name!r:.80}")
        if not isinstance(version, str) or not version:
            raise ServiceContractError(f"contract {name!r}: version must be a non-empty string, got {version!r:.40}")
        ops = tuple(operations)
        if not ops:
            raise ServiceContractError(f"contract {name!r} has no operations")
        by_name: dict[str, ServiceOperation] = {}
        for op in ops:
            if not isinstance(op, ServiceOperation):
                raise ServiceContractError(f"contract {name!r}: {op!r:.80} is not a ServiceOperation")
            if op.name in by_name:
                raise ServiceContractError(f"contract {name!r} has two operations named {op.name!r}")
            by_name[op.name] = op
        own = dict(metadata or {})
        if CONTRACT_KEY in own:
            raise ServiceContractError(f"contract {name!r}: metadata key {CONTRACT_KEY!r} is reserved for the contract")
        self.name = name
        self.version = version
        self.operations = ops
        self._by_name = by_name
        self._capabilities = tuple(capabilities) if capabilities is not None else tuple(by_name)
        self._metadata = own

    def operation_for(self, name: str) -> ServiceOperation | None:
        return self._by_name.get(name)

    def require_operation(self, op: ServiceOperation | str) -> ServiceOperation:
        """The contract's operation named ``op`` (or ``op`` itself, if it is one of them); else ServiceContractError."""
        found = self._by_name.get(op.name if isinstance(op, ServiceOperation) else op)
        if found is None or (isinstance(op, ServiceOperation) and op != found):
            raise ServiceContractError(
                f"contract {self.name!r} v{self.version} has no operation {getattr(op, 'name', op)!r:.80}"
                f" (it has {', '.join(self._by_name)})"
            )
        return found

    def capabilities(self) -> tuple[str, ...]:
        return self._capabilities

    def metadata(self) -> dict[str, Any]:
        """What an advertisement of this contract carries: its own metadata plus the reserved contract key."""
        described = {"name": self.name, "version": self.version, "operations": list(self._by_name)}
        return {**self._metadata, CONTRACT_KEY: described}

    def advertise_metadata(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`metadata` plus ``extra``, which may not overwrite the reserved key."""
        extra = dict(extra or {})
        if CONTRACT_KEY in extra:
            raise ServiceContractError(
                f"contract {self.name!r}: metadata key {CONTRACT_KEY!r} is reserved for the contract itself"
            )
        return {**self.metadata(), **extra}

    def matches_record(self, record: ServiceRecord) -> bool:
        """Whether ``record`` advertises this contract: the same name and exactly this version."""
        described = record.metadata.get(CONTRACT_KEY)
        return record.name == self.name and isinstance(described, dict) and described.get("version") == self.version

    def offers(self, record: ServiceRecord, operation: ServiceOperation | str | None) -> bool:
        """``matches_record``, and (if given) the record's provider offers ``operation``."""
        if not self.matches_record(record):
            return False
        if operation is None:
            return True
        op_name = self.require_operation(operation).name
        return op_name in (record.metadata[CONTRACT_KEY].get("operations") or ())

    def route(
        self,
        message: Message,
        handlers: Mapping[ServiceOperation | str, Callable[[Any], Any]],
        default: Any = NOT_HANDLED,
    ) -> Any:
        """For ``handle_message``: decode the request, run its handler, check and encode the reply.

        ``handlers`` maps operations (or their names) to ``handler(request) ->
        reply``. A message of no operation of this contract, or of one without
        a handler, returns ``default`` (by default NOT_HANDLED).
        """
        op = self._by_name.get(message.kind)
        if op is None:
            return default
        handler = handlers.get(op)
        if handler is None:
            handler = handlers.get(op.name)
            if handler is None:
                return default
        return op.encode_reply(handler(op.decode_request(message)))

    def __repr__(self) -> str:
        return f"ServiceContract({self.name!r}, version={self.version!r}, operations={list(self._by_name)})"


class ServiceHandle:
    """A resolved client of one provider of one contract.

    ``proxy`` is the provider's PagletProxy (anything with ``send`` and
    ``send_oneway``); ``record`` the record it was found by.
    """

    def __init__(self, contract: ServiceContract, record: ServiceRecord, proxy: Any):
        self.contract = contract
        self.record = record
        self.proxy = proxy

    def call(self, op: ServiceOperation | str, request: Any = None, *, timeout: float | None = None) -> Any:
        """Run ``op`` with ``request`` on the provider; its typed reply (or the provider's error)."""
        operation = self.contract.require_operation(op)
        reply = self.proxy.send(operation.to_message(request), timeout=timeout)
        return operation.decode_reply(reply)

    def send_oneway(self, op: ServiceOperation | str, request: Any = None) -> None:
        """Run ``op`` without waiting for it (its reply is dropped)."""
        operation = self.contract.require_operation(op)
        self.proxy.send_oneway(operation.to_message(request))

    @property
    def ref(self) -> Any:
        return self.record.ref

    def __repr__(self) -> str:
        where = f"{self.record.host_name}/{self.record.agent_id}"
        return f"ServiceHandle({self.contract.name!r} v{self.contract.version} at {where})"


# -- what contexts and hosts share: from records to handles ----------------------------------------
def handles_for(
    contract: ServiceContract,
    records: Iterable[ServiceRecord],
    resolve: Callable[[ServiceRecord], Any],
    operation: ServiceOperation | str | None = None,
) -> list[ServiceHandle]:
    """A handle for each record that advertises ``contract`` (and ``operation``, if given)."""
    if operation is not None:
        contract.require_operation(operation)
    return [
        ServiceHandle(contract, record, resolve(record)) for record in records if contract.offers(record, operation)
    ]


def not_found(contract: ServiceContract, operation: Any, scope: ServiceScope) -> ServiceNotFoundError:
    what = f" with operation {getattr(operation, 'name', operation)!r}" if operation is not None else ""
    where = "in the mesh" if ServiceScope(scope) is ServiceScope.MESH else "on this node (scope=LOCAL)"
    return ServiceNotFoundError(f"no provider of contract {contract.name!r} v{contract.version}{what} {where}")


__all__ = [
    "CONTRACT_KEY",
    "EmptyPayload",
    "ServiceContract",
    "ServiceContractError",
    "ServiceHandle",
    "ServiceNotFoundError",
    "ServiceOperation",
    "ServiceRecord",
    "handles_for",
    "not_found",
]

"""TransferTicket: where a paglet should go, and under which conditions."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from paglets.core.errors import SerializationError
from paglets.core.runtime_values import ArrivalMode

DEFAULT_TRANSFER_TIMEOUT = 10.0  # seconds a move may take unless its ticket says otherwise


@dataclass(frozen=True)
class TransferTicket:
    """A movement target with its terms.

    ``destination`` is a node address or a node name the mesh knows. The
    move fails (and the paglet stays where it was) if it does not finish
    within ``timeout`` seconds, after ``retries`` further attempts spaced
    ``retry_interval`` apart for transport failures; if the target lacks one
    of ``required_capabilities``; or if its code version differs from
    ``expected_code_version``. ``arrival_mode`` INACTIVE parks the paglet on
    arrival instead of running it.
    """

    destination: str
    timeout: float = DEFAULT_TRANSFER_TIMEOUT
    retries: int = 0
    retry_interval: float = 0.25
    required_capabilities: tuple[str, ...] = ()
    expected_code_version: str | None = None
    arrival_mode: ArrivalMode = ArrivalMode.ACTIVATE
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.destination, str) or not self.destination.strip():
            raise ValueError("a ticket needs a destination (node address or name)")
        if self.timeout <= 0:
            raise ValueError("ticket timeout must be positive")
        if self.retries < 0 or self.retry_interval < 0:
            raise ValueError("ticket retries and retry_interval must not be negative")
        object.__setattr__(self, "required_capabilities", tuple(self.required_capabilities))
        object.__setattr__(self, "arrival_mode", ArrivalMode(self.arrival_mode))

    @classmethod
    def of(cls, target: TransferTicket | str | dict[str, Any]) -> TransferTicket:
        """A ticket from a ticket, a destination string, or a ticket's wire form."""
        if isinstance(target, TransferTicket):
            return target
        if isinstance(target, str):
            return cls(target)
        if isinstance(target, dict):
            return cls.from_wire(target)
        raise ValueError(f"not a movement target: {target!r:.100}")

    @classmethod
    def from_target(cls, target: TransferTicket | str | dict[str, Any], **terms: Any) -> TransferTicket:
        """A ticket for ``target`` (a ticket, an address or node name, or a ticket's wire form), with
        ``terms`` (any field: ``timeout=``, ``retries=``...) replacing the target's own."""
        ticket = cls.of(target)
        return dataclasses.replace(ticket, **terms) if terms else ticket

    def to_wire(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "timeout": self.timeout,
            "retries": self.retries,
            "retry_interval": self.retry_interval,
            "required_capabilities": list(self.required_capabilities),
            "expected_code_version": self.expected_code_version,
            "arrival_mode": self.arrival_mode.value,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> TransferTicket:
        if not isinstance(payload, dict) or not isinstance(payload.get("destination"), str):
            raise SerializationError(f"not a transfer ticket: {payload!r:.200}")
        try:
            return cls(
                destination=payload["destination"],
                timeout=float(payload.get("timeout", DEFAULT_TRANSFER_TIMEOUT)),
                retries=int(payload.get("retries", 0)),
                retry_interval=float(payload.get("retry_interval", 0.25)),
                required_capabilities=tuple(str(c) for c in payload.get("required_capabilities") or ()),
                expected_code_version=payload.get("expected_code_version"),
                arrival_mode=ArrivalMode(payload.get("arrival_mode", ArrivalMode.ACTIVATE.value)),
                metadata=dict(payload.get("metadata") or {}),
            )
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"bad transfer ticket: {exc}") from None


__all__ = ["DEFAULT_TRANSFER_TIMEOUT", "TransferTicket"]

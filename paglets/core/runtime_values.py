"""Small string enums shared by the programming model, the runtime and the wire."""

from __future__ import annotations

from enum import StrEnum


class ServiceScope(StrEnum):
    LOCAL = "local"
    MESH = "mesh"


class ResidentLifecycle(StrEnum):
    LAZY = "lazy"
    EAGER = "eager"


class ArrivalMode(StrEnum):
    """What a paglet does when it lands: run (ACTIVATE) or stay parked (INACTIVE)."""

    ACTIVATE = "activate"
    INACTIVE = "inactive"


class EnvelopeKind(StrEnum):
    DISPATCH = "dispatch"
    CLONE = "clone"
    RETRACT = "retract"
    ACTIVATION = "activation"


__all__ = ["ArrivalMode", "EnvelopeKind", "ResidentLifecycle", "ServiceScope"]

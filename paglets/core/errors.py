"""Every error paglets raises, all under :class:`PagletError`.

Errors cross process and machine boundaries as ``{"type": name, "message": text}``
(see :mod:`paglets.wire.errors`); the names below are the wire names, so renaming
a class is a protocol change.
"""

from __future__ import annotations


class PagletError(Exception):
    """Base class of every paglets error."""


class SerializationError(PagletError):
    """A value cannot be encoded to, or decoded from, the wire format."""


class HostError(PagletError):
    """A node refused or failed an operation."""


class AuthenticationError(HostError):
    """The request carried no API key, or the wrong one."""


class ForbiddenError(HostError):
    """The caller is known but not allowed to do this."""


class ServiceContractError(HostError):
    """A service was called in a way its contract does not allow."""


class ServiceNotFoundError(HostError):
    """No paglet advertises the requested service."""


class StorageQuotaError(HostError):
    """A write to a paglet's persistent storage would exceed its quota; nothing was written."""

    def __init__(self, message: str, *, name: str = "", size: int = 0, used: int = 0, quota: int = 0):
        super().__init__(message)
        self.name = name
        self.size = size
        self.used = used
        self.quota = quota


class NodeUnreachableError(HostError):
    """No answer from a node within the deadline: it is down, unreachable or overloaded."""

    def __init__(self, message: str, *, address: str = "", op: str = ""):
        super().__init__(message)
        self.address = address
        self.op = op


class RequestTimeoutError(NodeUnreachableError, TimeoutError):
    """A request got no reply before its deadline."""


class OverloadedError(HostError):
    """A bounded queue is full; retry later."""


class ProtocolError(PagletError):
    """A frame did not follow the paglets wire protocol."""


class RemoteHostError(PagletError):
    """An error of a type this side does not know, raised on the remote side."""

    def __init__(self, message: str, *, remote_type: str = "Exception"):
        super().__init__(f"{remote_type}: {message}" if remote_type else message)
        self.remote_type = remote_type
        self.remote_message = message


class InvalidAgentError(PagletError):
    """No such paglet where it was looked for."""


class PagletInactiveError(PagletError):
    """The paglet is parked and the call may not wake it or queue for it."""


class PagletCrashedError(PagletError):
    """The paglet's process exited or stopped answering."""


class HandlerInterruptedError(PagletCrashedError):
    """The node stopped while the paglet's handler ran this message and did not wait longer.

    The paglet was parked without the handler's result; the message is not retried.
    """


class NotHandledError(PagletError):
    """The paglet's ``handle_message`` refused the message."""


class LifecycleError(PagletError):
    """A lifecycle step (hook, cleanup, state change) failed."""


class TransferError(PagletError):
    """A move (dispatch, clone, retract, remote create) did not happen."""


class ArtifactError(HostError):
    """An artifact operation was refused or failed: a bad id or name, a size or sha256 that does not match,
    a target that cannot be written. Nothing was half-written."""


class ArtifactNotFoundError(ArtifactError):
    """The node holds no artifact with that id."""


class ArtifactQuotaError(ArtifactError):
    """Storing the artifact would exceed the node's artifact_max_bytes or artifact_storage_quota_bytes;
    refused before a byte was stored."""


class MessageQueuedError(PagletError):
    """A synchronous message was queued durably instead of handled, so there is no reply to give.

    Its paglet is parked and does not wake on messages, or its node is away
    behind a relay. The message is on disk and will be handled once the
    paglet wakes or the node is back, as a oneway message: nobody is waiting
    for that answer. ``message_id`` is the queued message's id.
    """

    def __init__(self, message: str, *, message_id: str = ""):
        super().__init__(message)
        self.message_id = message_id


__all__ = [
    "ArtifactError",
    "ArtifactNotFoundError",
    "ArtifactQuotaError",
    "AuthenticationError",
    "ForbiddenError",
    "HandlerInterruptedError",
    "HostError",
    "InvalidAgentError",
    "LifecycleError",
    "MessageQueuedError",
    "NodeUnreachableError",
    "NotHandledError",
    "OverloadedError",
    "PagletCrashedError",
    "PagletError",
    "PagletInactiveError",
    "ProtocolError",
    "RemoteHostError",
    "RequestTimeoutError",
    "SerializationError",
    "ServiceContractError",
    "ServiceNotFoundError",
    "StorageQuotaError",
    "TransferError",
]

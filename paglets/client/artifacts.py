"""Streaming artifacts to and from a node over ZeroMQ: chunks in a window, each acked, never a whole file in memory.

Each transfer opens a DEALER of its own to the node (:class:`Pipe`) and
pipelines requests on it: at most ``window`` chunks (the node says how many,
and how big, when the transfer starts) are in flight past the oldest one
not yet answered, so a transfer holds about ``window x chunk`` bytes whatever
the file's size, and a slow disk at either end slows the sender down instead
of filling memory.

Upload (``HostClient.upload_artifact``): the file is hashed first (its id is
its sha256), then ``artifact_begin`` (the node refuses a file over its limits
here, before a byte is sent, and answers at once if it already holds it),
``artifact_chunk`` per chunk, ``artifact_commit`` (the node checks size and
sha256 and renames its ``.part``); on failure ``artifact_abort``.

Download (``HostClient.download_artifact``): ``artifact_stat``, then
``artifact_get`` per chunk into a ``.part`` next to the target
(:class:`~paglets.client.artifact_sink.PartFile`), checked and renamed.
A node fetching from another node uses :func:`receive_into` the same way.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import zmq
from zmq.utils.monitor import recv_monitor_message

from paglets.client.addresses import check_address, route
from paglets.client.artifact_sink import PartFile, sha256_of
from paglets.client.dealer import next_cid, reply_value
from paglets.core.artifacts import ArtifactRef, check_artifact_id, check_artifact_name
from paglets.core.errors import ArtifactError, NodeUnreachableError, PagletError, ProtocolError, RequestTimeoutError
from paglets.wire import protocol
from paglets.wire.frames import NOBLOCK, recv_frames, send_frames

DEFAULT_CHUNK = 1024 * 1024  # bytes per chunk when a node does not say
DEFAULT_WINDOW = 8  # chunks in flight when a node does not say
MAX_CHUNK = 8 * 1024 * 1024  # the largest chunk a transfer asks for or accepts
MAX_WINDOW = 64
SLOWEST_RATE = 10 * 1024 * 1024  # bytes/s a whole-file step (hash check, fsync, a node's fetch) is allowed
Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def step_timeout(size: int, floor: float) -> float:
    """How long one step over a whole file (a commit's fsync, a node-to-node fetch) may take."""
    return floor + size / SLOWEST_RATE


class Pipe:
    """One transfer's own DEALER to one node: pipelined requests, replies matched by correlation id.

    ``idle_timeout``: the longest wait for any one reply; a connection the
    node drops fails the transfer at once.
    """

    def __init__(self, client: Any, address: str, idle_timeout: float):
        self.address = check_address(address)
        endpoint, self._prefix = route(self.address)
        self._key = client.api_key
        self._idle = idle_timeout
        sock = self._sock = zmq.Context.instance().socket(zmq.DEALER)
        if client.curve is not None:
            client.curve.secure_client(sock)
        sock.linger = 0
        sock.immediate = 1
        sock.maxmsgsize = MAX_CHUNK + 1024 * 1024  # a reply bigger than any chunk we ask for is not taken in
        self._monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sock.connect(endpoint)
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)

    def __enter__(self) -> Pipe:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, op: str, header: dict[str, Any], payload: tuple[bytes, ...] = ()) -> bytes:
        """Send one request; its correlation id."""
        cid = next_cid()
        if self._key:
            header["key"] = self._key
        frames = [*self._prefix, *protocol.request_frames(op, cid, header, payload)]
        try:
            send_frames(self._sock, frames, NOBLOCK)
        except zmq.Again:
            if not self._sock.poll(self._idle * 1000, zmq.POLLOUT):
                raise NodeUnreachableError(
                    f"cannot reach node {self.address} for {op!r} within {self._idle:g} s", address=self.address, op=op
                ) from None
            send_frames(self._sock, frames, NOBLOCK)
        return cid

    def receive(self, waiting: dict[bytes, Any], op: str) -> tuple[bytes, protocol.Reply]:
        """The next reply to one of the ``waiting`` requests; raises the node's error, or on silence."""
        deadline = time.monotonic() + self._idle
        while True:
            remaining = deadline - time.monotonic()
            ready = dict(self._poller.poll(max(0.0, remaining) * 1000)) if remaining > 0 else {}
            if not ready:
                raise RequestTimeoutError(
                    f"no reply from {self.address} to {op!r} within {self._idle:g} s", address=self.address, op=op
                )
            if self._sock in ready:
                try:
                    reply = protocol.parse_reply(recv_frames(self._sock))
                except ProtocolError:
                    continue
                if reply.cid in waiting:
                    return reply.cid, reply_value(reply)
            elif self._dropped():
                raise NodeUnreachableError(
                    f"{self.address} closed the connection during {op!r}", address=self.address, op=op
                )

    def _dropped(self) -> bool:
        dropped = False
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return dropped
            dropped = dropped or event["event"] == zmq.EVENT_DISCONNECTED

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._sock.disable_monitor()
        self._monitor.close(0)
        self._sock.close(0)


def transfer_plan(answer: dict[str, Any]) -> tuple[int, int]:
    """The chunk size and window a node announced, within this side's bounds."""
    chunk, window = answer.get("chunk"), answer.get("window")
    chunk = chunk if isinstance(chunk, int) and not isinstance(chunk, bool) else DEFAULT_CHUNK
    window = window if isinstance(window, int) and not isinstance(window, bool) else DEFAULT_WINDOW
    return max(4096, min(chunk, MAX_CHUNK)), max(1, min(window, MAX_WINDOW))


# -- upload ---------------------------------------------------------------------------------
def upload_file(
    client: Any,
    address: str,
    path: str | Path,
    *,
    name: str | None = None,
    owner: str | None = None,
    progress: Progress | None = None,
) -> ArtifactRef:
    """Store the file at ``path`` on node ``address``; its ref there."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise ArtifactError(f"cannot upload {str(path)!r}: not a regular file")
    size = source.stat().st_size
    header: dict[str, Any] = {"sha": sha256_of(source), "size": size}
    header["name"] = check_artifact_name(source.name if name is None else name)
    if owner is not None:
        header["owner"] = owner
    begin = client.request(address, "artifact_begin", header).header
    if "artifact" in begin:  # the node holds these bytes already
        _report(progress, size, size)
        return ArtifactRef.from_wire(begin["artifact"])
    token = str(begin.get("token"))
    try:
        with Pipe(client, address, client.timeout) as pipe, open(source, "rb") as handle:
            _send_chunks(pipe, handle, token, size, transfer_plan(begin), progress)
        done = client.request(
            address, "artifact_commit", {"token": token}, timeout=step_timeout(size, client.timeout),
            watch_connection=True,
        )  # fmt: skip
    except BaseException:
        with contextlib.suppress(PagletError, ValueError):
            client.request(address, "artifact_abort", {"token": token}, timeout=5.0)
        raise
    return ArtifactRef.from_wire(done.header["artifact"])


def _send_chunks(
    pipe: Pipe, handle: BinaryIO, token: str, size: int, plan: tuple[int, int], progress: Progress | None
) -> None:
    chunk, window = plan
    in_flight: dict[bytes, int] = {}  # cid -> offset
    sent = acked = 0
    while sent < size or in_flight:
        oldest = min(in_flight.values()) if in_flight else sent
        while sent < size and sent + min(chunk, size - sent) - oldest <= window * chunk:
            data = handle.read(min(chunk, size - sent))
            if not data:
                raise ArtifactError(f"{handle.name} shrank to {sent} bytes while it was uploaded")
            in_flight[pipe.send("artifact_chunk", {"token": token, "offset": sent}, (data,))] = sent
            sent += len(data)
        cid, _reply = pipe.receive(in_flight, "artifact_chunk")
        del in_flight[cid]
        acked = _acked(acked, sent, in_flight)
        _report(progress, acked, size)


def _acked(previous: int, sent: int, in_flight: dict[bytes, int]) -> int:
    """Bytes the node has taken, in order (everything below the oldest chunk still in flight)."""
    return max(previous, min(in_flight.values()) if in_flight else sent)


# -- download -------------------------------------------------------------------------------
def download_file(client: Any, ref: ArtifactRef, target: str | Path, *, progress: Progress | None = None) -> Path:
    """Write artifact ``ref`` (from ``ref.host``) to ``target``: whole and checked, or not at all."""
    destination, what = check_target(ref, target)
    answer = client.request(ref.host, "artifact_stat", {"sha": ref.id}).header
    held = ArtifactRef.from_wire(answer.get("artifact"))
    if held.size != ref.size:
        raise ArtifactError(f"{what}: the ref says {ref.size} bytes, the node holds {held.size}")
    chunk, window = transfer_plan(answer)
    sink = _part_file(destination, held.size, ref.sha256, chunk * window, what)
    try:
        receive_into(client, ref.host, ref.id, sink, (chunk, window), progress)
        sink.keep(destination)
    except BaseException:
        sink.discard()
        raise
    return destination


def copy_file(source: Path, ref: ArtifactRef, target: str | Path) -> Path:
    """Copy a blob of this machine's store (``source``) to ``target``, checked like a download."""
    destination, what = check_target(ref, target)
    sink = _part_file(destination, ref.size, ref.sha256, MAX_CHUNK, what)
    try:
        with open(source, "rb") as handle:
            offset = 0
            while chunk := handle.read(min(MAX_CHUNK, max(1, ref.size - offset))):
                offset = sink.put(offset, chunk)
        sink.keep(destination)
    except BaseException:
        sink.discard()
        raise
    return destination


def check_target(ref: ArtifactRef, target: str | Path) -> tuple[Path, str]:
    """Where a download of ``ref`` goes (its directory must exist; it must not be one) and how errors name it."""
    check_artifact_id(ref.id)
    check_artifact_id(ref.sha256)
    destination = Path(target).expanduser()
    what = f"artifact {ref.id[:12]} from {ref.host}"
    if not destination.parent.is_dir():
        raise ArtifactError(f"cannot download {what} to {str(target)!r}: directory {str(destination.parent)!r} "
                            "does not exist")  # fmt: skip
    if destination.is_dir():
        raise ArtifactError(f"cannot download {what} to {str(target)!r}: it is a directory; name a file")
    return destination, what


def _part_file(destination: Path, size: int, sha: str, max_ahead: int, what: str) -> PartFile:
    """The ``.part`` next to ``destination`` (hidden, random: two downloads to one target do not collide)."""
    part = destination.parent / f".{destination.name}.{os.urandom(6).hex()}.part"
    try:
        return PartFile(part, size, sha, max_ahead, what)
    except OSError as exc:
        raise ArtifactError(f"cannot write {what} to {str(part.parent)!r}: {exc.strerror or exc}") from None


def receive_into(
    client: Any, address: str, sha: str, sink: PartFile, plan: tuple[int, int], progress: Progress | None = None
) -> None:
    """Pull all ``sink.size`` bytes of artifact ``sha`` from node ``address`` into ``sink`` (a PartFile)."""
    chunk, window = plan
    size = sink.size
    with Pipe(client, address, client.timeout) as pipe:
        in_flight: dict[bytes, tuple[int, int]] = {}  # cid -> (offset, length)
        asked = 0
        while asked < size or in_flight:
            oldest = min(offset for offset, _ in in_flight.values()) if in_flight else asked
            while asked < size and asked + min(chunk, size - asked) - oldest <= window * chunk:
                length = min(chunk, size - asked)
                header = {"sha": sha, "offset": asked, "length": length}
                in_flight[pipe.send("artifact_get", header)] = (asked, length)
                asked += length
            cid, reply = pipe.receive(in_flight, "artifact_get")
            offset, length = in_flight.pop(cid)
            data = reply.payload[0] if reply.payload else b""
            if len(data) != length:
                raise ArtifactError(
                    f"artifact {sha[:12]} from {address}: {len(data)} bytes came for offset {offset}, {length} asked"
                )
            _report(progress, sink.put(offset, data), size)


def _report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_WINDOW",
    "MAX_CHUNK",
    "MAX_WINDOW",
    "Pipe",
    "Progress",
    "check_target",
    "copy_file",
    "download_file",
    "receive_into",
    "step_timeout",
    "transfer_plan",
    "upload_file",
]

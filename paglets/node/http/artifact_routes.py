"""The HTTP shim's artifact endpoints: files streamed in and out in chunks, never held whole.

=======  ==========================  ==============================================
method   path                        does
=======  ==========================  ==============================================
GET      /artifacts                  ``{"artifacts": [ref...], "usage": {...}}``
PUT      /artifacts/{id}?name=       store the body (``application/octet-stream``) as artifact ``id``
                                     (its sha256) -> 201 ``{"artifact": ref}`` (200 if already held)
GET      /artifacts/{id}             the bytes (``application/octet-stream``), streamed
DELETE   /artifacts/{id}             remove it -> ``{"deleted": id}``
=======  ==========================  ==============================================

A PUT body is read in chunks straight into the store's ``.part`` file; its
size is bounded by the node's ``artifact_max_bytes`` and quota (checked
against ``Content-Length`` before a byte is read: 413), not by
``http_max_body``. The body's sha256 must be ``id``, or nothing is kept (400).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple
from urllib.parse import quote

from paglets.core.artifacts import ArtifactRef
from paglets.node.http.requests import HttpRefusal, Request

OCTET_STREAM = "application/octet-stream"
STREAM_CHUNK = 1024 * 1024


class FileBody(NamedTuple):
    """A reply body the server streams from an open file instead of writing JSON."""

    file: BinaryIO
    size: int
    headers: dict[str, str]


class StreamedBody:
    """A request body the handler reads in chunks (``Content-Length`` bytes of ``rfile``).

    ``on_first_read`` runs before the first byte is read: the server answers
    ``Expect: 100-continue`` there, so a client waits for the handler's
    checks (a refused upload is never sent at all).
    """

    def __init__(self, rfile: BinaryIO, length: int, on_first_read: Callable[[], None] | None = None):
        self.length = length
        self.remaining = length
        self._rfile = rfile
        self._on_first_read = on_first_read

    def chunks(self, size: int = STREAM_CHUNK) -> Iterator[bytes]:
        if self._on_first_read is not None:
            self._on_first_read()
            self._on_first_read = None
        while self.remaining > 0:
            want = min(size, self.remaining)
            try:
                data = self._rfile.read(want)
            except TimeoutError:
                raise HttpRefusal(408, "timed out reading the request body") from None
            except OSError as exc:
                raise HttpRefusal(400, f"could not read the request body: {exc}") from None
            if not data:
                got = self.length - self.remaining
                raise HttpRefusal(400, f"body truncated: got {got} of {self.length} bytes")
            self.remaining -= len(data)
            yield data


def list_artifacts(host: Any, req: Request) -> tuple[int, Any]:
    store = host.artifacts
    return 200, {"artifacts": [ref.to_wire() for ref in store.refs()], "usage": store.usage()}


def put_artifact(host: Any, req: Request) -> tuple[int, Any]:
    body: StreamedBody = req.body
    sha = req.params["artifact_id"]
    name = req.query["name"][-1] if "name" in req.query else None  # None: keep its name (its id when new)
    store = host.artifacts
    started = store.begin(sha, body.length, name)
    if isinstance(started, ArtifactRef):  # held already: the body is read and dropped
        for _ in body.chunks():
            pass
        return 200, {"artifact": started.to_wire()}
    try:
        offset = 0
        for chunk in body.chunks():
            offset = store.put(started.token, offset, chunk)
        return 201, {"artifact": store.commit(started.token).to_wire()}
    finally:
        store.abort(started.token)  # a no-op once committed


def get_artifact(host: Any, req: Request) -> tuple[int, Any]:
    ref, handle = host.artifacts.open_blob(req.params["artifact_id"])
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(ref.name, safe='')}",
        "X-Artifact-Sha256": ref.sha256,
    }
    return 200, FileBody(handle, ref.size, headers)


def delete_artifact(host: Any, req: Request) -> tuple[int, Any]:
    ref = host.artifacts.delete(req.params["artifact_id"])
    return 200, {"deleted": ref.id}


__all__ = [
    "OCTET_STREAM",
    "FileBody",
    "StreamedBody",
    "delete_artifact",
    "get_artifact",
    "list_artifacts",
    "put_artifact",
]

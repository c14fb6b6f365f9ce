"""Hostile artifact requests: ids that are not a sha256, names that try to be paths, sizes and bytes that
lie, tokens that were never given, reads outside a file, bodies cut short, downloads nowhere.

Every refusal names its exact error type, nothing is half-written (no blob,
no ``.part``, nothing outside the store), and every case ends with
:func:`still_serves`: the node's echo paglet answers from the same process
and an honest upload and download still work.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from paglets.client.host_client import HostClient
from paglets.core.artifacts import ArtifactRef
from paglets.core.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactQuotaError,
    NodeUnreachableError,
    OverloadedError,
    ProtocolError,
)
from paglets.core.messages import Message
from paglets.examples.echo import EchoPaglet
from paglets.node.storage.artifacts import MAX_SESSIONS

KIB = 1024
MIB = 1024 * 1024
NOT_SHA256 = ["", "abc", "../../etc/passwd", "A" * 64, "g" * 64, "a" * 63 + "/", "0" * 64 + "\n"]


@dataclass
class Site:
    node: Any
    echo: str
    pid: int
    client: HostClient
    scratch: Path

    @property
    def address(self) -> str:
        return self.node.address

    @property
    def store(self) -> Path:
        return self.node.persistence_dir / "artifacts"

    def ask(self, op: str, header: dict[str, Any], payload: tuple[bytes, ...] = ()) -> dict[str, Any]:
        return self.client.request(self.address, op, header, payload).header


@pytest.fixture
def site(make_node, tmp_path) -> Site:
    node = make_node("alpha", artifact_max_bytes=32 * MIB, artifact_storage_quota_bytes=64 * MIB, http_max_body=KIB)
    proxy = node.create(EchoPaglet)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Site(node, proxy.agent_id, node.agent_info(proxy.agent_id)["pid"], HostClient(timeout=20), scratch)


def still_serves(site: Site) -> None:
    """The echo paglet answers from the same process; an honest artifact goes up and comes back whole."""
    client = site.client
    assert client.send(site.address, site.echo, Message("echo", arg="still here")) == "still here"
    assert site.node.agent_info(site.echo)["pid"] == site.pid
    source = site.scratch / "honest.bin"
    source.write_bytes(os.urandom(100 * KIB))
    ref = client.upload_artifact(site.address, source)
    assert client.download_artifact(ref, site.scratch / "honest.out").read_bytes() == source.read_bytes()
    client.delete_artifact(ref)


def store_files(site: Site) -> list[str]:
    return sorted(p.name for p in site.store.iterdir() if p.is_file())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- ids and names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", NOT_SHA256)
@pytest.mark.parametrize("op", ["artifact_stat", "artifact_delete", "artifact_get", "artifact_begin", "artifact_fetch"])
def test_an_id_that_is_not_a_sha256_is_refused(site, op, bad):
    header = {"sha": bad, "offset": 0, "length": 1, "size": 1, "name": "x", "source": site.address}
    with pytest.raises(ArtifactError, match="not a sha256"):
        site.ask(op, header)
    assert store_files(site) == []
    still_serves(site)


def test_an_id_longer_than_any_hash_is_refused_at_the_edge(site):
    with pytest.raises(ProtocolError, match="'sha' is 4000 characters long"):
        site.ask("artifact_stat", {"sha": "a" * 4000})
    still_serves(site)


@pytest.mark.parametrize("name", ["../../escaped", "/etc/passwd", "a/../../b", "..", "x\\..\\y", "nul\0byte", ""])
def test_a_name_is_metadata_never_a_path(site, name):
    with pytest.raises(ArtifactError, match="plain file name"):
        site.ask("artifact_begin", {"sha": "a" * 64, "size": 10, "name": name})
    assert store_files(site) == [] and not (site.store.parent / "escaped").exists()
    still_serves(site)


@pytest.mark.parametrize("owner", ["../x", "has space", ".hidden"])
def test_an_owner_that_is_not_an_agent_id_is_refused(site, owner):
    with pytest.raises(ArtifactError, match="not an agent id"):
        site.ask("artifact_begin", {"sha": "a" * 64, "size": 10, "name": "x", "owner": owner})
    still_serves(site)


# -- sizes and bytes that lie ---------------------------------------------------------------------------
def test_a_negative_size_is_refused(site):
    with pytest.raises(ArtifactError, match="must not be negative"):
        site.ask("artifact_begin", {"sha": "a" * 64, "size": -1, "name": "x"})
    still_serves(site)


def test_more_bytes_than_announced_end_the_upload_and_leave_nothing(site):
    data = os.urandom(10 * KIB)
    token = site.ask("artifact_begin", {"sha": sha(data), "size": 5 * KIB, "name": "x"})["token"]
    with pytest.raises(ArtifactError, match="past the announced size"):
        site.ask("artifact_chunk", {"token": token, "offset": 0}, (data,))
    with pytest.raises(ArtifactError, match="in progress"):
        site.ask("artifact_commit", {"token": token})
    assert store_files(site) == []
    still_serves(site)


def test_fewer_bytes_than_announced_are_not_kept(site):
    data = os.urandom(10 * KIB)
    token = site.ask("artifact_begin", {"sha": sha(data), "size": len(data), "name": "x"})["token"]
    site.ask("artifact_chunk", {"token": token, "offset": 0}, (data[:KIB],))
    with pytest.raises(ArtifactError, match="1024 of the announced 10240 bytes"):
        site.ask("artifact_commit", {"token": token})
    assert store_files(site) == []
    still_serves(site)


def test_bytes_that_are_not_the_named_artifact_are_not_kept(site):
    data = os.urandom(10 * KIB)
    token = site.ask("artifact_begin", {"sha": sha(b"something else"), "size": len(data), "name": "x"})["token"]
    site.ask("artifact_chunk", {"token": token, "offset": 0}, (data,))
    with pytest.raises(ArtifactError, match="sha256"):
        site.ask("artifact_commit", {"token": token})
    assert store_files(site) == []
    still_serves(site)


def test_a_chunk_far_ahead_of_the_window_is_refused(site):
    token = site.ask("artifact_begin", {"sha": "a" * 64, "size": 32 * MIB, "name": "x"})["token"]
    with pytest.raises(ArtifactError, match="too far ahead"):
        for index in range(1, 32):  # never the first chunk: all of them would wait in memory
            site.ask("artifact_chunk", {"token": token, "offset": index * MIB}, (bytes(MIB),))
    assert store_files(site) == []
    still_serves(site)


@pytest.mark.parametrize("op", ["artifact_chunk", "artifact_commit"])
def test_a_token_never_given_is_refused(site, op):
    with pytest.raises(ArtifactError, match="in progress"):
        site.ask(op, {"token": "../../forged", "offset": 0}, (b"x",) if op == "artifact_chunk" else ())
    still_serves(site)


def test_a_file_over_the_limit_is_refused_before_a_byte_is_stored(site):
    with pytest.raises(ArtifactQuotaError, match="over this node's limit"):
        site.ask("artifact_begin", {"sha": "a" * 64, "size": 32 * MIB + 1, "name": "x"})
    assert store_files(site) == []
    still_serves(site)


def test_uploads_in_progress_are_bounded(site):
    tokens = [
        site.ask("artifact_begin", {"sha": f"{index:064x}", "size": 1, "name": "x"})["token"]
        for index in range(MAX_SESSIONS)
    ]
    with pytest.raises(OverloadedError, match="in progress"):
        site.ask("artifact_begin", {"sha": "f" * 64, "size": 1, "name": "x"})
    for token in tokens:
        site.ask("artifact_abort", {"token": token})
    assert store_files(site) == []
    still_serves(site)


# -- reads --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("offset", "length"), [(-1, 10), (0, 0), (0, -5), (100 * KIB, 1), (0, 10**12)])
def test_a_read_outside_the_artifact_is_refused(site, offset, length):
    data = os.urandom(100 * KIB)
    source = site.scratch / "a.bin"
    source.write_bytes(data)
    ref = site.client.upload_artifact(site.address, source)
    with pytest.raises(ArtifactError, match="cannot read"):
        site.ask("artifact_get", {"sha": ref.id, "offset": offset, "length": length})
    still_serves(site)


def test_a_fetch_from_something_that_is_not_an_address_is_refused(site):
    with pytest.raises(ArtifactError, match="node address"):
        site.ask("artifact_fetch", {"sha": "a" * 64, "source": "file:///etc/passwd"})
    still_serves(site)


def test_a_fetch_from_a_node_that_is_not_there_stores_nothing(site):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NodeUnreachableError):
        site.ask("artifact_fetch", {"sha": "a" * 64, "source": f"tcp://127.0.0.1:{port}"})
    assert store_files(site) == []
    still_serves(site)


def test_a_download_to_a_directory_that_does_not_exist_writes_nothing(site):
    source = site.scratch / "a.bin"
    source.write_bytes(os.urandom(KIB))
    ref = site.client.upload_artifact(site.address, source)
    with pytest.raises(ArtifactError, match="does not exist"):
        site.client.download_artifact(ref, site.scratch / "missing" / "a.bin")
    forged = ArtifactRef(site.address, "0" * 64, "x", 1, "0" * 64, 0.0)
    with pytest.raises(ArtifactNotFoundError):
        site.client.download_artifact(forged, site.scratch / "forged.bin")
    assert sorted(p.name for p in site.scratch.iterdir()) == ["a.bin"]
    still_serves(site)


# -- HTTP ------------------------------------------------------------------------------------------------------
def http_put(site: Site, path: str, body: bytes, *, length: int | None = None, content_type: str | None = None):
    """A PUT sent by hand: ``length`` may lie about the body, which is sent and then the write side closed."""
    url = urlsplit(site.node.http_address)
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        head = (
            f"PUT {path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
            f"Content-Type: {content_type or 'application/octet-stream'}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n"
        )
        try:
            sock.sendall(head.encode() + body)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the body was read
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    raw = b"".join(chunks)
    return int(raw.split(b" ", 2)[1]), raw.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", ["/artifacts/..%2F..%2Fescaped", "/artifacts/abc", f"/artifacts/{'A' * 64}"])
def test_an_http_put_to_an_id_that_is_not_a_sha256_is_400(site, path):
    status, body = http_put(site, path, b"data")
    assert status == 400 and b"ArtifactError" in body
    assert store_files(site) == [] and not (site.store.parent / "escaped").exists()
    still_serves(site)


def test_an_http_body_that_is_not_the_named_artifact_is_not_kept(site):
    data = os.urandom(3 * KIB)  # over http_max_body: artifacts have their own limit
    status, body = http_put(site, f"/artifacts/{sha(b'other')}", data)
    assert status == 400 and b"sha256" in body
    assert store_files(site) == []
    still_serves(site)


def test_an_http_body_cut_short_is_not_kept(site):
    data = os.urandom(64 * KIB)
    status, body = http_put(site, f"/artifacts/{sha(data)}", data[: 10 * KIB], length=len(data))
    assert status == 400 and b"truncated" in body
    assert store_files(site) == []
    still_serves(site)


def test_an_http_body_over_the_artifact_limit_is_413_unread(site):
    status, body = http_put(site, f"/artifacts/{'a' * 64}", b"x" * KIB, length=32 * MIB + 1)
    assert status == 413 and b"ArtifactQuotaError" in body
    assert store_files(site) == []
    still_serves(site)


def test_an_http_put_without_octet_stream_is_415(site):
    data = b"hello"
    status, _ = http_put(site, f"/artifacts/{sha(data)}", data, content_type="text/plain")
    assert status == 415 and store_files(site) == []
    still_serves(site)


def test_an_http_get_of_an_unknown_artifact_is_404(site):
    url = urlsplit(site.node.http_address)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    try:
        conn.request("GET", f"/artifacts/{'0' * 64}")
        response = conn.getresponse()
        assert response.status == 404 and b"ArtifactNotFoundError" in response.read()
    finally:
        conn.close()
    still_serves(site)

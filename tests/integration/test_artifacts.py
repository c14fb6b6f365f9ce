"""Artifacts between clients, paglets and nodes: real nodes on loopback, real workers, real files."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from paglets.client.host_client import HostClient
from paglets.core.artifacts import ArtifactRef
from paglets.core.errors import ArtifactError, ArtifactNotFoundError, ArtifactQuotaError, AuthenticationError
from paglets.core.messages import Message
from paglets.wire import protocol
from tests.artifact_paglets import ArtifactPaglet, ArtifactState

MIB = 1024 * 1024


@pytest.fixture
def two(make_node):
    return make_node("alpha"), make_node("beta")


@pytest.fixture
def client() -> HostClient:
    return HostClient(timeout=30)


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_files(node) -> list[str]:
    """What the node's artifact directory holds (blobs and .part files, not the metadata)."""
    root = node.persistence_dir / "artifacts"
    return sorted(p.name for p in root.iterdir() if p.is_file())


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


# -- clients ---------------------------------------------------------------------------------------
def test_a_client_uploads_lists_downloads_and_deletes(node, client, tmp_path):
    source = random_file(tmp_path / "data.bin", 3 * MIB + 7)
    ref = client.upload_artifact(node.address, source)
    assert (ref.host, ref.id, ref.sha256, ref.name, ref.size, ref.owner) == (
        node.address, sha_of(source), sha_of(source), "data.bin", 3 * MIB + 7, None,
    )  # fmt: skip
    assert client.list_artifacts(node.address) == [ref]
    assert client.stat_artifact(node.address, ref.id) == ref
    target = client.download_artifact(ref, tmp_path / "copy.bin")
    assert target.read_bytes() == source.read_bytes() and leftovers(tmp_path) == []
    client.delete_artifact(ref)
    assert client.list_artifacts(node.address) == [] and store_files(node) == []
    with pytest.raises(ArtifactNotFoundError):
        client.download_artifact(ref, tmp_path / "again.bin")
    assert not (tmp_path / "again.bin").exists()


def test_progress_is_reported_up_to_the_whole_file(node, client, tmp_path):
    source = random_file(tmp_path / "data.bin", 5 * MIB)
    seen: list[tuple[int, int]] = []
    ref = client.upload_artifact(node.address, source, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (5 * MIB, 5 * MIB) and [done for done, _ in seen] == sorted(done for done, _ in seen)
    seen.clear()
    client.download_artifact(ref, tmp_path / "copy.bin", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (5 * MIB, 5 * MIB)


def test_the_same_bytes_twice_are_one_artifact(node, client, tmp_path):
    source = random_file(tmp_path / "a.bin", MIB)
    first = client.upload_artifact(node.address, source)
    again = client.upload_artifact(node.address, source, name="other-name.bin")
    assert again.id == first.id and again.name == "other-name.bin"
    assert store_files(node) == [first.id]


def test_an_empty_file_is_an_artifact_too(node, client, tmp_path):
    source = tmp_path / "empty"
    source.write_bytes(b"")
    ref = client.upload_artifact(node.address, source)
    assert ref.size == 0 and client.download_artifact(ref, tmp_path / "out").read_bytes() == b""


def test_over_the_size_limit_is_refused_before_a_byte_is_stored(make_node, client, tmp_path):
    node = make_node("alpha", artifact_max_bytes=MIB)
    with pytest.raises(ArtifactQuotaError, match="over this node's limit"):
        client.upload_artifact(node.address, random_file(tmp_path / "big.bin", MIB + 1))
    assert store_files(node) == []


def test_over_the_quota_is_refused_before_a_byte_is_stored(make_node, client, tmp_path):
    node = make_node("alpha", artifact_storage_quota_bytes=3 * MIB)
    kept = client.upload_artifact(node.address, random_file(tmp_path / "one.bin", 2 * MIB))
    with pytest.raises(ArtifactQuotaError, match="quota"):
        client.upload_artifact(node.address, random_file(tmp_path / "two.bin", 2 * MIB))
    assert store_files(node) == [kept.id]


def test_a_download_whose_size_does_not_match_writes_nothing(node, client, tmp_path):
    ref = client.upload_artifact(node.address, random_file(tmp_path / "a.bin", MIB))
    wrong = ArtifactRef(ref.host, ref.id, ref.name, ref.size + 1, ref.sha256, ref.created)
    with pytest.raises(ArtifactError, match="the ref says 1048577 bytes, the node holds 1048576"):
        client.download_artifact(wrong, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists() and leftovers(tmp_path) == []


def test_a_download_cut_short_leaves_nothing_half_written(node, client, tmp_path):
    ref = client.upload_artifact(node.address, random_file(tmp_path / "a.bin", 20 * MIB))
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()

    def delete_midway(done: int, total: int) -> None:
        if done < total and client.list_artifacts(node.address):
            client.delete_artifact(ref)

    with pytest.raises(ArtifactNotFoundError):
        client.download_artifact(ref, target, progress=delete_midway)
    assert list(target.parent.iterdir()) == []


def test_a_download_to_a_missing_directory_fails_before_anything_is_asked(node, client, tmp_path):
    ref = client.upload_artifact(node.address, random_file(tmp_path / "a.bin", MIB))
    with pytest.raises(ArtifactError, match="does not exist"):
        client.download_artifact(ref, tmp_path / "missing" / "out.bin")
    with pytest.raises(ArtifactError, match="is a directory"):
        client.download_artifact(ref, tmp_path)
    assert not (tmp_path / "missing").exists()


# -- node to node ------------------------------------------------------------------------------------
def test_a_node_fetches_an_artifact_from_another_node(two, client, tmp_path):
    alpha, beta = two
    source = random_file(tmp_path / "data.bin", 6 * MIB + 1)
    on_alpha = client.upload_artifact(alpha.address, source)
    on_beta = client.fetch_artifact(beta.address, on_alpha)
    assert (on_beta.host, on_beta.id, on_beta.size, on_beta.name) == (beta.address, on_alpha.id, on_alpha.size,
                                                                      "data.bin")  # fmt: skip
    assert (beta.persistence_dir / "artifacts" / on_alpha.id).read_bytes() == source.read_bytes()
    assert leftovers(beta.persistence_dir / "artifacts") == []
    assert client.fetch_artifact(beta.address, on_alpha) == on_beta  # held already: nothing moves


def test_a_fetch_of_an_artifact_the_source_lacks_stores_nothing(two, client):
    alpha, beta = two
    missing = ArtifactRef(alpha.address, "0" * 64, "x", 10, "0" * 64, 0.0)
    with pytest.raises(ArtifactNotFoundError):
        client.fetch_artifact(beta.address, missing)
    assert store_files(beta) == []


# -- paglets -------------------------------------------------------------------------------------------
def test_a_paglet_uploads_and_owns_its_artifact_until_it_is_disposed(node, client, tmp_path):
    source = random_file(tmp_path / "data.bin", 2 * MIB)
    proxy = node.create(ArtifactPaglet)
    ref = proxy.send(Message("upload", {"path": str(source), "name": "mine.bin"}))
    assert isinstance(ref, ArtifactRef)
    assert (ref.host, ref.owner, ref.name, ref.id) == (node.address, proxy.agent_id, "mine.bin", sha_of(source))
    assert proxy.send("refs") == [ref]  # a ref lives in state
    out = Path(proxy.send(Message("download", {"target": str(tmp_path / "back.bin")})))
    assert out.read_bytes() == source.read_bytes()
    proxy.dispose()
    assert client.list_artifacts(node.address) == [] and store_files(node) == []


def test_what_a_client_also_uploaded_stays_when_the_paglet_goes(node, client, tmp_path):
    source = random_file(tmp_path / "data.bin", MIB)
    proxy = node.create(ArtifactPaglet)
    proxy.send(Message("upload", {"path": str(source)}))
    client.upload_artifact(node.address, source)
    proxy.dispose()
    assert [ref.id for ref in client.list_artifacts(node.address)] == [sha_of(source)]


def test_send_artifact_uploads_then_sends_the_ref_in_the_message(node, client, tmp_path):
    source = random_file(tmp_path / "report.csv", MIB + 3)
    proxy = node.create(ArtifactPaglet)
    ref = proxy.send_artifact("receive", source, name="r.csv")
    assert (ref.name, ref.host, ref.owner) == ("r.csv", node.address, None)
    assert proxy.get_state(ArtifactState).refs == [ref]
    out = Path(proxy.send(Message("download", {"target": str(tmp_path / "got.csv")})))
    assert out.read_bytes() == source.read_bytes()


def test_a_paglet_downloads_an_artifact_of_another_node_through_its_own(two, client, tmp_path):
    alpha, beta = two
    source = random_file(tmp_path / "data.bin", 4 * MIB)
    on_alpha = client.upload_artifact(alpha.address, source)
    proxy = beta.create(ArtifactPaglet)
    out = Path(proxy.send(Message("download", {"ref": on_alpha, "target": str(tmp_path / "got.bin")})))
    assert out.read_bytes() == source.read_bytes()
    [cached] = client.list_artifacts(beta.address)  # beta fetched it node to node, for that paglet
    assert (cached.id, cached.owner) == (on_alpha.id, proxy.agent_id)
    proxy.dispose()
    assert client.list_artifacts(beta.address) == []
    assert client.list_artifacts(alpha.address) == [on_alpha]


def test_a_paglet_uploads_to_another_node_and_a_ref_travels_with_it(two, client, tmp_path):
    alpha, beta = two
    source = random_file(tmp_path / "data.bin", MIB)
    proxy = alpha.create(ArtifactPaglet)
    ref = proxy.send(Message("upload", {"path": str(source), "host_url": beta.address}))
    assert (ref.host, ref.owner) == (beta.address, proxy.agent_id)
    proxy.dispatch(beta.address)
    assert proxy.send("where") == "beta" and proxy.send("refs") == [ref]
    out = Path(proxy.send(Message("download", {"target": str(tmp_path / "got.bin")})))
    assert out.read_bytes() == source.read_bytes()
    assert proxy.send(Message("delete", {"ref": ref})) is True
    assert client.list_artifacts(beta.address) == []


def test_a_paglet_download_to_a_missing_directory_fails_clearly(node, tmp_path):
    source = random_file(tmp_path / "data.bin", 1000)
    proxy = node.create(ArtifactPaglet)
    proxy.send(Message("upload", {"path": str(source)}))
    with pytest.raises(ArtifactError, match="does not exist"):
        proxy.send(Message("download", {"target": str(tmp_path / "nope" / "x.bin")}))
    assert proxy.send("where") == "alpha"


# -- the spool --------------------------------------------------------------------------------------------
def test_an_abandoned_upload_leaves_no_part_after_the_spool_ttl(make_node, client):
    node = make_node("alpha", artifact_spool_ttl_seconds=0.5)
    begin = client.request(node.address, "artifact_begin", {"sha": "a" * 64, "size": 4 * MIB, "name": "x"})
    token = begin.header["token"]
    client.request(node.address, "artifact_chunk", {"token": token, "offset": 0}, (bytes(MIB),))
    assert any(name.endswith(".part") for name in store_files(node))
    expired = node.events.wait_for(lambda e: e.kind == "artifact-upload-expired", timeout=30, since=0)
    assert expired is not None and expired.data["written"] == MIB and expired.data["token"] == token
    assert store_files(node) == []
    with pytest.raises(ArtifactError, match="in progress"):
        client.request(node.address, "artifact_chunk", {"token": token, "offset": MIB}, (bytes(MIB),))


def test_a_node_start_removes_parts_an_earlier_run_left(make_node, tmp_path):
    root = tmp_path / "alpha" / "artifacts"
    root.mkdir(parents=True)
    (root / f"{'b' * 64}.0011223344556677.part").write_bytes(b"half a file")
    node = make_node("alpha")
    assert store_files(node) == []


def test_artifact_ops_are_in_the_protocol_table():
    for op in ("artifact_begin", "artifact_chunk", "artifact_commit", "artifact_get", "artifact_fetch"):
        assert op in protocol.FRONT_OPS


# -- HTTP --------------------------------------------------------------------------------------------------
def http_call(node, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
    url = urlsplit(node.http_address)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.headers
    finally:
        conn.close()


def test_http_put_get_list_delete(make_node, tmp_path):
    node = make_node("alpha", http_port=0, http_max_body=64 * 1024)  # artifacts have their own limit
    data = os.urandom(3 * MIB + 1)
    sha = hashlib.sha256(data).hexdigest()
    status, body, _ = http_call(node, "PUT", f"/artifacts/{sha}?name=up.bin", data, "application/octet-stream")
    assert status == 201 and json.loads(body)["artifact"]["name"] == "up.bin"
    status, body, _ = http_call(node, "PUT", f"/artifacts/{sha}", data, "application/octet-stream")
    assert status == 200  # held already
    status, body, headers = http_call(node, "GET", f"/artifacts/{sha}")
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == "application/octet-stream" and headers["X-Artifact-Sha256"] == sha
    assert "up.bin" in headers["Content-Disposition"]
    status, body, _ = http_call(node, "GET", "/artifacts")
    assert status == 200 and [item["id"] for item in json.loads(body)["artifacts"]] == [sha]
    status, body, _ = http_call(node, "DELETE", f"/artifacts/{sha}", content_type="application/json")
    assert (status, json.loads(body)) == (200, {"deleted": sha})
    assert http_call(node, "GET", f"/artifacts/{sha}")[0] == 404
    assert store_files(node) == []


def expect_continue(node, sha: str, length: int) -> tuple[socket.socket, bytes]:
    """Send a PUT's head with ``Expect: 100-continue``; the socket and the node's first answer."""
    url = urlsplit(node.http_address)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    sock.sendall(
        f"PUT /artifacts/{sha} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    return sock, sock.recv(65536)


def test_http_put_answers_expect_continue_after_its_checks(make_node):
    node = make_node("alpha", http_port=0, artifact_max_bytes=MIB)
    data = os.urandom(100 * 1024)
    sock, first = expect_continue(node, hashlib.sha256(data).hexdigest(), len(data))
    with sock:
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(data)
        answer = first[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.split(b" ", 2)[1] == b"201"
    sock, first = expect_continue(node, "a" * 64, MIB + 1)  # over the limit: refused before the body is sent
    with sock:
        while chunk := sock.recv(65536):
            first += chunk
        assert first.split(b" ", 2)[1] == b"413" and b"ArtifactQuotaError" in first
    assert store_files(node) == [hashlib.sha256(data).hexdigest()]


def test_transfers_run_beside_a_node_full_of_slow_requests(make_node, client, tmp_path):
    node = make_node("alpha", max_slow_ops=2)  # the chunks of a window would not fit among slow requests
    source = random_file(tmp_path / "data.bin", 12 * MIB)
    ref = client.upload_artifact(node.address, source)
    assert client.download_artifact(ref, tmp_path / "copy.bin").read_bytes() == source.read_bytes()


def test_a_node_with_an_api_key_takes_artifacts_only_with_it(make_node, tmp_path):
    node = make_node("alpha", api_key="s3cret")
    source = random_file(tmp_path / "data.bin", 2 * MIB)
    with pytest.raises(AuthenticationError):
        HostClient(timeout=10).upload_artifact(node.address, source)
    keyed = HostClient(api_key="s3cret", timeout=10)
    ref = keyed.upload_artifact(node.address, source)
    assert keyed.download_artifact(ref, tmp_path / "copy.bin").read_bytes() == source.read_bytes()
    with pytest.raises(AuthenticationError):
        HostClient(timeout=10).download_artifact(ref, tmp_path / "stolen.bin")
    assert not (tmp_path / "stolen.bin").exists()

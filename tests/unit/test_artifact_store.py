"""The artifact store and the .part files transfers write into, on a real directory."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from paglets.client.artifact_sink import PartFile
from paglets.core.artifacts import ArtifactRef, check_artifact_id, check_artifact_name
from paglets.core.errors import ArtifactError, ArtifactNotFoundError, ArtifactQuotaError
from paglets.core.events import ContextEventLog
from paglets.node.storage.artifacts import TRANSFER_CHUNK, ArtifactStore, Session

KIB = 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_at(root: Path, *, max_bytes: int | None = None, quota: int | None = None) -> ArtifactStore:
    store = ArtifactStore(root, max_bytes=max_bytes, quota_bytes=quota, host=lambda: "tcp://127.0.0.1:1",
                          events=ContextEventLog())  # fmt: skip
    store.prepare()
    return store


def upload(store: ArtifactStore, data: bytes, name: str = "f.bin", owner: str | None = None) -> ArtifactRef:
    started = store.begin(sha(data), len(data), name, owner=owner)
    if isinstance(started, ArtifactRef):
        return started
    offset = 0
    for start in range(0, len(data), 64 * KIB):
        offset = store.put(started.token, offset, data[start : start + 64 * KIB])
    return store.commit(started.token)


def files_in(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_file())


# -- PartFile ------------------------------------------------------------------------------------
def test_chunks_out_of_order_are_written_in_order_and_kept(tmp_path):
    data = os.urandom(10 * KIB)
    part = PartFile(tmp_path / "x.part", len(data), sha(data), 8 * KIB)
    assert part.put(4 * KIB, data[4 * KIB : 8 * KIB]) == 0  # waits for the bytes before it
    assert part.put(0, data[: 4 * KIB]) == 8 * KIB
    assert part.put(8 * KIB, data[8 * KIB :]) == 10 * KIB
    part.keep(tmp_path / "x")
    assert (tmp_path / "x").read_bytes() == data and not (tmp_path / "x.part").exists()


def test_damaged_bytes_are_not_kept_and_leave_no_part(tmp_path):
    data = os.urandom(4 * KIB)
    part = PartFile(tmp_path / "x.part", len(data), sha(data), 8 * KIB)
    part.put(0, bytes(4 * KIB))
    with pytest.raises(ArtifactError, match="sha256"):
        part.keep(tmp_path / "x")
    assert files_in(tmp_path) == []


def test_a_short_transfer_is_not_kept(tmp_path):
    data = os.urandom(4 * KIB)
    part = PartFile(tmp_path / "x.part", len(data), sha(data), 8 * KIB)
    part.put(0, data[:100])
    with pytest.raises(ArtifactError, match="100 of the announced 4096 bytes"):
        part.keep(tmp_path / "x")
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("offset", "length", "why"),
    [(0, 65 * KIB, "past the announced size"), (8 * KIB, 9 * KIB, "too far ahead"), (0, 0, "empty chunk")],
)
def test_a_bad_chunk_is_refused(tmp_path, offset, length, why):
    part = PartFile(tmp_path / "x.part", 64 * KIB, "0" * 64, 8 * KIB)  # at most 8 KiB may wait
    with pytest.raises(ArtifactError, match=why):
        part.put(offset, bytes(length))
    part.discard()
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(("first", "second"), [(0, 0), (2 * KIB, 2 * KIB), (2 * KIB, 3 * KIB), (3 * KIB, 2 * KIB)])
def test_a_chunk_sent_twice_or_overlapping_another_is_refused(tmp_path, first, second):
    part = PartFile(tmp_path / "x.part", 8 * KIB, "0" * 64, 8 * KIB)
    part.put(first, bytes(2 * KIB))
    with pytest.raises(ArtifactError, match="arrived twice"):
        part.put(second, bytes(2 * KIB))
    part.discard()
    assert files_in(tmp_path) == []


# -- ids and names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", "abc", "../" + "a" * 61, "A" * 64, "a" * 63, "a" * 65, None, 7])
def test_an_id_that_is_not_a_sha256_is_refused(value):
    with pytest.raises(ArtifactError, match="not a sha256"):
        check_artifact_id(value)


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "../etc/passwd", "a\\b", "a\0b", "a\nb", "x" * 256])
def test_a_name_that_is_not_a_plain_file_name_is_refused(value):
    with pytest.raises(ArtifactError, match="plain file name"):
        check_artifact_name(value)


# -- the store ---------------------------------------------------------------------------------------
def test_upload_stat_read_list_delete(tmp_path):
    store = store_at(tmp_path)
    data = os.urandom(100 * KIB)
    ref = upload(store, data, "data.bin")
    assert (ref.id, ref.sha256, ref.size, ref.name, ref.owner) == (sha(data), sha(data), len(data), "data.bin", None)
    assert (tmp_path / ref.id).read_bytes() == data
    assert store.stat(ref.id) == ref
    assert store.read(ref.id, 10, 20) == data[10:30]
    assert store.refs() == [ref]
    store.delete(ref.id)
    assert store.refs() == [] and not (tmp_path / ref.id).exists()
    with pytest.raises(ArtifactNotFoundError):
        store.stat(ref.id)


def test_the_same_bytes_are_stored_once(tmp_path):
    store = store_at(tmp_path)
    data = os.urandom(10 * KIB)
    first = upload(store, data, "a.bin")
    again = store.begin(sha(data), len(data), "b.bin")
    assert isinstance(again, ArtifactRef) and again.id == first.id and again.created == first.created
    assert files_in(tmp_path) == [first.id]


def test_over_the_size_limit_is_refused_before_a_byte_is_stored(tmp_path):
    store = store_at(tmp_path, max_bytes=10 * KIB)
    with pytest.raises(ArtifactQuotaError, match="over this node's limit of 10240 bytes"):
        store.begin("a" * 64, 10 * KIB + 1, "big.bin")
    assert files_in(tmp_path) == []


def test_the_quota_counts_uploads_in_progress_at_their_full_size(tmp_path):
    store = store_at(tmp_path, quota=100 * KIB)
    upload(store, os.urandom(40 * KIB))
    pending = store.begin("b" * 64, 50 * KIB, "pending.bin")
    assert isinstance(pending, Session)
    with pytest.raises(ArtifactQuotaError, match="quota of 102400 bytes"):
        store.begin("c" * 64, 20 * KIB, "over.bin")
    store.abort(pending.token)
    assert isinstance(store.begin("c" * 64, 20 * KIB, "fits.bin"), Session)


def test_a_read_outside_the_file_is_refused(tmp_path):
    store = store_at(tmp_path)
    ref = upload(store, os.urandom(KIB))
    for offset, length in ((-1, 10), (0, 0), (1000, 100), (0, 10**9)):
        with pytest.raises(ArtifactError, match="cannot read"):
            store.read(ref.id, offset, length)


def test_a_disposed_owner_takes_its_artifacts_unless_a_client_uploaded_them_too(tmp_path):
    store = store_at(tmp_path)
    own = upload(store, b"only mine", owner="p1")
    shared = upload(store, b"shared", owner="p1")
    upload(store, b"shared")  # a client uploads the same bytes: they stay
    both = upload(store, b"two paglets", owner="p1")
    upload(store, b"two paglets", owner="p2")
    assert own.owner == "p1"
    assert store.release_owner("p1") == [own.id]
    assert {ref.id for ref in store.refs()} == {shared.id, both.id}
    assert store.release_owner("p2") == [both.id]
    assert [ref.id for ref in store.refs()] == [shared.id]


def test_an_idle_upload_expires_with_its_part(tmp_path):
    store = store_at(tmp_path)
    started = store.begin("d" * 64, 10 * KIB, "slow.bin")
    store.put(started.token, 0, bytes(KIB))
    assert store.expire(3600) == []
    assert [s.token for s in store.expire(0)] == [started.token]
    assert files_in(tmp_path) == []
    with pytest.raises(ArtifactError, match="in progress"):
        store.put(started.token, KIB, bytes(KIB))


def test_a_restart_drops_parts_and_records_it_cannot_vouch_for(tmp_path):
    store = store_at(tmp_path)
    kept = upload(store, b"kept")
    gone = upload(store, b"blob removed")
    (tmp_path / gone.id).unlink()
    (tmp_path / ".meta" / f"{'e' * 64}.json").write_text("not json")
    (tmp_path / f"{'f' * 64}.0123.part").write_bytes(b"half")
    store = store_at(tmp_path)
    assert [ref.id for ref in store.refs()] == [kept.id]
    assert sorted(p.name for p in (tmp_path / ".meta").iterdir()) == [f"{kept.id}.json"]
    assert files_in(tmp_path) == [kept.id]
    assert json.loads((tmp_path / ".meta" / f"{kept.id}.json").read_text())["kept"] is True


def test_the_window_bounds_what_a_session_buffers(tmp_path):
    store = store_at(tmp_path)
    started = store.begin("a" * 64, 100 * TRANSFER_CHUNK, "big.bin")
    with pytest.raises(ArtifactError, match="too far ahead"):
        for index in range(1, 100):  # never the first chunk: everything would wait in memory
            store.put(started.token, index * TRANSFER_CHUNK, bytes(TRANSFER_CHUNK))
    assert files_in(tmp_path) == []  # a bad chunk ends the upload

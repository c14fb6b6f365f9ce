"""ManagedStorage: a quota-limited directory shared by the workers of one paglet class."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from paglets.core.errors import HostError
from paglets.persistence.storage import ManagedStorage, StorageQuotaError

pytestmark = pytest.mark.timeout(60)


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".tmp-*"))


def test_root_is_created_on_first_write_not_before(tmp_path):
    root = tmp_path / "storage" / "Counter"
    storage = ManagedStorage(root, quota_bytes=100)
    assert not root.exists()
    assert storage.names() == [] and storage.used_bytes() == 0
    storage.write_bytes("a.bin", b"abc")
    assert root.is_dir()


def test_bytes_and_text_round_trip(tmp_path):
    storage = ManagedStorage(tmp_path, quota_bytes=None)
    storage.write_bytes("blob.bin", b"\x00\x01\xff")
    storage.write_text("note.txt", "grüße")
    storage.write_text("latin.txt", "café", encoding="latin-1")
    assert storage.read_bytes("blob.bin") == b"\x00\x01\xff"
    assert storage.read_text("note.txt") == "grüße"
    assert storage.read_text("latin.txt", encoding="latin-1") == "café"
    assert storage.read_bytes("latin.txt") == "café".encode("latin-1")


def test_bytearray_and_memoryview_are_written_as_bytes(tmp_path):
    storage = ManagedStorage(tmp_path)
    storage.write_bytes("a", bytearray(b"xy"))
    storage.write_bytes("b", memoryview(b"zw"))
    assert storage.read_bytes("a") == b"xy" and storage.read_bytes("b") == b"zw"


def test_nested_names_create_directories_and_list_relative_names(tmp_path):
    storage = ManagedStorage(tmp_path / "s")
    storage.write_text("a/b/c.txt", "deep")
    storage.write_text("a/top.txt", "top")
    storage.write_text("z.txt", "z")
    assert storage.path("a/b/c.txt") == tmp_path / "s" / "a" / "b" / "c.txt"
    assert storage.read_text("a/b/c.txt") == "deep"
    assert storage.names() == ["a/b/c.txt", "a/top.txt", "z.txt"]
    assert storage.exists("a/b/c.txt")
    assert not storage.exists("a/b")  # a directory is not a stored name


def test_names_exclude_the_lock_file_and_temp_files(tmp_path):
    storage = ManagedStorage(tmp_path)
    storage.write_text("x.txt", "x")
    (tmp_path / ".tmp-left-by-a-crashed-writer").write_bytes(b"partial")
    assert (tmp_path / ".lock").exists()
    assert storage.names() == ["x.txt"]


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/x", ".hidden", "a/../../b", "a/./b", "a//b", "a/", "", "a\x00b", "dir/.lock", ".tmp-x", "a\\b"],
)
def test_names_that_could_escape_or_hit_reserved_files_are_refused(tmp_path, name):
    storage = ManagedStorage(tmp_path / "s", quota_bytes=100)
    with pytest.raises(ValueError):
        storage.path(name)
    with pytest.raises(ValueError):
        storage.write_bytes(name, b"x")
    with pytest.raises(ValueError):
        storage.read_bytes(name)
    with pytest.raises(ValueError):
        storage.delete(name)
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()


def test_non_string_names_are_refused(tmp_path):
    with pytest.raises(TypeError):
        ManagedStorage(tmp_path).path(Path("a"))  # type: ignore[arg-type]


def test_reading_a_missing_name_raises_file_not_found(tmp_path):
    storage = ManagedStorage(tmp_path)
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("missing.bin")
    assert not storage.exists("missing.bin")


def test_delete_removes_the_file_and_its_empty_directories_and_ignores_missing(tmp_path):
    storage = ManagedStorage(tmp_path / "s")
    storage.delete("never-written")  # root does not even exist yet
    storage.write_text("a/b/c.txt", "c")
    storage.write_text("a/keep.txt", "k")
    storage.delete("a/b/c.txt")
    assert storage.names() == ["a/keep.txt"]
    assert not (tmp_path / "s" / "a" / "b").exists()
    assert (tmp_path / "s" / "a").is_dir()
    storage.delete("a/b/c.txt")


def test_used_bytes_counts_content_files_only(tmp_path):
    storage = ManagedStorage(tmp_path, quota_bytes=1000)
    storage.write_bytes("a", b"x" * 10)
    storage.write_bytes("d/b", b"x" * 25)
    assert storage.used_bytes() == 35
    assert storage.free_bytes() == 965
    storage.delete("a")
    assert storage.used_bytes() == 25


def test_free_bytes_is_none_without_a_quota(tmp_path):
    storage = ManagedStorage(tmp_path, quota_bytes=None)
    storage.write_bytes("a", b"x" * 10_000)
    assert storage.quota_bytes is None
    assert storage.free_bytes() is None


def test_write_up_to_exactly_the_quota_succeeds(tmp_path):
    storage = ManagedStorage(tmp_path, quota_bytes=10)
    storage.write_bytes("a", b"x" * 10)
    assert storage.free_bytes() == 0


def test_quota_exceeded_leaves_the_old_file_intact_and_no_temp_files(tmp_path):
    storage = ManagedStorage(tmp_path, quota_bytes=20)
    storage.write_bytes("keep.bin", b"old content")  # 11 bytes
    with pytest.raises(StorageQuotaError) as raised:
        storage.write_bytes("keep.bin", b"y" * 21)
    assert storage.read_bytes("keep.bin") == b"old content"
    with pytest.raises(StorageQuotaError):
        storage.write_bytes("new/other.bin", b"z" * 10)
    assert storage.names() == ["keep.bin"]
    assert not (tmp_path / "new").exists()
    assert temp_files(tmp_path) == []
    error = raised.value
    assert isinstance(error, HostError)
    assert "keep.bin" in str(error) and "21" in str(error) and "20" in str(error)
    assert (error.name, error.size, error.used, error.quota) == ("keep.bin", 21, 11, 20)


def test_overwrite_counts_only_the_difference(tmp_path):
    storage = ManagedStorage(tmp_path, quota_bytes=100)
    storage.write_bytes("a", b"x" * 60)
    storage.write_bytes("a", b"y" * 100)  # 60 -> 100 fits although 60 + 100 would not
    assert storage.used_bytes() == 100
    storage.write_bytes("a", b"z" * 40)
    storage.write_bytes("b", b"w" * 60)
    assert storage.used_bytes() == 100
    with pytest.raises(StorageQuotaError):
        storage.write_bytes("a", b"v" * 41)


def test_stale_temp_files_from_a_crash_are_ignored_then_cleaned_on_next_write(tmp_path):
    storage = ManagedStorage(tmp_path, quota_bytes=10)
    storage.write_bytes("d/a", b"abc")
    (tmp_path / ".tmp-crashed").write_bytes(b"q" * 100)
    (tmp_path / "d" / ".tmp-also").write_bytes(b"q" * 100)
    assert storage.used_bytes() == 3
    assert storage.names() == ["d/a"]
    storage.write_bytes("b", b"de")
    assert temp_files(tmp_path) == []
    assert storage.used_bytes() == 5


def test_quota_must_be_a_non_negative_int_or_none(tmp_path):
    with pytest.raises(ValueError):
        ManagedStorage(tmp_path, quota_bytes=-1)
    with pytest.raises(TypeError):
        ManagedStorage(tmp_path, quota_bytes=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ManagedStorage(tmp_path, quota_bytes=True)  # type: ignore[arg-type]


def test_repr_names_the_root_and_the_quota(tmp_path):
    assert repr(ManagedStorage(tmp_path, 5)) == f"ManagedStorage(root={str(tmp_path)!r}, quota=5 bytes)"
    assert "unlimited" in repr(ManagedStorage(tmp_path, None))


# ---------------------------------------------------------------- two processes


CHUNK = 1000
QUOTA = 10 * CHUNK + CHUNK // 2  # with the ballast below, room for exactly one more chunk
ROUNDS = 300


def contend_for_the_last_chunk(root: str, tag: str, start, results) -> None:
    """Worker process: grab the one free chunk, look at the total, give it back; repeat.

    Reports how many rounds it held the chunk and the largest total it ever saw,
    or what went wrong.
    """
    try:
        storage = ManagedStorage(root, quota_bytes=QUOTA)
        if not start.wait(timeout=30):
            raise TimeoutError("the start signal never came")
        held = 0
        most = 0
        for _ in range(ROUNDS):
            try:
                storage.write_bytes(f"{tag}.bin", b"x" * CHUNK)
            except StorageQuotaError:
                continue
            held += 1
            most = max(most, storage.used_bytes())
            storage.delete(f"{tag}.bin")
        results.put((tag, held, most))
    except BaseException as exc:
        results.put((tag, None, repr(exc)))


def test_writers_in_two_processes_never_exceed_the_quota(tmp_path):
    ManagedStorage(tmp_path, quota_bytes=QUOTA).write_bytes("ballast/fill.bin", b"b" * (9 * CHUNK))
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    workers = [
        context.Process(target=contend_for_the_last_chunk, args=(str(tmp_path), tag, start, results), daemon=True)
        for tag in ("left", "right")
    ]
    for worker in workers:
        worker.start()
    try:
        start.set()
        reports = {tag: (held, most) for tag, held, most in (results.get(timeout=45) for _ in workers)}
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=5)
    assert all(held is not None for held, _ in reports.values()), reports
    assert sum(held for held, _ in reports.values()) > 0
    assert max(most for _, most in reports.values()) <= QUOTA, reports
    storage = ManagedStorage(tmp_path, quota_bytes=QUOTA)
    assert storage.names() == ["ballast/fill.bin"]
    assert storage.used_bytes() == 9 * CHUNK
    assert temp_files(tmp_path) == []

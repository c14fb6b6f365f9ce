"""Large artifacts between real ``paglets-node`` processes: streamed, so neither node's memory grows with the file.

The suite moves 512 MiB (``bench/artifacts.py --rss`` does 2 GiB with the
same bound). Memory is read from ``/proc/PID/status``: the peak (VmHWM) is
reset through ``/proc/PID/clear_refs`` before each step, so the figure is
the step's own peak above the resident size it started from.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from paglets.client.host_client import HostClient

MIB = 1024 * 1024
SIZE = 512 * MIB
RSS_BOUND = 64 * MIB
NODE_FLAGS = ("--artifact-max-bytes", str(4096 * MIB), "--artifact-storage-quota-bytes", str(8192 * MIB))


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class PeakWatch:
    """How far a process's resident memory rose above where it was when the watch started."""

    def __init__(self, pid: int):
        self.pid = pid
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")  # reset VmHWM to the current VmRSS
        self.start = status_kib(pid, "VmRSS") * 1024

    def growth(self) -> int:
        return status_kib(self.pid, "VmHWM") * 1024 - self.start


def write_large_file(path: Path, size: int) -> str:
    """``size`` bytes no two MiB alike (a random block, numbered), written without holding them; its sha256."""
    block = bytearray(os.urandom(MIB))
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for index in range(size // MIB):
            block[:8] = index.to_bytes(8, "big")
            handle.write(block)
            digest.update(block)
    return digest.hexdigest()


def sha_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_large_artifact_moves_between_two_node_processes_in_bounded_memory(node_process, tmp_path):
    alpha = node_process("alpha", *NODE_FLAGS)
    beta = node_process("beta", *NODE_FLAGS)
    source = tmp_path / "large.bin"
    sha = write_large_file(source, SIZE)
    client = HostClient(timeout=60)

    uploading = PeakWatch(alpha.pid)
    ref = client.upload_artifact(alpha.address, source)
    upload_growth = uploading.growth()
    source.unlink()  # the disk holds two more copies soon enough
    assert (ref.id, ref.size) == (sha, SIZE)

    sending, receiving = PeakWatch(alpha.pid), PeakWatch(beta.pid)
    on_beta = client.fetch_artifact(beta.address, ref)
    growth = {"alpha (upload)": upload_growth, "alpha (send)": sending.growth(), "beta (fetch)": receiving.growth()}

    assert (on_beta.host, on_beta.id, on_beta.size) == (beta.address, sha, SIZE)
    assert sha_of_file(tmp_path / "beta-data" / "artifacts" / sha) == sha
    assert all(value < RSS_BOUND for value in growth.values()), {k: f"{v / MIB:.1f} MiB" for k, v in growth.items()}

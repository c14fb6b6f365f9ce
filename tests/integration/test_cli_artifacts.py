"""``paglets artifacts put | get | ls | rm`` as a user runs them, against real node processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_cli import cli_env, failed, ok, run_cli

MIB = 1024 * 1024


def run_in(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the ``paglets`` CLI from ``directory``."""
    cmd = [sys.executable, "-m", "paglets.cli.client", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), cwd=directory, timeout=60)


@pytest.fixture
def alpha(node_process):
    return node_process("alpha")


def test_put_ls_get_rm_round_trip(alpha, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_bytes(b"a small file\n")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    put = json.loads(ok(run_cli("--json", "artifacts", "put", alpha.address, str(source), "--name", "n.txt")))
    assert (put["id"], put["name"], put["size"], put["host"]) == (sha, "n.txt", 13, alpha.address)
    listing = ok(run_cli("artifacts", "ls", alpha.address))
    assert sha in listing and "n.txt" in listing and "1 artifacts" in listing
    target = tmp_path / "copy.txt"
    got = ok(run_cli("artifacts", "get", alpha.address, sha, str(target)))
    assert target.read_bytes() == source.read_bytes() and str(target) in got
    assert ok(run_cli("artifacts", "rm", alpha.address, sha)).strip() == f"deleted {sha}"
    assert "0 artifacts" in ok(run_cli("artifacts", "ls", alpha.address))


def test_a_large_file_shows_a_progress_bar_on_stderr(alpha, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(6 * MIB))
    result = run_cli("artifacts", "put", alpha.address, str(source))
    ok(result)
    bars = [line for line in result.stderr.splitlines() if line.startswith("put big.bin [")]
    assert bars and "100.0%" in bars[-1] and "6.0/6.0 MiB" in bars[-1]
    quiet = run_cli("artifacts", "put", alpha.address, str(source), "--no-progress")
    assert ok(quiet) and quiet.stderr == ""


def test_get_from_another_node_fetches_node_to_node(node_process, tmp_path):
    alpha, beta = node_process("alpha"), node_process("beta")
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(2 * MIB + 1))
    sha = json.loads(ok(run_cli("--json", "artifacts", "put", alpha.address, str(source))))["id"]
    got = json.loads(ok(run_cli("--json", "artifacts", "get", beta.address, sha, str(tmp_path / "out.bin"),
                                "--from", alpha.address)))  # fmt: skip
    assert got["host"] == beta.address and (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    assert sha in ok(run_cli("artifacts", "ls", beta.address))


def test_get_without_a_target_uses_the_artifacts_name_here(alpha, tmp_path):
    source = tmp_path / "data.bin"
    source.write_bytes(b"payload")
    sha = json.loads(ok(run_cli("--json", "artifacts", "put", alpha.address, str(source), "--name", "named.bin")))["id"]
    work = tmp_path / "work"
    work.mkdir()
    ok(run_in(work, "artifacts", "get", alpha.address, sha))
    assert (work / "named.bin").read_bytes() == b"payload"


def test_errors_are_one_line_and_exit_1(alpha, tmp_path):
    assert "not a sha256" in failed(run_cli("artifacts", "get", alpha.address, "../../etc/passwd"))
    assert "ArtifactNotFoundError" in failed(run_cli("artifacts", "rm", alpha.address, "0" * 64))
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    sha = json.loads(ok(run_cli("--json", "artifacts", "put", alpha.address, str(source))))["id"]
    message = failed(run_cli("artifacts", "get", alpha.address, sha, str(tmp_path / "missing" / "a.bin")))
    assert "does not exist" in message and len(message.strip().splitlines()) == 1
    assert not (tmp_path / "missing").exists()

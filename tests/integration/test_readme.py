"""The README's example as a new user runs it: its own files, its own commands, real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def code_block_after(marker: str, language: str) -> str:
    """The first ``language`` code block after ``marker`` in the README."""
    start = README.index(marker)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(README, start)
    assert match is not None, f"no {language} block after {marker!r}"
    return match.group(1)


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A directory holding the README's counter.py, as the user wrote it."""
    (tmp_path / "counter.py").write_text(code_block_after("Put this in `counter.py`", "python"))
    return tmp_path


def user_env() -> dict[str, str]:
    # The user installed paglets; here the checkout stands in for the installed package.
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_the_client_example_moves_the_counter_between_two_nodes(user_dir: Path):
    (user_dir / "client.py").write_text(code_block_after("and this in `client.py`", "python"))
    result = subprocess.run(
        [sys.executable, "client.py"], cwd=user_dir, capture_output=True, text=True, timeout=60, env=user_env()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["15", "beta", "16"]


def test_a_node_started_where_counter_py_lives_runs_it_once_allowed(user_dir: Path, tmp_path: Path):
    command = code_block_after("### Your paglets in a `paglets-node`", "sh").strip()
    assert command == ".venv/bin/paglets-node --allow-module counter"
    node = subprocess.Popen(
        [sys.executable, "-m", "paglets.cli.node", "--allow-module", "counter", "--name", "readme",
         "--port", "0", "--http-port", "0", "--data-dir", str(tmp_path / "data")],
        cwd=user_dir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=user_env(),
    )  # fmt: skip
    try:
        address = None
        for line in node.stdout:  # ends at "ready" (or when the node exits)
            if line.startswith("address "):
                address = line.split()[1]
            if line.startswith("ready"):
                break
        assert address is not None, "the node did not start"
        snippet = code_block_after("then, from any process:", "python").replace("tcp://127.0.0.1:7700", address)
        (tmp_path / "use_it.py").write_text(snippet)
        result = subprocess.run(
            [sys.executable, str(tmp_path / "use_it.py")], capture_output=True, text=True, timeout=60, env=user_env()
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["15"]
    finally:
        node.terminate()
        node.wait(30)

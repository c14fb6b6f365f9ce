"""Nothing is imported because a remote peer named it (issue 9, section 1).

Each case names a module whose import would leave a marker file (or end the
process): the file must never appear unless the operator allowed the module,
and the node must keep serving afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from paglets.client.host_client import HostClient
from paglets.core.errors import ForbiddenError, HostError, SerializationError
from paglets.core.messages import Message
from paglets.examples.echo import EchoPaglet
from tests.conftest import ROOT

MARKER_MODULE = """
import os
open(os.environ["PAGLETS_TEST_MARKER"], "w").write("imported")

from dataclasses import dataclass
from paglets.core.agent import Paglet, PagletState


@dataclass
class Loot:
    value: int = 1


class Intruder(Paglet[PagletState]):
    def handle_message(self, message):
        return "intruder"
"""

EXITING_MODULE = """
raise SystemExit(3)
"""

REPLIES_MODULE = """
import os
if os.environ.get("PAGLETS_TEST_REPLY_MARKER"):
    open(os.environ["PAGLETS_TEST_REPLY_MARKER"], "w").write("imported")

from dataclasses import dataclass
from paglets.core.agent import Paglet, PagletState


@dataclass
class Secret:
    text: str = "reply"


class Replier(Paglet[PagletState]):
    def handle_message(self, message):
        return Secret()
"""


@pytest.fixture
def code_dir(tmp_path: Path, monkeypatch) -> Path:
    """A directory of hostile modules, on this process's path and the node processes'."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "marker_mod_xyz.py").write_text(textwrap.dedent(MARKER_MODULE))
    (code / "exiting_mod_xyz.py").write_text(textwrap.dedent(EXITING_MODULE))
    (code / "replies_mod_xyz.py").write_text(textwrap.dedent(REPLIES_MODULE))
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("PAGLETS_TEST_MARKER", str(tmp_path / "marker"))
    return code


def node_env(code: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(code), str(ROOT), os.environ.get("PYTHONPATH", "")])}


def still_serves(address: str) -> None:
    client = HostClient(timeout=20)
    echo = client.create(address, EchoPaglet)
    assert echo.send(Message("echo", arg="fine")) == "fine"


def test_a_create_naming_a_module_not_allowed_imports_nothing_and_names_the_option(node_process, code_dir, tmp_path):
    node = node_process("alpha", env=node_env(code_dir))
    with pytest.raises(ForbiddenError) as refused:
        HostClient().create(node.address, "marker_mod_xyz:Intruder")
    message = str(refused.value)
    assert "\n" not in message
    assert "'marker_mod_xyz'" in message and "--allow-module marker_mod_xyz" in message
    assert not (tmp_path / "marker").exists()
    still_serves(node.address)


def test_the_cli_refusal_is_one_line_naming_the_option(node_process, code_dir, tmp_path):
    node = node_process("alpha", env=node_env(code_dir))
    cmd = [sys.executable, "-m", "paglets.cli.client", "create", node.address, "marker_mod_xyz:Intruder"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, **node_env(code_dir)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ForbiddenError:") and "--allow-module" in lines[0]
    assert not (tmp_path / "marker").exists()


def test_an_allowed_module_is_imported_and_runs(node_process, code_dir, tmp_path):
    node = node_process("alpha", "--allow-module", "marker_mod_xyz", env=node_env(code_dir))
    intruder = HostClient().create(node.address, "marker_mod_xyz:Intruder")
    assert intruder.send("who") == "intruder"
    assert (tmp_path / "marker").read_text() == "imported"


def test_a_module_whose_import_exits_fails_that_create_only(node_process, code_dir):
    node = node_process("alpha", "--allow-module", "exiting_mod_xyz", env=node_env(code_dir))
    client = HostClient(timeout=20)
    for _ in range(2):  # twice: the template process would be the one to die
        with pytest.raises(HostError, match="exiting_mod_xyz"):
            client.create(node.address, "exiting_mod_xyz:Anything")
    still_serves(node.address)


def test_a_codec_tag_naming_a_module_not_allowed_fails_the_message_only(node_process, code_dir, tmp_path):
    node = node_process("alpha", env=node_env(code_dir))
    echo = HostClient(timeout=20).create(node.address, EchoPaglet)
    loot = _dataclass_named("marker_mod_xyz", "Loot")
    with pytest.raises(SerializationError, match="marker_mod_xyz"):
        echo.send(Message("echo", arg=loot))
    assert not (tmp_path / "marker").exists()
    assert echo.send(Message("echo", arg="still")) == "still"


def test_the_client_never_imports_a_module_a_reply_names(node_process, code_dir, tmp_path, monkeypatch):
    node = node_process("alpha", "--allow-module", "replies_mod_xyz", env=node_env(code_dir))
    monkeypatch.setenv("PAGLETS_TEST_REPLY_MARKER", str(tmp_path / "reply-marker"))  # for this process only
    replier = HostClient(timeout=20).create(node.address, "replies_mod_xyz:Replier")
    assert "replies_mod_xyz" not in sys.modules
    with pytest.raises(SerializationError, match="replies_mod_xyz"):
        replier.send("give")
    assert "replies_mod_xyz" not in sys.modules
    assert not (tmp_path / "reply-marker").exists()


def _dataclass_named(module: str, name: str) -> object:
    """An instance of a local dataclass that encodes with the tag ``module:name`` (nothing imported here)."""

    @dataclass
    class Stand:
        value: int = 1

    Stand.__module__, Stand.__qualname__ = module, name
    return Stand()

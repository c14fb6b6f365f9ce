"""NodeConfig names every node option once: Host keywords, CLI flags and the TOML file follow it."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from paglets.cli import node as node_cli
from paglets.cli import node_toml
from paglets.node.config import NodeConfig, option_specs

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_node_toml_is_the_generated_one():
    assert (ROOT / "configs" / "node.toml").read_text() == node_toml.render()


def test_every_option_of_the_toml_file_is_a_flag_of_paglets_node():
    keys = set(tomllib.loads(node_toml.render())) | {spec.key for spec in option_specs()}
    help_text = CliRunner().invoke(node_cli.main, ["--help"], terminal_width=200).output
    missing = [key for key in sorted(keys) if f"--{key.replace('_', '-')}" not in help_text]
    assert missing == []


def test_every_cli_option_becomes_the_host_keyword_of_its_field():
    fields = {f.name for f in dataclasses.fields(NodeConfig)}
    specs = list(option_specs())
    assert {spec.field for spec in specs} <= fields
    objects = {"client", "launch_config", "api_key", "auto_update_restart_callback", "resident_services"}
    assert objects == fields - {spec.field for spec in specs}


def test_a_bad_value_is_refused_naming_the_option():
    with pytest.raises(ValueError, match="node option port"):
        NodeConfig.from_options(name="a", port=70000)
    with pytest.raises(ValueError, match="node option mesh_gossip_interval"):
        NodeConfig.from_options(name="a", mesh_gossip_interval=0)
    with pytest.raises(ValueError, match="node option peers: must be a list of strings"):
        NodeConfig.from_options(name="a", peers="tcp://127.0.0.1:1")


def test_an_unknown_option_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="no_such_option"):
        NodeConfig.from_options(name="a", no_such_option=1)


def test_a_config_file_with_an_unknown_key_is_refused(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text('name = "a"\nhttp_prot = 1\n')
    result = CliRunner().invoke(node_cli.main, ["--config", str(config)])
    assert result.exit_code == 2
    assert "http_prot" in result.output


def test_a_config_file_value_reaches_the_host_keywords(tmp_path, monkeypatch):
    config = tmp_path / "node.toml"
    config.write_text('name = "from-file"\ngossip_interval = 2.5\ntag = ["gpu"]\nproperty = {region = "eu"}\n')
    seen = {}

    def fake_run(kwargs):
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(node_cli, "run_node", fake_run)  # the test is about option parsing, not a node
    result = CliRunner().invoke(node_cli.main, ["--config", str(config), "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen["name"] == "from-file" and seen["mesh_gossip_interval"] == 2.5 and seen["port"] == 0
    assert seen["tags"] == ["gpu"] and seen["properties"] == {"region": "eu"}


@pytest.mark.parametrize(
    ("option", "value"),
    [("tags", ["t"] * 65), ("tags", ["t" * 65]), ("properties", {"zone": "z" * 513}), ("mesh_version", "v" * 65)],
)
def test_mesh_fields_other_nodes_would_refuse_are_refused_at_start(option, value):
    with pytest.raises(ValueError, match=f"node option {option}: at most"):
        NodeConfig.from_options(name="a", **{option: value})

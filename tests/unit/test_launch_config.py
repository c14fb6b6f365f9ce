"""Launch configuration files: what they hold, and errors that name the file, table, key and expectation."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from click.testing import CliRunner

from paglets.cli import node as node_cli
from paglets.node import launch
from paglets.node.launch import LaunchConfig, LaunchConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def test_a_full_launch_config_is_read(tmp_path):
    path = write(
        tmp_path,
        """
name = "alpha"
port = 0
peer = "tcp://127.0.0.1:7710"
property = { region = "eu" }
allow_module = ["myapp"]
log_level = "debug"

[[resident_services]]
class = "myapp.tickets:TicketService"
lifecycle = "lazy"
state = { region = "eu" }

[[paglets]]
class = "myapp.jobs:Dispatcher"
agent_id = "dispatcher"
state = { queue = "main", retries = 3 }
singleton = true

[[paglets]]
class = "myapp.jobs:Worker"
enabled = false
""",
    )
    config = launch.load(path)
    assert config.options == {
        "name": "alpha", "port": 0, "peer": ["tcp://127.0.0.1:7710"], "property": {"region": "eu"},
        "allow_module": ["myapp"], "log_level": "DEBUG",
    }  # fmt: skip
    first, second = config.paglets
    assert (first.class_name, first.agent_id, first.state, first.singleton, first.enabled) == (
        "myapp.jobs:Dispatcher", "dispatcher", {"queue": "main", "retries": 3}, True, True,
    )  # fmt: skip
    assert (second.agent_id, second.singleton, second.enabled) == (None, False, False)
    assert config.resident_services == (
        {"class": "myapp.tickets:TicketService", "lifecycle": "lazy", "state": {"region": "eu"}},
    )  # kept as written: the resident services parser reads them
    options = config.host_options()
    assert options["peers"] == ["tcp://127.0.0.1:7710"] and options["allow_modules"] == ["myapp"]
    assert "log_level" not in options


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('flavour = "mint"\n', "fleet.toml: unknown key(s) flavour at the top level; known keys: "),
        ('port = "7700"\n', "fleet.toml: top level, key 'port': expected an integer, got '7700'"),
        ("port = 70000\n", "fleet.toml: top level, key 'port': 70000 is not a TCP port"),
        ("http = 1\n", "fleet.toml: top level, key 'http': expected true or false, got 1"),
        ('name = "no spaces"\n', "fleet.toml: top level, key 'name': 'no spaces': use 1-128 of"),
        ('peer = ["nowhere"]\n', "fleet.toml: top level, key 'peer': node address 'nowhere' must look like"),
        ("tag = [1]\n", "fleet.toml: top level, key 'tag': expected a string or a list of strings"),
        ('log_level = "LOUD"\n', "fleet.toml: top level, key 'log_level': expected one of DEBUG, INFO"),
        ("[paglets]\nclass = 'a:B'\n", "fleet.toml: key 'paglets': expected an array of tables ([[paglets]])"),
        ("resident_services = 3\n", "key 'resident_services': expected an array of tables ([[resident_services]])"),
        ("[[paglets]]\nagent_id = 'x'\n", "fleet.toml: [[paglets]] #1: key 'class' is missing"),
        ("[[paglets]]\nclass = 'nocolon'\n", "[[paglets]] #1, key 'class': expected 'package.module:ClassName'"),
        ("[[paglets]]\nclass = '__main__:C'\n", "[[paglets]] #1, key 'class': expected 'package.module:ClassName'"),
        ("[[paglets]]\nclass = 'a:B'\nstate = 3\n", "[[paglets]] #1, key 'state': expected a table"),
        ("[[paglets]]\nclass = 'a:B'\nenabled = 'yes'\n", "[[paglets]] #1, key 'enabled': expected true or false"),
        ("[[paglets]]\nclass = 'a:B'\nagent_id = '../x'\n", "[[paglets]] #1, key 'agent_id': expected 1-128"),
        ("[[paglets]]\nclass = 'a:B'\nsingleton = true\n", "[[paglets]] #1: singleton = true needs an agent_id"),
        ("[[paglets]]\nclass = 'a:B'\nsize = 2\n", "[[paglets]] #1: unknown key(s) size; known keys: class"),
        (
            "[[paglets]]\nclass = 'a:B'\nagent_id = 'x'\n[[paglets]]\nclass = 'a:C'\nagent_id = 'x'\n",
            "[[paglets]]: agent_id 'x' is given more than once",
        ),
        ("port = \n", "fleet.toml: not valid TOML"),
    ],
)
def test_a_bad_launch_config_is_refused_naming_file_table_key_and_expectation(tmp_path, text, message):
    with pytest.raises(LaunchConfigError) as caught:
        launch.load(write(tmp_path, text))
    assert message in str(caught.value)
    assert str(tmp_path / "fleet.toml") in str(caught.value) or "fleet.toml" in str(caught.value)


def test_a_missing_file_is_refused_naming_it(tmp_path):
    with pytest.raises(LaunchConfigError, match=r"cannot read launch config .*nowhere\.toml"):
        launch.load(tmp_path / "nowhere.toml")


def test_a_mapping_and_a_config_object_are_taken_as_they_are():
    config = LaunchConfig.of({"name": "a", "paglets": [{"class": "paglets.examples.echo:EchoPaglet"}]})
    assert config.source == "launch config mapping" and LaunchConfig.of(config) is config
    with pytest.raises(LaunchConfigError, match="launch config mapping: unknown key"):
        LaunchConfig.of({"nmae": "a"})
    with pytest.raises(LaunchConfigError, match="must be a file path or a mapping"):
        LaunchConfig.of(3)  # type: ignore[arg-type]


def test_api_key_env_becomes_the_host_api_key(monkeypatch):
    config = LaunchConfig.of({"api_key_env": "FLEET_TEST_KEY"})
    monkeypatch.setenv("FLEET_TEST_KEY", "k3y")
    assert config.host_options()["api_key"] == "k3y"
    monkeypatch.delenv("FLEET_TEST_KEY")
    with pytest.raises(LaunchConfigError, match="key 'api_key_env': environment variable FLEET_TEST_KEY is unset"):
        config.host_options()


def test_a_startup_class_outside_the_allowed_modules_is_refused_naming_allow_module():
    config = LaunchConfig.of({"paglets": [{"class": "myapp.jobs:Worker"}, {"class": "other:X", "enabled": False}]})
    with pytest.raises(LaunchConfigError, match=r"\[\[paglets\]\] #1, key 'class': module 'myapp.jobs'.*allow_module"):
        config.check_own_modules()
    LaunchConfig.of({"allow_module": ["myapp"], "paglets": [{"class": "myapp.jobs:Worker"}]}).check_own_modules()
    LaunchConfig.of({"allow_any_module": True, "paglets": [{"class": "myapp.jobs:Worker"}]}).check_own_modules()


def test_the_default_launch_config_ships_with_the_package_and_allows_the_examples():
    path = launch.default_path()
    assert path.is_file() and path.parent.parent == ROOT / "paglets"
    config = launch.load(path)
    assert config.options == {"allow_module": ["paglets.examples"]}
    assert config.paglets == () and config.resident_services == ()
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert "configs/*.toml" in setup["options.package_data"]["paglets"]


def test_check_config_says_ok_in_one_line_or_names_the_error(tmp_path):
    good = write(tmp_path, '[[paglets]]\nclass = "paglets.examples.echo:EchoPaglet"\nagent_id = "echo"\n')
    result = CliRunner().invoke(node_cli.main, ["--check-config", str(good)])
    assert result.exit_code == 0, result.output
    assert result.output == f"OK {good}: 0 option(s), 1 startup paglet(s), 0 resident service(s)\n"
    (tmp_path / "bad.toml").write_text('[[paglets]]\nclass = "myapp:Job"\n')
    result = CliRunner().invoke(node_cli.main, ["--check-config", str(tmp_path / "bad.toml")])
    assert result.exit_code == 1
    assert "bad.toml: [[paglets]] #1, key 'class': module 'myapp'" in result.output
    assert "allow_module" in result.output


def test_paglets_node_without_flags_runs_the_default_launch_config(monkeypatch):
    seen = {}

    def fake_run(kwargs):
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(node_cli, "run_node", fake_run)  # about option parsing, not a node
    result = CliRunner().invoke(node_cli.main, [])
    assert result.exit_code == 0, result.output
    assert seen["allow_modules"] == ["paglets.examples"] and seen["port"] == 7700
    assert seen["launch_config"].source == str(launch.default_path())


def test_flags_override_the_launch_config_and_its_paglets_reach_the_host(tmp_path, monkeypatch):
    path = write(tmp_path, 'name = "filed"\nport = 7800\n[[paglets]]\nclass = "paglets.examples.echo:EchoPaglet"\n')
    seen = {}
    monkeypatch.setattr(node_cli, "run_node", lambda kwargs: seen.update(kwargs) or 0)
    result = CliRunner().invoke(node_cli.main, ["--config", str(path), "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen["name"] == "filed" and seen["port"] == 0
    assert [p.class_name for p in seen["launch_config"].paglets] == ["paglets.examples.echo:EchoPaglet"]

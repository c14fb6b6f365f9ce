"""Nodes started from a launch configuration: options, startup paglets, singletons across restarts."""

from __future__ import annotations

import pytest

from paglets.core.messages import Message
from paglets.node.host import Host
from paglets.node.launch import LaunchConfigError
from paglets.remote.client import HostClient

ECHO = "paglets.examples.echo:EchoPaglet"


def launch_mapping(**options):
    return {
        "name": "launched", "http": False, "mesh": False, **options,
        "paglets": [
            {"class": ECHO, "agent_id": "keeper", "state": {"total": 5}, "singleton": True},
            {"class": ECHO, "state": {"greeting": "fresh"}},
            {"class": ECHO, "agent_id": "off", "enabled": False},
        ],
    }  # fmt: skip


def ids_by_greeting(node: Host) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for agent in node.list_agents(active=True, inactive=True, include_state=True):
        found.setdefault(agent["state"]["greeting"], []).append(agent["agent_id"])
    return found


def test_a_host_starts_its_startup_paglets_and_a_singleton_only_once(tmp_path):
    data = tmp_path / "launched"
    node = Host(launch_config=launch_mapping(), persistence_dir=data)
    node.start_background()
    try:
        assert node.name == "launched"
        found = ids_by_greeting(node)
        assert found["hello"] == ["keeper"] and len(found["fresh"]) == 1
        assert node.get_proxy_for("keeper").send(Message("add", arg=1)) == 6
        first_run = node.agent_ids()
    finally:
        assert node.shutdown() == []  # parked, to wake on the next start

    again = Host(launch_config=launch_mapping(), persistence_dir=data)
    again.start_background()
    try:
        for agent_id in first_run:  # parked on shutdown, they wake on their own at start
            assert again.events.wait_for(kind="activate", agent_id=agent_id, timeout=30, since=0) is not None
        found = ids_by_greeting(again)
        assert found["hello"] == ["keeper"]  # the singleton came back from disk, not created anew
        assert len(found["fresh"]) == 2  # a non-singleton is created at each start
        assert "off" not in [a["agent_id"] for a in again.list_agents(active=True, inactive=True)]
        assert again.get_proxy_for("keeper").send(Message("add", arg=1)) == 7
        again.deactivate("keeper")
    finally:
        again.stop()

    third = Host(launch_config=launch_mapping(), persistence_dir=data)
    third.start_background()
    try:
        assert "keeper" in third.parked  # a parked singleton is left parked
    finally:
        third.stop()


def test_keywords_given_to_host_win_over_the_launch_config(tmp_path):
    node = Host("explicit", launch_config=launch_mapping(event_log_size=50), persistence_dir=tmp_path, event_log_size=7)
    assert node.name == "explicit" and node.config.event_log_size == 7 and node.config.http is False


def test_a_startup_class_the_node_may_not_import_stops_it_before_it_starts(tmp_path):
    mapping = {"name": "picky", "paglets": [{"class": "notallowed.jobs:Worker"}]}
    with pytest.raises(LaunchConfigError, match=r"module 'notallowed\.jobs'.*allow_module"):
        Host(launch_config=mapping, persistence_dir=tmp_path)


def test_a_launch_config_file_runs_a_node_process(node_process, tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(
        'tag = ["fleet"]\n\n[[paglets]]\n'
        f'class = "{ECHO}"\nagent_id = "greeter"\nstate = {{ greeting = "hi" }}\nsingleton = true\n'
    )
    node = node_process("filed", "--config", str(path))
    client = HostClient()
    assert client.health(node.address)["tags"] == ["fleet"]
    assert client.proxy(node.address, "greeter").send(Message("echo", arg="x")) == "x"
    assert client.get_state(node.address, "greeter")["greeting"] == "hi"

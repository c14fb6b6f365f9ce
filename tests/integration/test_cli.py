"""The command-line tools as a user runs them: ``paglets-node`` and ``paglets`` as real processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import zmq

from paglets.remote.client import HostClient
from tests.conftest import ROOT, child_pids, pid_alive, wait_until

ECHO = "paglets.examples.echo:EchoPaglet"
EXIT_QUEUED = 3  # `paglets send`: the message was queued, not handled (see `paglets --help`)
API_KEY_VAR = "PAGLETS_TEST_API_KEY"


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run the ``paglets`` client CLI to completion."""
    cmd = [sys.executable, "-m", "paglets.cli.client", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or cli_env(), timeout=timeout)


def run_node_to_exit(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``paglets-node`` when it is expected to refuse to start."""
    cmd = [sys.executable, "-m", "paglets.cli.node", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess, code: int = 1) -> str:
    assert result.returncode == code, f"exit {result.returncode}: {result.stdout} {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stderr


def closed_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def alpha(node_process):
    return node_process("alpha")


# -- the client round trip --------------------------------------------------------
def test_node_prints_its_addresses_before_ready(alpha):
    assert alpha.address.startswith("tcp://127.0.0.1:")
    assert alpha.http_address.startswith("http://127.0.0.1:")


def test_node_without_http_prints_no_http_line(node_process):
    node = node_process("quiet", "--no-http")
    assert node.address.startswith("tcp://127.0.0.1:")
    assert node.http_address is None


def test_echo_paglet_round_trip_with_readable_output(alpha):
    address = alpha.address
    health = dict(line.split(None, 1) for line in ok(run_cli("health", address)).splitlines())
    assert health["name"] == "alpha"
    assert health["address"] == address

    created = ok(run_cli("create", address, ECHO, "--id", "echo-1", "--state", '{"greeting": "hey"}'))
    assert created.split() == ["agent_id", "echo-1", "address", address]
    assert ok(run_cli("send", address, "echo-1", "echo", "--arg", '"hi"')) == "hi\n"
    assert json.loads(ok(run_cli("send", address, "echo-1", "echo", "--args", '{"a": [1, 2]}'))) == {"a": [1, 2]}
    assert ok(run_cli("send", address, "echo-1", "add", "--arg", "4", "--priority", "9")) == "4\n"

    table = ok(run_cli("ls", address)).splitlines()
    header = ["AGENT", "ID", "CLASS", "STATE", "PHASE", "PID", "QUEUED", "IN-FLIGHT", "DELIVERED", "FAILED"]
    assert table[0].split() == header
    assert table[1].split()[:4] == ["echo-1", ECHO, "active", "ready"]
    assert table[1].split()[-4:] == ["0", "0", "3", "0"]
    assert '"greeting":"hey"' in ok(run_cli("ls", "--state", address))

    assert ok(run_cli("dispose", address, "echo-1")) == "disposed echo-1\n"
    assert ok(run_cli("ls", address)) == "no paglets\n"


def test_every_command_prints_json_with_the_json_flag(alpha):
    address = alpha.address
    health = json.loads(ok(run_cli("--json", "health", address)))
    assert health["name"] == "alpha" and health["active_count"] == 0

    created = json.loads(ok(run_cli("--json", "create", address, ECHO, "--init", '{"n": 1}')))
    agent_id = created["agent_id"]
    assert created["address"] == address
    assert json.loads(ok(run_cli("--json", "send", address, agent_id, "echo", "--arg", '"hi"'))) == "hi"
    assert json.loads(ok(run_cli("--json", "send", address, agent_id, "count", "--oneway"))) == {
        "agent_id": agent_id,
        "queued": True,
    }

    agents = json.loads(ok(run_cli("--json", "ls", "--state", address)))
    assert [a["agent_id"] for a in agents] == [agent_id]
    assert agents[0]["state"]["created_with"] == {"n": 1}
    assert agents[0]["state"]["__class__"] == "paglets.examples.echo:EchoState"

    assert json.loads(ok(run_cli("--json", "dispose", address, agent_id))) == {"agent_id": agent_id, "disposed": True}
    assert json.loads(ok(run_cli("--json", "ls", address))) == []


def test_the_exit_statuses_are_documented_in_the_help():
    for args in (("--help",), ("send", "--help")):
        text = " ".join(ok(run_cli(*args)).split())
        assert f"{EXIT_QUEUED} the message was queued" in text, args


# -- client errors ---------------------------------------------------------------
def test_unknown_agent_exits_1_with_an_error_line(alpha):
    stderr = failed(run_cli("send", alpha.address, "nobody", "echo"))
    assert stderr.startswith("Error: InvalidAgentError: ")
    assert "'nobody'" in stderr
    stderr = failed(run_cli("dispose", alpha.address, "nobody"))
    assert stderr.startswith("Error: InvalidAgentError: ")


def test_handler_error_exits_1_naming_the_remote_error(alpha):
    agent_id = json.loads(ok(run_cli("--json", "create", alpha.address, ECHO)))["agent_id"]
    stderr = failed(run_cli("send", alpha.address, agent_id, "fail", "--arg", '"boom"'))
    assert stderr.strip() == "Error: RemoteHostError: ValueError: boom"


def test_unreachable_address_exits_1_naming_the_address():
    address = f"tcp://127.0.0.1:{closed_loopback_port()}"
    stderr = failed(run_cli("--timeout", "2", "health", address))
    assert stderr.startswith("Error: NodeUnreachableError: ")
    assert address in stderr


def test_bad_address_or_json_exits_1_and_bad_usage_exits_2():
    assert failed(run_cli("health", "localhost:7700")).startswith("Error: ValueError: node address")
    stderr = failed(run_cli("send", "tcp://127.0.0.1:1", "a", "echo", "--arg", "{nope"))
    assert stderr.startswith("Error: ValueError: --arg is not valid JSON")
    stderr = failed(run_cli("create", "tcp://127.0.0.1:1", ECHO, "--state", "[1]"))
    assert stderr.startswith("Error: ValueError: --state must be a JSON object")
    failed(run_cli("send", "tcp://127.0.0.1:1", "a", "echo", "--priority", "11"), code=2)


# -- movement ---------------------------------------------------------------------
@pytest.fixture
def two(node_process):
    return node_process("alpha"), node_process("beta")


def test_paglet_dispatched_cloned_and_retracted_from_the_command_line(two):
    alpha, beta = two
    ok(run_cli("create", alpha.address, ECHO, "--id", "rover", "--state", '{"greeting": "hey"}'))

    assert ok(run_cli("dispatch", alpha.address, "rover", beta.address, "--timeout", "5")) == f"{beta.address}\n"
    assert ok(run_cli("send", beta.address, "rover", "echo", "--arg", '"on beta"')) == "on beta\n"

    copy = json.loads(ok(run_cli("--json", "clone", beta.address, "rover", alpha.address, "--retries", "1")))
    assert copy["address"] == alpha.address and copy["agent_id"] != "rover"
    assert ok(run_cli("send", alpha.address, copy["agent_id"], "echo", "--arg", '"copy"')) == "copy\n"

    local = ok(run_cli("clone", beta.address, "rover")).split()
    assert local[0] == "agent_id" and local[2:] == ["address", beta.address]

    moved = json.loads(ok(run_cli("--json", "retract", beta.address, "rover", "--to", alpha.address)))
    assert moved == {"agent_id": "rover", "address": alpha.address}
    assert json.loads(ok(run_cli("--json", "send", alpha.address, "rover", "history"))) == ["echo", "history"]
    assert [a["agent_id"] for a in json.loads(ok(run_cli("--json", "ls", beta.address)))] == [local[1]]


def test_refused_move_exits_1_with_transfer_error_and_the_paglet_stays(two):
    alpha, beta = two
    agent_id = json.loads(ok(run_cli("--json", "create", alpha.address, ECHO)))["agent_id"]
    stderr = failed(run_cli("dispatch", alpha.address, agent_id, beta.address, "--require-capability", "gpu"))
    assert stderr.startswith("Error: TransferError: ") and "gpu" in stderr
    assert ok(run_cli("send", alpha.address, agent_id, "echo", "--arg", '"still here"')) == "still here\n"


def test_clone_terms_without_a_target_are_a_usage_error():
    stderr = failed(run_cli("clone", "tcp://127.0.0.1:1", "a", "--timeout", "3"), code=2)
    assert "--timeout only apply to a move" in stderr
    failed(run_cli("retract", "tcp://127.0.0.1:1", "a"), code=2)  # --to is required
    stderr = failed(run_cli("dispatch", "tcp://127.0.0.1:1", "a", "localhost:7700"))
    assert stderr.startswith("Error: ValueError: node address 'localhost:7700'")


# -- parking ----------------------------------------------------------------------
PARKING = "tests.sample_paglets:SerialParkingPaglet"  # one handler at a time: notes keep delivery order


def table_rows(output: str) -> dict[str, list[str]]:
    """``paglets ls`` rows by agent id (cells split on whitespace; the header is left out)."""
    return {line.split()[0]: line.split() for line in output.splitlines()[1:]}


def test_paglet_parked_from_the_command_line_lists_inactive_with_its_queued_mail(alpha):
    address = alpha.address
    ok(run_cli("create", address, PARKING, "--id", "napper"))
    ok(run_cli("create", address, ECHO, "--id", "awake"))
    assert ok(run_cli("send", address, "napper", "note", "--arg", '"a"')) == "1\n"

    assert ok(run_cli("deactivate", address, "napper", "--reason", "nap", "--queue-only")) == "deactivated napper\n"
    queued = run_cli("send", address, "napper", "note", "--arg", '"b"')
    assert queued.returncode == EXIT_QUEUED and queued.stderr == "", queued  # not an error, and not a reply
    said = r"message [0-9a-f]{32} was queued for paglet 'napper' on node alpha: .*parked.*\n"
    assert re.fullmatch(said, queued.stdout)
    queued = run_cli("--json", "send", address, "napper", "note", "--arg", '"c"')
    assert queued.returncode == EXIT_QUEUED and queued.stderr == "", queued
    as_json = json.loads(queued.stdout)
    assert sorted(as_json) == ["agent_id", "message_id", "queued", "reason"]
    assert (as_json["agent_id"], as_json["queued"]) == ("napper", True)
    assert as_json["reason"].startswith(f"message {as_json['message_id']} was queued for paglet 'napper'")
    assert ok(run_cli("send", address, "napper", "note", "--arg", '"d"', "--oneway")) == "queued for napper\n"

    listing = ok(run_cli("ls", address))
    assert listing.splitlines()[0].split()[3:7] == ["STATE", "PHASE", "PID", "QUEUED"]
    rows = table_rows(listing)
    assert rows["napper"][2:] == ["inactive", "inactive", "-", "3", "-", "-", "-"]
    assert rows["awake"][2:4] == ["active", "ready"]
    assert list(table_rows(ok(run_cli("ls", "--inactive-only", address)))) == ["napper"]
    assert list(table_rows(ok(run_cli("ls", "--active-only", address)))) == ["awake"]
    [parked] = json.loads(ok(run_cli("--json", "ls", "--inactive-only", "--state", address)))
    assert parked["queued_messages"] == 3 and parked["reason"] == "nap"
    assert parked["policy"]["activate_on_message"] is False and parked["state"]["seen"] == ["a"]

    assert ok(run_cli("activate", address, "napper")) == "activated napper\n"
    assert json.loads(ok(run_cli("send", address, "napper", "seen"))) == ["a", "b", "c", "d"]
    assert table_rows(ok(run_cli("ls", address)))["napper"][2:4] == ["active", "ready"]


def test_deactivate_policy_options_reach_the_node(alpha):
    address = alpha.address
    ok(run_cli("create", address, PARKING, "--id", "sleeper"))
    parked = json.loads(
        ok(run_cli("--json", "deactivate", address, "sleeper", "--no-queue", "--wake-on-startup",
                   "--wake-at", "2100-01-01T00:00:00Z"))
    )  # fmt: skip
    assert parked == {"agent_id": "sleeper", "address": address, "active": False, "was_active": True}
    [listed] = json.loads(ok(run_cli("--json", "ls", "--inactive-only", address)))
    assert listed["policy"] == {
        "activate_on_message": True, "queue_messages_when_inactive": False,
        "activate_on_startup": True, "activate_at": 4102444800.0,
    }  # fmt: skip
    assert json.loads(ok(run_cli("--json", "activate", address, "sleeper")))["active"] is True
    stderr = failed(run_cli("activate", address, "nobody"))
    assert stderr.startswith("Error: InvalidAgentError: ") and "'nobody'" in stderr


def test_bad_parking_options_are_usage_errors():
    stderr = failed(run_cli("deactivate", "tcp://127.0.0.1:1", "a", "--wake-at", "teatime"), code=2)
    assert "neither UNIX seconds nor an ISO 8601 time" in stderr
    failed(run_cli("deactivate", "tcp://127.0.0.1:1", "a", "--wake-at", "-5"), code=2)
    stderr = failed(run_cli("ls", "tcp://127.0.0.1:1", "--active-only", "--inactive-only"), code=2)
    assert "not both" in stderr


# -- configuration and API keys -----------------------------------------------------
def test_sample_config_loads_with_the_port_overridden(node_process):
    node = node_process("configured", "--config", str(ROOT / "configs" / "node.toml"), "--port", "0")
    assert not node.address.endswith(":7700")
    assert json.loads(ok(run_cli("--json", "health", node.address)))["name"] == "configured"


def test_unknown_config_key_is_a_usage_error(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text('port = 0\nflavour = "mint"\n')
    stderr = failed(run_node_to_exit("--config", str(config)), code=2)
    assert "unknown key(s) flavour" in stderr


def test_node_with_api_key_refuses_clients_without_it(node_process):
    node = node_process("keyed", "--api-key-env", API_KEY_VAR, env={API_KEY_VAR: "s3cret"})
    assert failed(run_cli("health", node.address)).startswith("Error: AuthenticationError: ")
    assert failed(run_cli("--api-key", "wrong", "health", node.address)).startswith("Error: AuthenticationError: ")
    keyed_env = cli_env(**{API_KEY_VAR: "s3cret"})
    health = ok(run_cli("--json", "--api-key-env", API_KEY_VAR, "health", node.address, env=keyed_env))
    assert json.loads(health)["name"] == "keyed"
    assert "keyed" in ok(run_cli("--api-key", "s3cret", "health", node.address))


def test_api_key_env_that_is_unset_is_a_usage_error(tmp_path):
    env_without = {k: v for k, v in cli_env().items() if k != API_KEY_VAR}
    stderr = failed(run_cli("--api-key-env", API_KEY_VAR, "health", "tcp://127.0.0.1:1", env=env_without), code=2)
    assert API_KEY_VAR in stderr
    stderr = failed(run_node_to_exit("--api-key-env", API_KEY_VAR, "--data-dir", str(tmp_path)), code=2)
    assert API_KEY_VAR in stderr


# -- mesh options ------------------------------------------------------------------
def test_tags_and_properties_show_up_in_health(node_process, tmp_path):
    tagged = node_process(
        "tagged", "--tag", "gpu", "--tag", "eu", "--property", "region=eu-west", "--property", "rack=7"
    )
    health = json.loads(ok(run_cli("--json", "health", tagged.address)))
    assert health["tags"] == ["eu", "gpu"]
    assert health["properties"] == {"region": "eu-west", "rack": "7"}

    config = tmp_path / "node.toml"
    config.write_text('tag = "solo"\nproperty = { zone = "b", "a=b" = "c" }\n')
    configured = node_process("configured", "--config", str(config))
    health = json.loads(ok(run_cli("--json", "health", configured.address)))
    assert health["tags"] == ["solo"] and health["properties"] == {"zone": "b", "a": "b=c"}


def test_property_without_an_equals_sign_is_a_usage_error(tmp_path):
    stderr = failed(run_node_to_exit("--property", "region", "--data-dir", str(tmp_path)), code=2)
    assert "'region' is not KEY=VALUE" in stderr
    stderr = failed(run_node_to_exit("--property", "=eu", "--data-dir", str(tmp_path)), code=2)
    assert "is not KEY=VALUE" in stderr


# -- off loopback: a key, Curve or --insecure (the --insecure runs are in tests/integration/test_exposure.py)
EXPOSED = [
    ("--bind", "0.0.0.0"),
    ("--bind", "::"),
    ("--bind-public",),
    ("--bind", "auto"),
    ("--bind", "192.0.2.10"),
    ("--bind", "node.example.org"),
    ("--public-url", "tcp://node.example.org:7700"),
    ("--connect", "tcp://192.0.2.1:7800"),
]


@pytest.mark.parametrize("flags", EXPOSED, ids=" ".join)
def test_node_off_loopback_without_a_key_or_curve_refuses_to_start_naming_the_fix(tmp_path, flags):
    data = tmp_path / "data"
    ports = ("--port", "0", "--http-port", "0")
    stderr = failed(run_node_to_exit("--name", "open", *flags, *ports, "--data-dir", str(data)))
    [line] = stderr.strip().splitlines()
    assert line.startswith("Error: cannot start node open") and "HostError: node open would be reachable on" in line
    for fix in ("--api-key-env VAR", "--curve-secret FILE --curve-allow DIR", "--insecure"):
        assert fix in line
    assert not data.exists()  # refused before anything was bound or written


def test_node_on_loopback_needs_no_key_and_is_not_insecure(node_process):
    for name, bind in (("local", "127.0.0.2"), ("named", "localhost")):
        node = node_process(name, "--bind", bind)
        health = json.loads(ok(run_cli("--json", "health", node.address)))
        assert health["insecure"] is False, name
        assert "INSECURE" not in node.log_path.read_text()


# -- CurveZMQ -----------------------------------------------------------------------
def generated_keys(directory, name: str) -> tuple[str, str]:
    lines = ok(run_cli("keys", "generate", str(directory), "--name", name)).splitlines()
    paths = dict(line.split(None, 1) for line in lines)
    return paths["public"], paths["secret"]


def test_keys_generate_writes_a_key_pair_and_never_overwrites_it(tmp_path):
    public, secret = generated_keys(tmp_path / "keys", "alice")
    assert (public, secret) == (str(tmp_path / "keys" / "alice.key"), str(tmp_path / "keys" / "alice.key_secret"))
    before = open(secret).read()
    assert "secret-key" in before and "secret-key" not in open(public).read()

    stderr = failed(run_cli("keys", "generate", str(tmp_path / "keys"), "--name", "alice"))
    assert stderr.startswith("Error: FileExistsError: ") and "not overwriting" in stderr
    assert open(secret).read() == before
    created = json.loads(ok(run_cli("--json", "keys", "generate", str(tmp_path / "keys"))))
    assert created == {
        "public": str(tmp_path / "keys" / "paglets.key"),
        "secret": str(tmp_path / "keys" / "paglets.key_secret"),
    }


def test_curve_node_lets_in_allowed_client_keys_only(node_process, tmp_path):
    node_public, node_secret = generated_keys(tmp_path / "server", "node")
    client_public, client_secret = generated_keys(tmp_path / "client", "client")
    _, stranger_secret = generated_keys(tmp_path / "stranger", "stranger")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(client_public, allowed)
    secure = node_process("secure", "--curve-secret", node_secret, "--curve-allow", str(allowed), "--no-http")

    client = ("--curve-secret", client_secret, "--curve-server-key", node_public)
    assert json.loads(ok(run_cli(*client, "--json", "health", secure.address)))["name"] == "secure"
    ok(run_cli(*client, "create", secure.address, ECHO, "--id", "echo-1"))
    assert ok(run_cli(*client, "send", secure.address, "echo-1", "echo", "--arg", '"sealed"')) == "sealed\n"

    stranger = ("--curve-secret", stranger_secret, "--curve-server-key", node_public)
    stderr = failed(run_cli("--timeout", "2", *stranger, "health", secure.address))
    assert stderr.startswith(f"Error: NodeUnreachableError: cannot reach node {secure.address} for 'health'")
    assert "the node does not accept our key" in stderr
    stderr = failed(run_cli("--timeout", "1", "health", secure.address))  # no Curve at all
    assert stderr.startswith(f"Error: NodeUnreachableError: cannot reach node {secure.address} for 'health'")


def test_curve_options_that_miss_their_partner_are_usage_errors(tmp_path):
    public, secret = generated_keys(tmp_path, "solo")
    stderr = failed(run_node_to_exit("--curve-secret", secret, "--data-dir", str(tmp_path)), code=2)
    assert "--curve-secret needs --curve-allow" in stderr
    stderr = failed(run_node_to_exit("--curve-allow", str(tmp_path), "--data-dir", str(tmp_path)), code=2)
    assert "--curve-allow: give --curve-secret too" in stderr
    stderr = failed(run_node_to_exit("--curve-secret", str(tmp_path / "missing"), "--data-dir", str(tmp_path)), code=2)
    assert "does not exist" in stderr
    failed(run_cli("--curve-server-key", public, "health", "tcp://127.0.0.1:1"), code=2)


# -- stopping ---------------------------------------------------------------------
def create_three_paglets(address: str) -> set[int]:
    """Three paglets on the node; their workers' pids."""
    client = HostClient(timeout=10)
    return {client.info(address, client.create(address, ECHO).agent_id)["pid"] for _ in range(3)}


def test_sigterm_stops_the_node_and_every_worker(alpha):
    workers = create_three_paglets(alpha.address)
    descendants = child_pids(alpha.pid)
    assert len(workers) == 3 and workers < descendants  # and the template process
    assert alpha.stop(signal.SIGTERM) == 0
    wait_until(lambda: not any(pid_alive(pid) for pid in descendants), 5, "the node's workers to exit")
    assert "stopped" in alpha.log_path.read_text()


def test_ctrl_c_stops_the_node_with_exit_code_0(alpha):
    assert alpha.stop(signal.SIGINT) == 0
    assert "Traceback" not in alpha.log_path.read_text()


def test_sigkill_of_the_node_takes_its_workers_and_template_down(alpha):
    workers = create_three_paglets(alpha.address)
    descendants = child_pids(alpha.pid)
    assert len(workers) == 3 and workers < descendants  # and the template process
    assert alpha.stop(signal.SIGKILL) == -signal.SIGKILL
    wait_until(lambda: not any(pid_alive(pid) for pid in descendants), 5, "orphaned workers to exit")


def test_port_in_use_exits_1_with_a_clear_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_node_to_exit("--name", "late", "--port", str(port), "--no-http", "--data-dir", str(tmp_path))
    stderr = failed(result)
    assert f"Error: cannot start node late on 127.0.0.1 (port {port}, http off): ZMQError: " in stderr
    assert "Address already in use" in stderr
    assert result.stdout == ""


def test_http_port_in_use_exits_1_with_a_clear_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_node_to_exit(
            "--name", "late", "--port", "0", "--http-port", str(port), "--data-dir", str(tmp_path)
        )
    stderr = failed(result)
    assert f"Error: cannot start node late on 127.0.0.1 (port 0, http port {port}): " in stderr
    assert "Address already in use" in stderr


# -- what a new user tried (issue 10) ---------------------------------------------
def test_global_options_work_after_the_command_too(alpha, tmp_path):
    address = alpha.address
    assert json.loads(ok(run_cli("ls", address, "--json"))) == []
    created = json.loads(ok(run_cli("create", address, ECHO, "--id", "late-json", "--json")))
    assert created == {"agent_id": "late-json", "address": address}
    assert json.loads(ok(run_cli("send", address, "late-json", "echo", "--arg", '"hi"', "--json"))) == "hi"
    assert json.loads(ok(run_cli("health", address, "--timeout", "5", "--json")))["name"] == "alpha"
    assert json.loads(ok(run_cli("ls", "--json", address)))[0]["agent_id"] == "late-json"
    keys = json.loads(ok(run_cli("keys", "generate", str(tmp_path), "--json")))
    assert keys == {"public": str(tmp_path / "paglets.key"), "secret": str(tmp_path / "paglets.key_secret")}


def test_api_key_options_work_after_the_command_too(node_process):
    node = node_process("keyed", "--api-key-env", API_KEY_VAR, env={API_KEY_VAR: "s3cret"})
    keyed_env = cli_env(**{API_KEY_VAR: "s3cret"})
    health = ok(run_cli("health", node.address, "--api-key-env", API_KEY_VAR, "--json", env=keyed_env))
    assert json.loads(health)["name"] == "keyed"
    assert json.loads(ok(run_cli("ls", node.address, "--api-key", "s3cret", "--json"))) == []
    assert failed(run_cli("ls", node.address, "--api-key", "wrong")).startswith("Error: AuthenticationError: ")
    stderr = failed(run_cli("--api-key", "s3cret", "ls", node.address, "--api-key-env", API_KEY_VAR), code=2)
    assert "give --api-key-env or --api-key, not both" in stderr


def test_activate_and_deactivate_say_what_is_true(alpha):
    address = alpha.address
    for command in ("activate", "deactivate"):
        stderr = failed(run_cli(command, address, "nobody"))
        assert stderr == "Error: InvalidAgentError: no paglet 'nobody' on node alpha (neither active nor parked)\n"

    ok(run_cli("create", address, ECHO, "--id", "sunny"))
    assert ok(run_cli("activate", address, "sunny")) == "sunny is already active\n"
    as_json = json.loads(ok(run_cli("--json", "activate", address, "sunny")))
    assert as_json == {"agent_id": "sunny", "address": address, "active": True, "was_active": True}

    assert ok(run_cli("deactivate", address, "sunny")) == "deactivated sunny\n"
    assert ok(run_cli("deactivate", address, "sunny")) == "sunny is already parked\n"
    as_json = json.loads(ok(run_cli("--json", "deactivate", address, "sunny")))
    assert as_json == {"agent_id": "sunny", "address": address, "active": False, "was_active": False}

    assert json.loads(ok(run_cli("--json", "activate", address, "sunny")))["was_active"] is False
    assert ok(run_cli("send", address, "sunny", "echo", "--arg", '"awake"')) == "awake\n"


@pytest.fixture
def silent_node():
    """A ROUTER on loopback that accepts connections and requests and never answers: a node that hangs."""
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    yield f"tcp://127.0.0.1:{port}"
    router.close(0)


def test_timeout_is_honoured_by_every_command_wherever_it_is_given(silent_node):
    stderr = failed(run_cli("ls", silent_node, "--timeout", "0.5"))
    assert stderr == f"Error: RequestTimeoutError: no reply from {silent_node} to 'list' within 0.5 s\n"
    # Above the client's 10 s default for reads (today: capped at 10 s whatever --timeout says).
    stderr = failed(run_cli("--timeout", "10.5", "health", silent_node))
    assert stderr == f"Error: RequestTimeoutError: no reply from {silent_node} to 'health' within 10.5 s\n"


def test_timeout_before_a_move_command_is_the_moves_time_limit(alpha):
    ok(run_cli("create", alpha.address, ECHO, "--id", "patient"))
    stderr = failed(run_cli("--timeout", "400", "dispatch", alpha.address, "patient", "tcp://127.0.0.1:1"))
    assert stderr.startswith("Error: TransferError: ticket timeout 400.0 s is above the 300 s node alpha allows")


def test_the_help_says_the_timeout_default_and_that_options_go_anywhere():
    text = " ".join(ok(run_cli("--help")).split())
    assert "Seconds to wait for a node's answer, for every command (default 30)" in text
    assert "Options may come before or after the command" in text
    ls_help = " ".join(ok(run_cli("ls", "--help")).split())
    assert "--json Print machine-readable JSON." in ls_help
    assert "--timeout SECONDS" in ls_help

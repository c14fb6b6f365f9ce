"""``paglets-node``: run one paglets node in the foreground.

Once the node serves, stdout gets exactly these lines (scripts and test
fixtures parse them), then nothing more; logs go to stderr::

    address tcp://HOST:PORT      (relay+tcp://RELAY:PORT/NAME with --connect)
    http http://HOST:PORT        (left out with --no-http or --connect)
    ready

SIGTERM or SIGINT stops the node (workers, template process, sockets) and
exits 0. A node that cannot start prints one ``Error:`` line and exits 1.

Options may also come from a TOML file (``--config``) whose keys are the
option names with underscores (``http_port = 0``); command-line flags win.
To add an option: one ``@click.option`` on :func:`main`, plus its Host keyword
in :data:`HOST_KWARGS` (or a line in :func:`host_kwargs` when it is derived).
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import click

from paglets.cli.common import (
    PORT,
    announce,
    api_key_from_env,
    check_name,
    config_option,
    configure_logging,
    curve_server_options,
    install_stop_handlers,
    log_level_option,
)
from paglets.client.transport import check_address
from paglets.node.host import DEFAULT_DATA_ROOT, Host
from paglets.wire import protocol

log = logging.getLogger("paglets.cli.node")

# Option name -> Host keyword, for options passed through unchanged.
HOST_KWARGS = {
    "name": "name",
    "bind": "host",
    "port": "port",
    "preload": "preload",
    "heartbeat": "heartbeat_interval",
    "max_message_size": "max_message_size",
    "mailbox_limit": "mailbox_limit",
    "checkpoint_interval": "checkpoint_interval",
    "connect": "connect_to",
    "public_url": "public_url",
    "mesh": "mesh",
    "mesh_version": "mesh_version",
    "gossip_interval": "mesh_gossip_interval",
    "offline_after": "mesh_offline_after",
    "lan_discovery": "mesh_lan_discovery",
    "curve_secret": "curve_secret",
    "curve_allow": "curve_allow",
    "curve_server_key": "curve_server_key",
    "bind_public": "bind_public",
}
SECONDS = click.FloatRange(min=0, min_open=True)


def default_node_name() -> str:
    """This machine's hostname, cut down to what a node name may hold."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).lstrip("._-")[:128]
    return name or "paglets-node"


def _check_relay(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        address = check_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not address.startswith("tcp://"):
        raise click.BadParameter(f"{value!r}: give the relay's own tcp://HOST:PORT")
    return address


def _check_peers(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    try:
        return [check_address(value) for value in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _parse_properties(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    properties: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        properties[key.strip()] = value
    return properties


def host_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """The Host keywords for parsed command-line ``options``."""
    _check_curve_options(options)
    kwargs = {keyword: options[name] for name, keyword in HOST_KWARGS.items()}
    kwargs["preload"] = list(options["preload"])
    kwargs["http_port"] = options["http_port"] if options["http"] else None
    data_dir = options["data_dir"]
    kwargs["persistence_dir"] = Path(data_dir).expanduser() if data_dir else DEFAULT_DATA_ROOT / options["name"]
    if options["api_key_env"]:
        kwargs["api_key"] = api_key_from_env(options["api_key_env"])
    kwargs["peers"] = list(options["peer"])
    kwargs["tags"] = list(options["tag"])
    kwargs["properties"] = dict(options["property"])
    return kwargs


def _check_curve_options(options: dict[str, Any]) -> None:
    if options["curve_secret"] is None:
        given = [f"--{name.replace('_', '-')}" for name in ("curve_allow", "curve_server_key") if options[name]]
        if given:
            raise click.UsageError(f"{' and '.join(given)}: give --curve-secret too")
    elif options["curve_allow"] is None:
        raise click.UsageError("--curve-secret needs --curve-allow: the directory of the client keys to let in")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@config_option
@click.option(
    "--name",
    default=default_node_name,
    show_default="this machine's hostname",
    callback=check_name,
    help="Node name, unique in the mesh.",
)
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on: an address, 0.0.0.0 for all, or auto for this machine's LAN address.",
)
@click.option(
    "--bind-public",
    is_flag=True,
    help="Listen on every interface and advertise this machine's LAN address (overrides --bind).",
)
@click.option(
    "--public-url",
    metavar="URL",
    default=None,
    help="Address to advertise instead of tcp://BIND:PORT (a node behind NAT or a port forward).",
)
@click.option(
    "--connect",
    metavar="tcp://RELAY:PORT",
    default=None,
    callback=_check_relay,
    help="Listen nowhere: dial out to this relay and be reached as relay+tcp://RELAY:PORT/NAME (no HTTP shim).",
)
@click.option("--port", type=PORT, default=7700, show_default=True, help="Front (ZeroMQ) port; 0 picks a free one.")
@click.option("--http-port", type=PORT, default=7701, show_default=True, help="HTTP shim port; 0 picks a free one.")
@click.option("--http/--no-http", default=True, show_default=True, help="Start the HTTP shim (or not).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    show_default="~/.local/share/paglets/NAME",
    help="Where the node keeps its records and the paglets' work directories.",
)
@click.option("--api-key-env", metavar="VAR", default=None, help="Require the API key held in environment VAR.")
@click.option(
    "--preload",
    metavar="MODULE",
    multiple=True,
    help="Module the template process imports before forking workers (repeatable).",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0, min_open=True),
    default=0.5,
    show_default=True,
    help="Seconds between node/worker heartbeats; 3 missed ones mark a worker crashed.",
)
@click.option(
    "--max-message-size",
    type=click.IntRange(min=1),
    default=protocol.DEFAULT_MAX_MESSAGE_SIZE,
    show_default=True,
    help="Largest request the front socket accepts, in bytes.",
)
@click.option(
    "--checkpoint-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds between checkpoints of active paglets; after a crash they come back from the last one. "
    "Off by default.",
)
@click.option(
    "--mailbox-limit",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Messages a paglet's mailbox may hold before senders get OverloadedError.",
)
@click.option(
    "--peer",
    metavar="ADDR",
    multiple=True,
    callback=_check_peers,
    help="Node address (tcp://... or relay+tcp://.../NAME) to gossip with (repeatable).",
)
@click.option("--tag", metavar="TAG", multiple=True, help="Tag this node carries in the mesh (repeatable).")
@click.option(
    "--property",
    metavar="KEY=VALUE",
    multiple=True,
    callback=_parse_properties,
    help="Property this node carries in the mesh (repeatable).",
)
@click.option("--mesh/--no-mesh", default=True, show_default=True, help="Take part in the mesh gossip (or not).")
@click.option("--mesh-version", metavar="V", default=None, help="Code version to advertise (default: paglets').")
@click.option("--gossip-interval", type=SECONDS, default=1.0, show_default=True, help="Seconds between gossip rounds.")
@click.option(
    "--offline-after",
    type=SECONDS,
    default=10.0,
    show_default=True,
    help="Seconds without news after which a node counts as offline.",
)
@click.option("--lan-discovery", is_flag=True, help="Find other nodes on the local network by UDP multicast.")
@curve_server_options(
    secret_help="This node's .key_secret file: serve (and dial out) with CurveZMQ. Needs --curve-allow.",
    allow_help="Directory of the public .key files of the clients let in.",
)
@click.option(
    "--curve-server-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Public .key file of the nodes and relay this node connects to (default: its own public key).",
)
@log_level_option
def main(**options: Any) -> None:
    """Run a paglets node until SIGTERM or Ctrl-C."""
    configure_logging(options["log_level"])
    sys.exit(run_node(host_kwargs(options)))


def run_node(kwargs: dict[str, Any]) -> int:
    """Start a node, announce it on stdout, serve until a stop signal; the exit code."""
    stop_requests = install_stop_handlers()  # before starting: an early SIGTERM still stops cleanly
    try:
        host = Host(**kwargs)
        host.start_background()
    except Exception as exc:
        log.debug("start failed", exc_info=True)
        click.echo(f"Error: cannot start node {_describe(kwargs)}: {type(exc).__name__}: {exc}", err=True)
        return 1
    announce([f"address {host.address}", *([f"http {host.http_address}"] if host.http_address else [])])
    signum = stop_requests.get()
    log.info("%s received: parking paglets and stopping node %s", signal.Signals(signum).name, host.name)
    try:
        host.shutdown()  # active paglets are parked on disk and wake when the node starts again
    except Exception:
        log.exception("node %s did not stop cleanly", host.name)
        return 1
    log.info("node %s stopped", host.name)
    return 0


def _describe(kwargs: dict[str, Any]) -> str:
    if kwargs.get("connect_to"):
        return f"{kwargs['name']} via relay {kwargs['connect_to']}"
    http = "http off" if kwargs["http_port"] is None else f"http port {kwargs['http_port']}"
    where = "all interfaces" if kwargs["bind_public"] else kwargs["host"]
    return f"{kwargs['name']} on {where} (port {kwargs['port']}, {http})"


if __name__ == "__main__":
    main()

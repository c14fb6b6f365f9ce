"""``paglets-node``: run one paglets node in the foreground.

Once the node serves, stdout gets exactly these lines (scripts and test
fixtures parse them), then nothing more; logs go to stderr::

    address tcp://HOST:PORT
    http http://HOST:PORT        (left out with --no-http)
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
import queue
import re
import signal
import socket
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from paglets.cli.common import LOG_LEVELS, api_key_from_env, configure_logging
from paglets.runtime.host import DEFAULT_DATA_ROOT, Host
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
}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PORT = click.IntRange(0, 65535)


def default_node_name() -> str:
    """This machine's hostname, cut down to what a node name may hold."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).lstrip("._-")[:128]
    return name or "paglets-node"


def _check_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not protocol.AGENT_ID_PATTERN.match(value):
        raise click.BadParameter(f"{value!r}: use 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    return value


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Make the TOML file's keys the defaults of the other options (so flags still win)."""
    if value is None:
        return None
    try:
        with open(value, "rb") as stream:
            data = tomllib.load(stream)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"cannot read {value}: {exc}", ctx, param) from None
    options = {p.name: p for p in ctx.command.params if p.name != param.name}
    unknown = sorted(set(data) - set(options))
    if unknown:
        raise click.BadParameter(
            f"unknown key(s) {', '.join(unknown)} in {value}; known keys: {', '.join(sorted(options))}", ctx, param
        )
    for key, item in data.items():
        if getattr(options[key], "multiple", False) and isinstance(item, str):
            data[key] = [item]
    ctx.default_map = {**(ctx.default_map or {}), **data}
    return value


def host_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """The Host keywords for parsed command-line ``options``."""
    kwargs = {keyword: options[name] for name, keyword in HOST_KWARGS.items()}
    kwargs["preload"] = list(options["preload"])
    kwargs["http_port"] = options["http_port"] if options["http"] else None
    data_dir = options["data_dir"]
    kwargs["persistence_dir"] = Path(data_dir).expanduser() if data_dir else DEFAULT_DATA_ROOT / options["name"]
    if options["api_key_env"]:
        kwargs["api_key"] = api_key_from_env(options["api_key_env"])
    return kwargs


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_load_config,
    help="TOML file of option values (keys like http_port); command-line flags override it.",
)
@click.option(
    "--name",
    default=default_node_name,
    show_default="this machine's hostname",
    callback=_check_name,
    help="Node name, unique in the mesh.",
)
@click.option("--bind", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 for all).")
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
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Level of the log written to stderr.",
)
def main(**options: Any) -> None:
    """Run a paglets node until SIGTERM or Ctrl-C."""
    configure_logging(options["log_level"])
    sys.exit(run_node(host_kwargs(options)))


def run_node(kwargs: dict[str, Any]) -> int:
    """Start a node, announce it on stdout, serve until a stop signal; the exit code."""
    stop_requests: queue.SimpleQueue[int] = queue.SimpleQueue()
    _install_stop_handlers(stop_requests)  # before starting: an early SIGTERM still stops cleanly
    try:
        host = Host(**kwargs)
        host.start_background()
    except Exception as exc:
        log.debug("start failed", exc_info=True)
        click.echo(f"Error: cannot start node {_describe(kwargs)}: {type(exc).__name__}: {exc}", err=True)
        return 1
    _announce(host)
    signum = stop_requests.get()
    log.info("%s received: stopping node %s", signal.Signals(signum).name, host.name)
    try:
        host.stop()
    except Exception:
        log.exception("node %s did not stop cleanly", host.name)
        return 1
    log.info("node %s stopped", host.name)
    return 0


def _describe(kwargs: dict[str, Any]) -> str:
    http = "http off" if kwargs["http_port"] is None else f"http port {kwargs['http_port']}"
    return f"{kwargs['name']} on {kwargs['host']} (port {kwargs['port']}, {http})"


def _install_stop_handlers(stop_requests: queue.SimpleQueue[int]) -> None:
    # The handler only queues the signal: SimpleQueue.put is safe in a signal handler,
    # and the main thread, blocked in get(), does the stopping.
    def request_stop(signum: int, frame: Any) -> None:
        stop_requests.put(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)


def _announce(host: Host) -> None:
    lines = [f"address {host.address}"]
    if host.http_address:
        lines.append(f"http {host.http_address}")
    lines.append("ready")
    click.echo("\n".join(lines))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

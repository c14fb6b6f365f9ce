"""``paglets-relay``: run one relay in the foreground, for nodes that cannot accept connections.

Nodes dial out to it with ``paglets-node --connect tcp://RELAY:PORT`` and are
then reached as ``relay+tcp://RELAY:PORT/NAME``. Once the relay serves,
stdout gets exactly these lines (scripts and test fixtures parse them), then
nothing more; logs go to stderr::

    address tcp://HOST:PORT
    http http://HOST:PORT        (GET /health and /metrics; left out with --no-http)
    ready

SIGTERM or SIGINT stops the relay and exits 0. A relay that cannot start
prints one ``Error:`` line and exits 1; so does one that would listen off
loopback with neither ``--api-key-env`` nor ``--curve-secret``, unless
``--insecure`` is given (see :mod:`paglets.exposure`).

Options may also come from a TOML file (``--config``), as for ``paglets-node``.
"""

from __future__ import annotations

import logging
import signal
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
from paglets.client.security import CurveServer
from paglets.node.host import DEFAULT_DATA_ROOT
from paglets.relay.server import RelayServer

log = logging.getLogger("paglets.cli.relay")
SECONDS = click.FloatRange(min=0, min_open=True)


def relay_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """The RelayServer keywords for parsed command-line ``options`` (Curve keys are loaded at start)."""
    if (options["curve_secret"] is None) != (options["curve_allow"] is None):
        raise click.UsageError("give --curve-secret and --curve-allow together")
    data_dir = options["data_dir"]
    return {
        "name": options["name"],
        "bind": options["bind"],
        "port": options["port"],
        "http_port": options["http_port"] if options["http"] else None,
        "data_dir": Path(data_dir).expanduser() if data_dir else DEFAULT_DATA_ROOT / f"relay-{options['name']}",
        "api_key": api_key_from_env(options["api_key_env"]) if options["api_key_env"] else None,
        "heartbeat_interval": options["heartbeat"],
        "queue_limit": options["queue_limit"],
        "queue_ttl": options["queue_ttl"],
        "insecure": options["insecure"],
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@config_option
@click.option("--name", default="relay", show_default=True, callback=check_name, help="Relay name (logs, data dir).")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 for all).")
@click.option("--port", type=PORT, default=7800, show_default=True, help="Relay (ZeroMQ) port; 0 picks a free one.")
@click.option("--http-port", type=PORT, default=7801, show_default=True, help="Health port; 0 picks a free one.")
@click.option("--http/--no-http", default=True, show_default=True, help="Serve GET /health over HTTP (or not).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    show_default="~/.local/share/paglets/relay-NAME",
    help="Where the relay keeps the queued mail of away nodes.",
)
@click.option(
    "--api-key-env", metavar="VAR", default=None, help="Require the API key held in environment VAR (also on /health)."
)
@click.option(
    "--heartbeat",
    type=SECONDS,
    default=0.5,
    show_default=True,
    help="Seconds between the relay's rounds; a node silent for 3 of them is away "
    "(keep it at least the nodes' --heartbeat: they say hello once per theirs).",
)
@click.option(
    "--queue-limit",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Messages queued per away node before senders get OverloadedError.",
)
@click.option(
    "--queue-ttl",
    type=SECONDS,
    default=300.0,
    show_default=True,
    help="Seconds after a node's last sign of life during which mail for it is still queued.",
)
@curve_server_options(
    secret_help="The relay's .key_secret file: serve with CurveZMQ. Needs --curve-allow.",
    allow_help="Directory of the public .key files of the nodes and clients let in.",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=False,
    help="Start even though the relay listens off loopback with neither an API key nor CurveZMQ; "
    "it logs a warning and /health says insecure.",
)
@log_level_option
def main(**options: Any) -> None:
    """Run a paglets relay until SIGTERM or Ctrl-C.

    Nodes that cannot accept connections dial out to it (paglets-node
    --connect) and are reached through it as relay+tcp://RELAY:PORT/NODE.
    Its own address is not a node's: a command sent to it as if it were says so.

    \b
    Examples:
      paglets-relay                                    # tcp://127.0.0.1:7800
      paglets-node --name hidden --connect tcp://127.0.0.1:7800
      paglets health relay+tcp://127.0.0.1:7800/hidden
    """
    configure_logging(options["log_level"])
    sys.exit(run_relay(relay_kwargs(options), options["curve_secret"], options["curve_allow"]))


def run_relay(kwargs: dict[str, Any], curve_secret: str | None = None, curve_allow: str | None = None) -> int:
    """Start a relay, announce it on stdout, serve until a stop signal; the exit code."""
    stop_requests = install_stop_handlers()  # before starting: an early SIGTERM still stops cleanly
    try:
        if curve_secret is not None:
            kwargs["curve"] = CurveServer.from_files(curve_secret, curve_allow, f"paglets-relay-{kwargs['name']}")
        relay = RelayServer(**kwargs)
        relay.start()
    except Exception as exc:
        log.debug("start failed", exc_info=True)
        click.echo(f"Error: cannot start relay {_describe(kwargs)}: {type(exc).__name__}: {exc}", err=True)
        return 1
    announce([f"address {relay.address}", *([f"http {relay.http_address}"] if relay.http_address else [])])
    signum = stop_requests.get()
    log.info("%s received: stopping relay %s", signal.Signals(signum).name, relay.name)
    try:
        relay.stop()
    except Exception:
        log.exception("relay %s did not stop cleanly", relay.name)
        return 1
    log.info("relay %s stopped", relay.name)
    return 0


def _describe(kwargs: dict[str, Any]) -> str:
    http = "http off" if kwargs["http_port"] is None else f"http port {kwargs['http_port']}"
    return f"{kwargs['name']} on {kwargs['bind']} (port {kwargs['port']}, {http})"


if __name__ == "__main__":
    main(prog_name="paglets-relay")

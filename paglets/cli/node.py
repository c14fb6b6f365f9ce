"""``paglets-node``: run one paglets node in the foreground.

Once the node serves, stdout gets exactly these lines (scripts and test
fixtures parse them), then nothing more; logs go to stderr::

    address tcp://HOST:PORT      (relay+tcp://RELAY:PORT/NAME with --connect)
    http http://HOST:PORT        (left out with --no-http or --connect)
    ready

SIGTERM or SIGINT stops the node: it parks every active paglet on disk (they
wake when a node starts again on the same data directory), then stops its
workers, template process and sockets, and exits 0. Handlers still running
after ``--stop-grace`` seconds (default 10) are cut short: their callers get
HandlerInterruptedError and their paglets are parked all the same, with their
state as the node reads it then and their queued mail. While it waits the node
logs which paglets and handlers it waits for; a second SIGTERM or SIGINT ends
the wait at once. If a paglet could not be parked even so (its state could not
be read: a handler or ``run()`` holds its state lock for good), the log names
it and the exit status is 3.

A node that cannot start prints one ``Error:`` line and exits 1: its ports are
taken, say, or another running node holds its data directory (each node locks
``<data dir>/node.lock``; give a second node on one machine its own ``--name``
or ``--data-dir``). So does one reachable off loopback with neither
``--api-key-env`` nor ``--curve-secret``, unless ``--insecure`` is given (see
:mod:`paglets.exposure`).

Every node option is a field of :class:`~paglets.node.config.NodeConfig`;
its flag, default and help here, and its key in a TOML file (``--config``,
keys with underscores: ``http_port = 0``), are derived from that field.
Command-line flags win over the file. Only the options that are not node
settings (``--config``, ``--api-key-env``, ``--log-level``) are declared here.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import click

from paglets.cli import node_toml
from paglets.cli.common import (
    announce,
    api_key_from_env,
    check_name,
    configure_logging,
    install_stop_handlers,
    log_level_option,
)
from paglets.client.transport import check_address
from paglets.node import launch
from paglets.node.config import OptionSpec, option_specs
from paglets.node.host import Host
from paglets.node.launch import LaunchConfig, LaunchConfigError
from paglets.node.rollout.updater import exec_own_command_line

log = logging.getLogger("paglets.cli.node")
RESTART = 0  # not a signal number: what the rollout puts in the stop queue to have the node exec itself
LAUNCH_CONFIG = "paglets.launch_config"  # where --config leaves the parsed file in the click context
EXIT_NOT_ALL_PARKED = 3  # stopped, but some paglet could not be parked (the log names it)
PORT_TAKEN_HINT = " (another node? give this one its own --port and --http-port, or 0 for free ones)"


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


def _parse_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


# Checks beyond a value's type, for the few options that need one on the command line.
CALLBACKS: dict[str, Callable[..., Any]] = {"name": check_name, "connect_to": _check_relay, "peers": _check_peers}
CLI_DEFAULTS: dict[str, Any] = {"name": default_node_name}
EXISTING_PATHS = {
    "curve_secret": click.Path(exists=True, dir_okay=False),
    "curve_allow": click.Path(exists=True, file_okay=False),
    "curve_server_key": click.Path(exists=True, dir_okay=False),
}
CLICK_TYPES = {"int": click.INT, "float": click.FLOAT, "str": click.STRING, "path": click.Path()}


def _checked(spec: OptionSpec, then: Callable[..., Any] | None) -> Callable[..., Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if then is not None:
            value = then(ctx, param, value)
        if spec.check is not None and value is not None and not isinstance(value, (tuple, list, dict)):
            try:
                spec.check(value)
            except ValueError as exc:
                raise click.BadParameter(str(exc)) from None
        return value

    return callback


def flag_help(doc: str) -> str:
    """An option's help with the TOML keys it names (``curve_allow``) written as flags (``--curve-allow``)."""
    for spec in option_specs():
        if "_" in spec.key:
            doc = re.sub(rf"(?<![\w-]){spec.key}\b", spec.flag, doc)
    return doc


def spec_option(spec: OptionSpec) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of one NodeConfig field."""
    default = CLI_DEFAULTS.get(spec.field, spec.default)
    show = "this machine's hostname" if spec.field == "name" else default not in (None, [], {})
    common: dict[str, Any] = {"help": flag_help(spec.doc), "show_default": show}
    if spec.metavar:
        common["metavar"] = spec.metavar
    if spec.kind == "bool":
        flag = spec.flag
        return click.option(f"{flag}/--no-{flag[2:]}", spec.field, default=default, **common)
    if spec.kind == "list":
        return click.option(
            spec.flag, spec.field, multiple=True, callback=CALLBACKS.get(spec.field), **{"metavar": "VALUE", **common}
        )
    if spec.kind == "dict":
        return click.option(spec.flag, spec.field, multiple=True, metavar="KEY=VALUE", callback=_parse_pairs, **common)
    kind = EXISTING_PATHS.get(spec.field) or CLICK_TYPES[spec.kind]
    return click.option(
        spec.flag,
        spec.field,
        type=kind,
        default=default,
        callback=_checked(spec, CALLBACKS.get(spec.field)),
        **common,
    )


def node_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Every NodeConfig option as a flag, in declaration order."""
    for spec in reversed(list(option_specs())):
        function = spec_option(spec)(function)
    return function


def _print_config(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        click.echo(node_toml.render(), nl=False)
        ctx.exit(0)


def _load_launch_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Read the launch config (the package's default one without ``--config``); its options become the
    defaults of the flags (so flags still win), the whole config is kept for the Host."""
    try:
        config = launch.load(value if value is not None else launch.default_path())
    except LaunchConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    ctx.meta[LAUNCH_CONFIG] = config
    ctx.default_map = {**(ctx.default_map or {}), **click_defaults(config)}
    return value


def click_defaults(config: LaunchConfig) -> dict[str, Any]:
    """A launch config's options as click defaults: keyed by parameter name, in the forms the flags take."""
    fields = {spec.key: spec.field for spec in option_specs()}
    defaults: dict[str, Any] = {}
    for key, value in config.options.items():
        if isinstance(value, dict):  # a repeatable KEY=VALUE option
            value = [f"{name}={text}" for name, text in value.items()]
        defaults[fields.get(key, key)] = value
    return defaults


def _check_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--check-config FILE``: parse and check a launch config (names and types; nothing is imported), then exit."""
    if value is None:
        return
    try:
        config = launch.load(value)
        config.check_own_modules()
    except LaunchConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(1)
    click.echo(
        f"OK {value}: {len(config.options)} option(s), {len(config.paglets)} startup paglet(s), "
        f"{len(config.resident_services)} resident service(s)"
    )
    ctx.exit(0)


def host_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """The Host keywords for parsed command-line ``options``."""
    kwargs = {spec.field: options[spec.field] for spec in option_specs()}
    for spec in option_specs():
        if spec.kind == "list":
            kwargs[spec.field] = list(kwargs[spec.field])
        elif spec.kind == "dict":
            kwargs[spec.field] = dict(kwargs[spec.field])
    _check_curve_options(kwargs)
    if options["api_key_env"]:
        kwargs["api_key"] = api_key_from_env(options["api_key_env"])
    return kwargs


def _check_curve_options(kwargs: dict[str, Any]) -> None:
    if kwargs["curve_secret"] is None:
        given = [f"--{name.replace('_', '-')}" for name in ("curve_allow", "curve_server_key") if kwargs[name]]
        if given:
            raise click.UsageError(f"{' and '.join(given)}: give --curve-secret too")
    elif kwargs["curve_allow"] is None:
        raise click.UsageError("--curve-secret needs --curve-allow: the directory of the client keys to let in")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_load_launch_config,
    help="Launch config: a TOML file of option values (keys like http_port; flags override them), "
    "[[paglets]] to start and [[resident_services]]. Default: the one shipped with paglets.",
)
@click.option(
    "--check-config",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_check_config,
    help="Check a launch config file (names and types; nothing is imported or started), and exit.",
)
@node_options
@click.option("--api-key-env", metavar="VAR", default=None, help="Require the API key held in environment VAR.")
@log_level_option
@click.option(
    "--print-config",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_print_config,
    help="Print a TOML config file of every option with its default, and exit.",
)
def main(**options: Any) -> None:
    """Run a paglets node until SIGTERM or Ctrl-C.

    Once it serves it prints "address tcp://HOST:PORT" (where clients reach
    it), "http ..." and "ready". A second node on this machine needs its own
    --name (its data directory follows the name) and ports; a node refuses to
    start on a port or a data directory another running node holds. Listening
    off loopback needs --api-key-env or --curve-secret (or --insecure).

    \b
    Examples:
      paglets-node                                   # tcp://127.0.0.1:7700, http://127.0.0.1:7701
      paglets-node --allow-module counter            # may run counter:Counter from this directory
      paglets-node --name beta --port 7710 --http-port 7711   # a second node on this machine
      paglets-node --bind 0.0.0.0 --api-key-env PAGLETS_API_KEY   # reachable from other machines

    Stopping parks every active paglet in the data directory, to wake when a
    node starts on it again; handlers still running after --stop-grace are cut
    short, and a second signal ends that wait. Exit status: 0; 1 when the node
    could not start; 3 when some paglet could not be parked (the log names it).
    """
    configure_logging(options["log_level"])
    if os.getcwd() not in sys.path:  # paglets-node run from a directory of paglets can load them (if allowed)
        sys.path.insert(0, os.getcwd())
    kwargs = host_kwargs(options)
    kwargs["launch_config"] = click.get_current_context().meta.get(LAUNCH_CONFIG)
    sys.exit(run_node(kwargs))


def run_node(kwargs: dict[str, Any]) -> int:
    """Start a node, announce it on stdout, serve until a stop signal; the exit code."""
    stop_requests = install_stop_handlers()  # before starting: an early SIGTERM still stops cleanly
    if kwargs.get("auto_update_from_git") and kwargs.get("auto_update_restart_callback") is None:
        # after an update the node parks its paglets and stops; the main thread then execs the new code
        kwargs["auto_update_restart_callback"] = lambda: stop_requests.put(RESTART)
    try:
        host = Host(**kwargs)
        if host.rollout.catch_up():  # the checkout had new commits: run them, not this code
            log.warning("node %s: the checkout moved on at start; restarting on the new code", host.name)
            exec_own_command_line()
        host.start_background()
    except Exception as exc:
        log.debug("start failed", exc_info=True)
        hint = PORT_TAKEN_HINT if "Address already in use" in str(exc) else ""
        click.echo(f"Error: cannot start node {_describe(kwargs)}: {type(exc).__name__}: {exc}{hint}", err=True)
        return 1
    announce([f"address {host.address}", *([f"http {host.http_address}"] if host.http_address else [])])
    signum = stop_requests.get()
    if signum == RESTART:  # the rollout parked the paglets and stopped the node already
        log.warning("node %s: restarting on new code", host.name)
        exec_own_command_line()
    log.info("%s received: parking paglets and stopping node %s", signal.Signals(signum).name, host.name)
    threading.Thread(
        target=_stop_now_on_signal, args=(host, stop_requests), name="paglets-stop-now", daemon=True
    ).start()
    try:
        lost = host.shutdown()  # active paglets are parked on disk and wake when the node starts again
    except Exception:
        log.exception("node %s did not stop cleanly", host.name)
        return 1
    if lost:
        log.error(
            "node %s stopped, but %d paglet(s) could not be parked and are lost: %s",
            host.name,
            len(lost),
            ", ".join(lost),
        )
        return EXIT_NOT_ALL_PARKED
    log.info("node %s stopped", host.name)
    return 0


def _stop_now_on_signal(host: Host, stop_requests: queue.SimpleQueue[int]) -> None:
    """A second stop signal: stop waiting for handlers, park what can be parked now."""
    signum = stop_requests.get()
    log.warning("%s received again: node %s stops waiting for handlers", signal.Signals(signum).name, host.name)
    host.stop_now()


def _describe(kwargs: dict[str, Any]) -> str:
    if kwargs.get("connect_to"):
        return f"{kwargs['name']} via relay {kwargs['connect_to']}"
    http = "http off" if not kwargs["http"] else f"http port {kwargs['http_port']}"
    where = "all interfaces" if kwargs["bind_public"] else kwargs["host"]
    return f"{kwargs['name']} on {where} (port {kwargs['port']}, {http})"


if __name__ == "__main__":
    main(prog_name="paglets-node")

"""``paglets``: talk to running nodes from a shell.

Every node command takes the node address first: ``tcp://HOST:PORT``, or
``relay+tcp://RELAY:PORT/NODE`` for a node behind a relay. Output is readable
text by default and JSON with ``--json``. Any paglets error, bad JSON
argument, bad address or file error prints ``Error: <type>: <message>`` on
stderr and exits 1; usage errors exit 2; a ``send`` whose message was queued
instead of handled (``MessageQueuedError``) prints that and exits 3.
``--curve-secret`` (and
``--curve-server-key``) talk to nodes that require CurveZMQ; ``paglets keys
generate`` makes the key files.

The group's options (``--json``, ``--timeout``, the API key and Curve
options) may also follow the command: :class:`CliGroup` gives every command
that takes an ADDR a copy of them (``--json`` to every command), which
overrides what came before the command. The client is made on first use,
from both (:class:`~paglets.cli.output.Cli`).

Replies and states are decoded to plain data (a dataclass becomes a dict with
a ``__class__`` key), so the CLI never needs the paglets' own code.

This module holds the ``paglets`` group and its global options; the
commands live by family in ``commands_node`` (health, ls, hosts),
``commands_paglet`` (create, send, dispose), ``commands_parking``
(deactivate, activate), ``commands_movement`` (dispatch, clone, retract),
``commands_services`` (services), ``commands_observe`` (events, top), ``commands_rollout``
(update) and ``commands_keys``, each
listing its own in ``COMMANDS``; ``commands_artifacts`` holds the ``artifacts`` group (put, get,
ls, rm); printing is :mod:`paglets.cli.output`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from paglets.cli import (
    commands_keys,
    commands_movement,
    commands_node,
    commands_observe,
    commands_paglet,
    commands_parking,
    commands_rollout,
    commands_services,
)
from paglets.cli.commands_artifacts import artifacts as artifacts_group
from paglets.cli.common import api_key_from_env, fail
from paglets.cli.output import Cli
from paglets.client.host_client import DEFAULT_TIMEOUT, HostClient
from paglets.client.security import CurveIdentity
from paglets.core.errors import PagletError

TIMEOUT_HELP = (
    f"Seconds to wait for a node's answer, for every command (default {DEFAULT_TIMEOUT:g}); "
    "for dispatch, and clone to a TARGET, the time the move may take (see their --help)."
)
# The options that say how to reach nodes: (flags, settings). Their values go to make_client.
CLIENT_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--api-key-env",), {"metavar": "VAR", "help": "Send the API key held in environment VAR."}),
    (
        ("--api-key",),
        {"metavar": "KEY", "help": "Send this API key (others may see it in ps; prefer --api-key-env)."},
    ),
    (("--timeout",), {"type": click.FloatRange(min=0, min_open=True), "metavar": "SECONDS", "help": TIMEOUT_HELP}),
    (
        ("--curve-secret",),
        {
            "type": click.Path(exists=True, dir_okay=False),
            "help": "Our .key_secret file: talk CurveZMQ to nodes that require it.",
        },
    ),
    (
        ("--curve-server-key",),
        {
            "type": click.Path(exists=True, dir_okay=False),
            "help": "The nodes' public .key file (default: the public half of --curve-secret).",
        },
    ),
)
JSON_OPTION = (("--json", "as_json"), {"is_flag": True, "help": "Print machine-readable JSON."})


class CliGroup(click.Group):
    """The ``paglets`` group: one ``Error:`` line and exit code 1 for paglets errors, and its
    options accepted after the command as well as before it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (PagletError, ValueError, OSError) as exc:
            fail(exc)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        accept_group_options(cmd)
        super().add_command(cmd, name)


def accept_group_options(cmd: click.Command) -> None:
    """Give ``cmd`` (each command of it, for a group) the group's options it does not have itself.

    Only commands that talk to a node (those with an ADDR) get the client
    options; ``--json`` goes to every command.
    """
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            accept_group_options(sub)
        return
    names = {param.name for param in cmd.params}
    taken = {flag for param in cmd.params for flag in param.opts}
    wanted = [JSON_OPTION, *(CLIENT_OPTIONS if "address" in names else ())]
    for decls, settings in wanted:
        flags = [decl for decl in decls if decl.startswith("--")]
        if taken.isdisjoint(flags):
            cmd.params.append(click.Option(decls, expose_value=False, callback=_given_after_command, **settings))


def _given_after_command(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Record a group option given after the command; it overrides the one given before."""
    cli = ctx.find_object(Cli)
    if cli is None or value is None or value is False:
        return
    if param.name == "as_json":
        cli.as_json = True
    else:
        cli.client_options[param.name or ""] = value


def make_client(options: dict[str, Any]) -> HostClient:
    """The HostClient for the client options given (before and after the command)."""
    api_key_env, api_key = options.get("api_key_env"), options.get("api_key")
    curve_secret, curve_server_key = options.get("curve_secret"), options.get("curve_server_key")
    if api_key_env and api_key:
        raise click.UsageError("give --api-key-env or --api-key, not both")
    if curve_server_key and not curve_secret:
        raise click.UsageError("--curve-server-key needs --curve-secret")
    if api_key_env:
        api_key = api_key_from_env(api_key_env)
    curve = CurveIdentity.from_files(curve_secret, curve_server_key) if curve_secret else None
    timeout = options.get("timeout") or DEFAULT_TIMEOUT  # the CLI's default holds for every op, as its help says
    return HostClient(api_key=api_key or "", timeout=timeout, curve=curve)  # "": no key unless a flag gives one


def group_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for decls, settings in reversed((*CLIENT_OPTIONS, JSON_OPTION)):
        function = click.option(*decls, **settings)(function)
    return function


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@group_options
@click.pass_context
def main(ctx: click.Context, as_json: bool, **client_options: Any) -> None:
    """Inspect and drive paglets nodes.

    ADDR is a node's tcp://HOST:PORT, or relay+tcp://RELAY:PORT/NODE for a node behind a relay.
    Options may come before or after the command: "paglets ls ADDR --json" is
    "paglets --json ls ADDR". "paglets COMMAND --help" describes each command.

    \b
    Examples, with a node started by paglets-node (tcp://127.0.0.1:7700):
      paglets create tcp://127.0.0.1:7700 paglets.examples.echo:EchoPaglet --id echo-1
      paglets send tcp://127.0.0.1:7700 echo-1 echo --arg '"hello"'
      paglets ls tcp://127.0.0.1:7700 --json
      paglets health tcp://node.example.org:7700 --api-key-env PAGLETS_API_KEY

    Exit status: 0 done; 1 error (one "Error:" line on stderr); 2 bad usage;
    3 the message was queued, not handled (send to a parked paglet that does
    not wake on messages, or to a node away behind a relay: it runs later, no
    reply will come).
    """
    given = {name: value for name, value in client_options.items() if value is not None}
    ctx.obj = Cli(as_json, given, make_client)


for family in (
    commands_node,
    commands_keys,
    commands_paglet,
    commands_parking,
    commands_movement,
    commands_services,
    commands_observe,
    commands_rollout,
):
    for command in family.COMMANDS:
        main.add_command(command)
main.add_command(artifacts_group)  # put, get, ls, rm


if __name__ == "__main__":
    main(prog_name="paglets")

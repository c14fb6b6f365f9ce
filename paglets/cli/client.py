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

Replies and states are decoded to plain data (a dataclass becomes a dict with
a ``__class__`` key), so the CLI never needs the paglets' own code.

This module holds the ``paglets`` group and its global options; the
commands live by family in ``commands_node`` (health, ls, hosts),
``commands_paglet`` (create, send, dispose), ``commands_parking``
(deactivate, activate), ``commands_movement`` (dispatch, clone, retract) and
``commands_keys``, each listing its own in ``COMMANDS``; ``commands_artifacts``
holds the ``artifacts`` group (put, get, ls, rm); printing is
:mod:`paglets.cli.output`.
"""

from __future__ import annotations

from typing import Any

import click

from paglets.cli import commands_keys, commands_movement, commands_node, commands_paglet, commands_parking
from paglets.cli.commands_artifacts import artifacts as artifacts_group
from paglets.cli.common import api_key_from_env, fail
from paglets.cli.output import Cli
from paglets.client.host_client import DEFAULT_TIMEOUT, HostClient
from paglets.client.security import CurveIdentity
from paglets.core.errors import PagletError


class CliGroup(click.Group):
    """A group that turns paglets errors into one ``Error:`` line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (PagletError, ValueError, OSError) as exc:
            fail(exc)


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-key-env", metavar="VAR", help="Send the API key held in environment VAR.")
@click.option("--api-key", metavar="KEY", help="Send this API key (others may see it in ps; prefer --api-key-env).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for a node's answer.",
)
@click.option(
    "--curve-secret",
    type=click.Path(exists=True, dir_okay=False),
    help="Our .key_secret file: talk CurveZMQ to nodes that require it.",
)
@click.option(
    "--curve-server-key",
    type=click.Path(exists=True, dir_okay=False),
    help="The nodes' public .key file (default: the public half of --curve-secret).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def main(
    ctx: click.Context,
    api_key_env: str | None,
    api_key: str | None,
    timeout: float,
    curve_secret: str | None,
    curve_server_key: str | None,
    as_json: bool,
) -> None:
    """Inspect and drive paglets nodes.

    ADDR is a node's tcp://HOST:PORT, or relay+tcp://RELAY:PORT/NODE for a node behind a relay.

    Exit status: 0 done; 1 error (one "Error:" line on stderr); 2 bad usage;
    3 the message was queued, not handled (send to a parked paglet that does
    not wake on messages, or to a node away behind a relay: it runs later, no
    reply will come).
    """
    if api_key_env and api_key:
        raise click.UsageError("give --api-key-env or --api-key, not both")
    if curve_server_key and not curve_secret:
        raise click.UsageError("--curve-server-key needs --curve-secret")
    if api_key_env:
        api_key = api_key_from_env(api_key_env)
    curve = CurveIdentity.from_files(curve_secret, curve_server_key) if curve_secret else None
    ctx.obj = Cli(HostClient(api_key=api_key or None, timeout=timeout, curve=curve), as_json)


for family in (commands_node, commands_keys, commands_paglet, commands_parking, commands_movement):
    for command in family.COMMANDS:
        main.add_command(command)
main.add_command(artifacts_group)  # put, get, ls, rm


if __name__ == "__main__":
    main()

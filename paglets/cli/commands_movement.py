"""``paglets dispatch | clone | retract``: move a paglet, copy it, pull it back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from paglets.cli.output import Cli, address_argument, key_value_lines
from paglets.client.addresses import check_address
from paglets.client.transfer import TransferTicket
from paglets.wire import protocol


def ticket_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The terms of a move, each named after its TransferTicket field (unset: the ticket's default)."""
    options = (
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="Seconds the move may take before it is called off and the paglet stays (default 10); the "
            "command waits 10 s more for the node's answer.",
        ),
        click.option("--retries", type=click.IntRange(min=0), help="Further tries to reach the target (default 0)."),
        click.option(
            "--require-capability",
            "required_capabilities",
            metavar="CAP",
            multiple=True,
            help="Move only if the target has this capability (repeatable).",
        ),
        click.option(
            "--code-version", "expected_code_version", metavar="V", help="Move only if the target runs this version."
        ),
    )
    for option in reversed(options):
        function = option(function)
    return function


@click.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.argument("target", metavar="TARGET")
@ticket_options
@click.pass_obj
def dispatch(cli: Cli, address: str, agent_id: str, target: str, **terms: Any) -> None:
    """Move paglet AGENT from node ADDR to TARGET (a node address or name); print its new address."""
    new_address = cli.client.dispatch(check_address(address), agent_id, transfer_ticket(cli, target, terms))
    cli.emit({"agent_id": agent_id, "address": new_address}, lambda moved: moved["address"])


@click.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.argument("target", metavar="[TARGET]", required=False)
@ticket_options
@click.pass_obj
def clone(cli: Cli, address: str, agent_id: str, target: str | None, **terms: Any) -> None:
    """Copy paglet AGENT of node ADDR, onto TARGET or onto ADDR itself; print the copy's id and address."""
    if target is None:
        params = click.get_current_context().command.params
        given = [param.opts[0] for param in params if terms.get(param.name or "") not in (None, ())]
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply to a move: give a TARGET too")
    ticket = None if target is None else transfer_ticket(cli, target, terms)
    proxy = cli.client.clone(check_address(address), agent_id, ticket)
    cli.emit({"agent_id": proxy.agent_id, "address": proxy.host_url}, key_value_lines)


@click.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.option("--to", "to_address", metavar="NODE_ADDR", required=True, help="The node that takes the paglet back.")
@click.pass_obj
def retract(cli: Cli, address: str, agent_id: str, to_address: str) -> None:
    """Pull paglet AGENT, now on node ADDR, back to node NODE_ADDR; print its new address."""
    new_address = cli.client.retract(check_address(address), agent_id, check_address(to_address))
    cli.emit({"agent_id": agent_id, "address": new_address}, lambda moved: moved["address"])


def transfer_ticket(cli: Cli, target: str, terms: dict[str, Any]) -> TransferTicket:
    """A ticket to TARGET (a node address, or a name the node knows) with the terms given on the command line.

    ``--timeout`` given before the command (``paglets --timeout 60 dispatch ...``) is the move's too.
    """
    destination = target if protocol.AGENT_ID_PATTERN.match(target) else check_address(target)
    given = {name: value for name, value in terms.items() if value not in (None, ())}
    if "timeout" not in given and "timeout" in cli.client_options:
        given["timeout"] = cli.client_options["timeout"]
    return TransferTicket(destination, **given)


COMMANDS = (dispatch, clone, retract)

"""``paglets health | ls | hosts``: ask a node about itself and the mesh it knows."""

from __future__ import annotations

import click

from paglets.cli.output import Cli, address_argument, agent_table, host_table, key_value_lines
from paglets.client.addresses import check_address


@click.command()
@address_argument
@click.pass_obj
def health(cli: Cli, address: str) -> None:
    """Show a node's name, version, counts and uptime."""
    cli.emit(cli.client.health(check_address(address)), key_value_lines)


@click.command("ls")
@address_argument
@click.option("--state", "include_state", is_flag=True, help="Also fetch each paglet's state (DATA column).")
@click.option("--active-only", is_flag=True, help="Only paglets with a running worker.")
@click.option("--inactive-only", is_flag=True, help="Only paglets parked on disk.")
@click.pass_obj
def list_agents(cli: Cli, address: str, include_state: bool, active_only: bool, inactive_only: bool) -> None:
    """List the paglets on a node, active and parked (STATE says which)."""
    if active_only and inactive_only:
        raise click.UsageError("give --active-only or --inactive-only, not both")
    agents = cli.client.list_agents(
        check_address(address), active=not inactive_only, inactive=not active_only, include_state=include_state
    )
    cli.emit(agents, lambda rows: agent_table(rows, include_state))


@click.command()
@address_argument
@click.option("--online-only", is_flag=True, help="Leave out the nodes that have gone quiet.")
@click.pass_obj
def hosts(cli: Cli, address: str, online_only: bool) -> None:
    """List the nodes of the mesh that node ADDR knows, itself included."""
    reply = cli.client.request(check_address(address), "hosts", {"online": online_only})
    cli.emit(reply.header.get("hosts") or [], host_table)


COMMANDS = (health, list_agents, hosts)

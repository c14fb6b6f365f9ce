"""``paglets deactivate | activate``: park a paglet on its node's disk and wake it."""

from __future__ import annotations

import click

from paglets.cli.common import UnixTime
from paglets.cli.output import Cli, address_argument
from paglets.client.addresses import check_address
from paglets.persistence.persistency import DeactivationPolicy


@click.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.option("--reason", default="", help="Why it is parked (its on_deactivating hook sees this).")
@click.option("--queue-only", is_flag=True, help="Messages do not wake it; they wait on disk for activation.")
@click.option("--no-queue", is_flag=True, help="Messages are not kept while it is parked.")
@click.option("--wake-on-startup", is_flag=True, help="Wake it when the node next starts.")
@click.option("--wake-at", type=UnixTime(), help="Wake it at this time (UNIX seconds or ISO 8601; local if no zone).")
@click.pass_obj
def deactivate(
    cli: Cli,
    address: str,
    agent_id: str,
    reason: str,
    queue_only: bool,
    no_queue: bool,
    wake_on_startup: bool,
    wake_at: float | None,
) -> None:
    """Park paglet AGENT on node ADDR's disk.

    Without policy options the paglet's own deactivation_policy (or the
    node's default: a message wakes it) decides how it wakes.
    """
    policy = None
    if queue_only or no_queue or wake_on_startup or wake_at is not None:
        policy = DeactivationPolicy(
            activate_on_message=not queue_only,
            queue_messages_when_inactive=not no_queue,
            activate_on_startup=wake_on_startup,
            activate_at=wake_at,
        )
    proxy = cli.client.deactivate(check_address(address), agent_id, reason=reason, policy=policy)
    result = {"agent_id": proxy.agent_id, "address": proxy.host_url, "active": False}
    cli.emit(result, lambda _: f"deactivated {agent_id}")


@click.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.pass_obj
def activate(cli: Cli, address: str, agent_id: str) -> None:
    """Wake parked paglet AGENT on node ADDR; mail queued for it is delivered first."""
    proxy = cli.client.activate(check_address(address), agent_id)
    result = {"agent_id": proxy.agent_id, "address": proxy.host_url, "active": True}
    cli.emit(result, lambda _: f"activated {agent_id}")


COMMANDS = (deactivate, activate)

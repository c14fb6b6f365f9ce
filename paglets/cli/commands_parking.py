"""``paglets deactivate | activate``: park a paglet on its node's disk and wake it."""

from __future__ import annotations

from typing import Any

import click

from paglets.cli.common import UnixTime
from paglets.cli.output import Cli, address_argument
from paglets.client.addresses import check_address
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest


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
    node's default: a message wakes it) decides how it wakes. A paglet that
    is parked already stays as it is (exit status 0, and it says so); an
    AGENT the node does not have is an error.
    """
    policy = None
    if queue_only or no_queue or wake_on_startup or wake_at is not None:
        policy = DeactivationPolicy(
            activate_on_message=not queue_only,
            queue_messages_when_inactive=not no_queue,
            activate_on_startup=wake_on_startup,
            activate_at=wake_at,
        )
    request = DeactivationRequest(reason=reason, source="client", policy=policy)
    header = {"agent": agent_id, "request": request.to_wire()}
    reply = cli.client.request(check_address(address), "deactivate", header).header
    cli.emit(outcome(reply, agent_id, address, active=False), lambda done: said(done, "deactivated", "parked"))


@click.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.pass_obj
def activate(cli: Cli, address: str, agent_id: str) -> None:
    """Wake parked paglet AGENT on node ADDR; mail queued for it is delivered first.

    A paglet that is active already stays as it is (exit status 0, and it
    says so); an AGENT the node does not have is an error.
    """
    reply = cli.client.request(check_address(address), "activate", {"agent": agent_id}).header
    cli.emit(outcome(reply, agent_id, address, active=True), lambda done: said(done, "activated", "active"))


def outcome(reply: dict[str, Any], agent_id: str, address: str, *, active: bool) -> dict[str, Any]:
    """What ``activate`` or ``deactivate`` did, from the node's answer; ``was_active`` tells a no-op apart."""
    result = {
        "agent_id": str(reply.get("agent") or agent_id),
        "address": str(reply.get("address") or address),
        "active": active,
    }
    if isinstance(reply.get("was_active"), bool):  # an older node leaves it out
        result["was_active"] = reply["was_active"]
    return result


def said(result: dict[str, Any], done: str, already: str) -> str:
    if result.get("was_active") is result["active"]:
        return f"{result['agent_id']} is already {already}"
    return f"{done} {result['agent_id']}"


COMMANDS = (deactivate, activate)

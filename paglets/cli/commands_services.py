"""``paglets services``: the service records a node knows, its own or the whole mesh's."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import click

from paglets.cli.output import Cli, address_argument, cell_text, format_table
from paglets.client.addresses import check_address
from paglets.services.contracts import CONTRACT_KEY

SERVICE_COLUMNS = (
    ("SERVICE", lambda r, now: r.get("name")),
    ("SCOPE", lambda r, now: r.get("scope")),
    ("NODE", lambda r, now: r.get("host_name")),
    ("AGENT ID", lambda r, now: r.get("agent_id")),
    ("CONTRACT", lambda r, now: _contract(r)),
    ("CAPABILITIES", lambda r, now: list(r.get("capabilities") or [])),
    ("EXPIRES", lambda r, now: _expires(r.get("expires_at"), now)),
)


@click.command()
@address_argument
@click.option("--mesh", is_flag=True, help="Also list the MESH records of every other node the node knows.")
@click.option("--name", metavar="NAME", help="Only records of this service.")
@click.option("--capability", metavar="CAP", help="Only records offering this capability.")
@click.pass_obj
def services(cli: Cli, address: str, mesh: bool, name: str | None, capability: str | None) -> None:
    """List the services advertised on node ADDR (with --mesh: in the whole mesh it knows)."""
    records = cli.client.services(check_address(address), name=name, capability=capability, mesh=mesh)
    cli.emit(records, service_table)


def service_table(records: Sequence[dict[str, Any]]) -> str:
    if not records:
        return "no services"
    now = time.time()
    rows = [[cell_text(get(record, now)) for _, get in SERVICE_COLUMNS] for record in records]
    return format_table([name for name, _ in SERVICE_COLUMNS], rows)


def _contract(record: dict[str, Any]) -> str | None:
    described = (record.get("metadata") or {}).get(CONTRACT_KEY)
    if not isinstance(described, dict):
        return None
    return f"{described.get('name')} v{described.get('version')}"


def _expires(moment: Any, now: float) -> str | None:
    if not isinstance(moment, (int, float)):
        return None
    return f"in {max(0, round(moment - now))}s"


COMMANDS = (services,)

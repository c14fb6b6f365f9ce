"""``paglets update``: have nodes that follow a git checkout pull new code and restart on it."""

from __future__ import annotations

from typing import Any

import click

from paglets.cli.output import Cli, address_argument, cell_text, format_table
from paglets.client.addresses import check_address
from paglets.core.errors import PagletError

UPDATE_COLUMNS = ("NODE", "ADDRESS", "BEFORE", "AFTER", "RESULT")


@click.command()
@address_argument
@click.option("--mesh", is_flag=True, help="Ask every online node ADDR knows (itself included), one by one.")
@click.option("--target", metavar="COMMIT", help="Update only if the upstream is at this commit (hex id or prefix).")
@click.pass_obj
def update(cli: Cli, address: str, mesh: bool, target: str | None) -> None:
    """Make node ADDR (or, with --mesh, every node it knows) fetch and fast-forward its checkout and, when the
    code changed, reinstall it and restart; the paglets are parked across the restart.

    Only nodes started with --auto-update-from-git do it, and only with an API key or CurveZMQ and not behind
    a relay. Exit status 1 when any node refused or failed.
    """
    address = check_address(address)
    targets = [address]
    if mesh:
        hosts = cli.client.request(address, "hosts", {"online": True}).header.get("hosts") or []
        targets = [str(host["url"]) for host in hosts if isinstance(host, dict) and host.get("url")] or targets
    results = [_update_one(cli, url, target) for url in targets]
    cli.emit(results, _update_table)
    if any("error" in result for result in results):
        raise SystemExit(1)


def _update_one(cli: Cli, address: str, target: str | None) -> dict[str, Any]:
    try:
        return {"address": address, **cli.client.update(address, target)}
    except PagletError as exc:
        return {"address": address, "error": f"{type(exc).__name__}: {exc}"}


def _update_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for result in results:
        if "error" in result:
            outcome = result["error"]
        elif result.get("restarting"):
            outcome = "new code: restarting"
        else:
            outcome = "up to date"
        rows.append([cell_text(result.get(key)) for key in ("node", "address", "before", "after")] + [outcome])
    return format_table(list(UPDATE_COLUMNS), rows)


COMMANDS = (update,)

"""How the ``paglets`` CLI prints: the ``Cli`` object every command gets, tables and key-value lines.

Text output is one value per cell on one line (``cell_text``); with
``--json`` every command prints its value as JSON instead (``Cli.emit``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from paglets.cli.common import to_json
from paglets.client.host_client import HostClient


def is_parked(agent: dict[str, Any]) -> bool:
    return agent.get("phase") == "inactive"


# QUEUED is the mailbox backlog of an active paglet, the durable mail waiting for a parked one.
LIST_COLUMNS = (
    ("AGENT ID", lambda a: a.get("agent_id")),
    ("CLASS", lambda a: a.get("class_name")),
    ("STATE", lambda a: "inactive" if is_parked(a) else "active"),
    ("PHASE", lambda a: a.get("phase")),
    ("PID", lambda a: a.get("pid")),
    ("QUEUED", lambda a: a.get("queued_messages") if is_parked(a) else a.get("mailbox", {}).get("queued")),
    ("IN-FLIGHT", lambda a: a.get("mailbox", {}).get("in_flight")),
    ("DELIVERED", lambda a: a.get("mailbox", {}).get("delivered")),
    ("FAILED", lambda a: a.get("mailbox", {}).get("failed")),
)
HOST_COLUMNS = (
    ("NAME", lambda h, now: h.get("name")),
    ("URL", lambda h, now: h.get("url")),
    ("ONLINE", lambda h, now: "yes" if h.get("online") else "no"),
    ("CODE VERSION", lambda h, now: h.get("code_version") or None),
    ("ACTIVE", lambda h, now: h.get("active_count")),
    ("INACTIVE", lambda h, now: h.get("inactive_count")),
    ("TAGS", lambda h, now: ",".join(h.get("tags") or ()) or None),
    ("LAST SEEN", lambda h, now: seconds_ago(h.get("last_seen"), now)),
)


@dataclass
class Cli:
    """What every command needs: the output mode and the client.

    The client is made on first use, from ``client_options``: the group's
    options as given before the command, updated by those given after it.
    """

    as_json: bool
    client_options: dict[str, Any]
    make_client: Callable[[dict[str, Any]], HostClient]
    _client: HostClient | None = field(default=None, repr=False)

    @property
    def client(self) -> HostClient:
        if self._client is None:
            self._client = self.make_client(self.client_options)
        return self._client

    def emit(self, value: Any, readable: Callable[[Any], str]) -> None:
        """Print ``value`` as JSON, or as ``readable(value)`` text (nothing when that is empty)."""
        text = to_json(value) if self.as_json else readable(value)
        if text:
            click.echo(text)


def address_argument(function: Callable[..., Any]) -> Callable[..., Any]:
    """The ADDR argument every node command takes first."""
    return click.argument("address", metavar="ADDR")(function)


def reply_text(value: Any) -> str:
    """A string reply as it is; anything else as JSON."""
    return value if isinstance(value, str) else to_json(value)


def key_value_lines(info: dict[str, Any]) -> str:
    width = max((len(key) for key in info), default=0)
    return "\n".join(f"{key:<{width}}  {cell_text(value)}" for key, value in info.items())


def agent_table(agents: Sequence[dict[str, Any]], include_state: bool) -> str:
    if not agents:
        return "no paglets"
    headers = [name for name, _ in LIST_COLUMNS]
    rows = [[cell_text(get(agent)) for _, get in LIST_COLUMNS] for agent in agents]
    if include_state:
        headers.append("DATA")
        states = [cell_text(agent.get("state", agent.get("state_error"))) for agent in agents]
        rows = [[*row, state] for row, state in zip(rows, states, strict=True)]
    return format_table(headers, rows)


def host_table(hosts: Sequence[dict[str, Any]]) -> str:
    if not hosts:
        return "no nodes"
    now = time.time()
    rows = [[cell_text(get(host, now)) for _, get in HOST_COLUMNS] for host in hosts]
    return format_table([name for name, _ in HOST_COLUMNS], rows)


def seconds_ago(moment: Any, now: float) -> str | None:
    """``12s ago`` for a UNIX time; None (shown as '-') when the time is unknown."""
    if not isinstance(moment, (int, float)) or moment <= 0:
        return None
    return f"{max(0, round(now - moment))}s ago"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    table = [list(headers), *rows]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(headers))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) for cells in table)
    return "\n".join(line.rstrip() for line in lines)


def cell_text(value: Any) -> str:
    """One value on one line: strings bare, None as '-', lists comma-separated, the rest compact JSON."""
    if value is None or value == []:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return str(value)


__all__ = ["Cli", "address_argument", "agent_table", "cell_text", "host_table", "key_value_lines", "reply_text"]

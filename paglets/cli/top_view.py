"""What ``paglets top`` and ``paglets events`` print: one frame of a node's picture, one line per event.

Pure functions of plain data (what the node's ``health``, ``hosts``,
``list`` and ``events`` ops answer), so a frame can be tested without a
terminal. ``paglets top`` redraws a frame with plain ANSI (clear screen,
home); nothing here depends on a terminal library.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from paglets.cli.output import cell_text, format_table

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen
EVENT_LINES = 8  # events at the foot of a frame


@dataclass
class Picture:
    """What one frame shows, gathered by ``paglets top`` from one node."""

    health: dict[str, Any]
    hosts: list[dict[str, Any]]
    agents: list[dict[str, Any]]
    events: list[dict[str, Any]]
    taken_at: float = field(default_factory=time.monotonic)

    def handled(self) -> int:
        """Messages the listed paglets have handled, as their mailboxes count them."""
        return sum(int((agent.get("mailbox") or {}).get("delivered") or 0) for agent in self.agents)

    def failed(self) -> int:
        return sum(int((agent.get("mailbox") or {}).get("failed") or 0) for agent in self.agents)


def event_line(event: dict[str, Any]) -> str:
    """``#ID  HH:MM:SS.mmm  kind  agent  Class  key=value...  error``, one line."""
    moment = event.get("timestamp")
    clock = time.strftime("%H:%M:%S", time.localtime(moment)) if isinstance(moment, (int, float)) else "--:--:--"
    millis = f".{int((moment % 1) * 1000):03d}" if isinstance(moment, (int, float)) else ""
    parts = [f"#{event.get('event_id')}", clock + millis, str(event.get("kind"))]
    if event.get("agent_id"):
        parts.append(str(event["agent_id"]))
    if event.get("class_name"):
        parts.append(str(event["class_name"]).rsplit(":", 1)[-1])
    if event.get("message_id"):
        parts.append(f"message={event['message_id']}")
    if event.get("service_name"):
        parts.append(f"service={event['service_name']}")
    for key, value in (event.get("details") or {}).items():
        if value is not None and value != "":
            parts.append(f"{key}={cell_text(value)}")
    if event.get("error"):
        parts.append(f"error: {event['error']}")
    return "  ".join(parts)


def agent_state(agent: dict[str, Any]) -> str:
    if agent.get("phase") == "inactive":
        return "parked"
    if agent.get("crashed"):
        return "crashed"
    return "active" if agent.get("phase") == "ready" else str(agent.get("phase"))


def _age(moment: Any, now: float) -> str | None:
    if not isinstance(moment, (int, float)) or moment <= 0:
        return None
    seconds = max(0.0, now - moment)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def agent_rows(agents: list[dict[str, Any]], now: float) -> list[list[str]]:
    """One row per paglet, the deepest mailboxes first."""

    def queued(agent: dict[str, Any]) -> int:
        if agent.get("phase") == "inactive":
            return int(agent.get("queued_messages") or 0)
        return int((agent.get("mailbox") or {}).get("queued") or 0)

    rows = []
    for agent in sorted(agents, key=lambda a: (-queued(a), str(a.get("agent_id")))):
        mailbox = agent.get("mailbox") or {}
        parked = agent.get("phase") == "inactive"
        started = agent.get("deactivated_at") if parked else agent.get("started_at")
        source = agent.get("source") or ("parked here" if parked else "started here")
        cells = [agent.get("agent_id"), str(agent.get("class_name") or "").rsplit(":", 1)[-1], agent_state(agent),
                 queued(agent), mailbox.get("in_flight"), mailbox.get("delivered"), mailbox.get("failed"),
                 _age(started, now), source]  # fmt: skip
        rows.append([cell_text(value) for value in cells])
    return rows


def render_frame(picture: Picture, previous: Picture | None, *, height: int = 40) -> str:
    """One frame: the node, the mesh, its paglets (as many as fit ``height`` lines), rates, recent events."""
    now = time.time()
    health = picture.health
    lines = [
        f"paglets top - {health.get('name')}  {health.get('address')}  paglets {health.get('version')}  "
        f"up {cell_text(_age(now - float(health.get('uptime') or 0), now))}",
        f"paglets: {health.get('active_count')} active, {health.get('inactive_count')} parked, "
        f"{health.get('crashed_count')} crashed   {_rates(picture, previous)}",
        "",
    ]
    host_rows = [
        [cell_text(h.get("name")), "online" if h.get("online") else "offline", cell_text(h.get("code_version") or None),
         cell_text(h.get("active_count")), cell_text(h.get("inactive_count")), cell_text(h.get("url"))]
        for h in picture.hosts
    ]  # fmt: skip
    lines.append(format_table(["NODE", "ONLINE", "CODE VERSION", "ACTIVE", "PARKED", "ADDRESS"], host_rows))
    lines.append("")
    rows = agent_rows(picture.agents, now)
    room = max(3, height - len(lines) - len(host_rows) - EVENT_LINES - 6)
    shown, hidden = rows[:room], len(rows) - room
    headers = ["AGENT ID", "CLASS", "STATE", "QUEUED", "IN-FLIGHT", "DELIVERED", "FAILED", "AGE", "CAME FROM"]
    lines.append(format_table(headers, shown) if rows else "no paglets")
    if hidden > 0:
        lines.append(f"... and {hidden} more")
    lines.append("")
    lines.append("recent events:")
    lines.extend("  " + event_line(event) for event in picture.events[-EVENT_LINES:])
    return "\n".join(lines)


def _rates(picture: Picture, previous: Picture | None) -> str:
    if previous is None:
        return "messages/s: -"
    seconds = max(1e-3, picture.taken_at - previous.taken_at)
    handled = max(0, picture.handled() - previous.handled()) / seconds
    failed = max(0, picture.failed() - previous.failed()) / seconds
    return f"messages/s: {handled:.1f} handled, {failed:.1f} failed"


__all__ = ["CLEAR", "Picture", "agent_rows", "event_line", "render_frame"]

"""``paglets events | top``: watch a node — its event log, and a refreshing picture of it and its mesh.

``events`` reads the node's event log over ZeroMQ (the ``events`` op);
``--follow`` keeps reading with a bounded long poll (the node holds each
read until there is news, at most :data:`FOLLOW_WAIT` seconds), so it never
busy-polls. ``top`` redraws one frame every ``--interval`` seconds (plain
ANSI); ``--once`` prints a single frame. Ctrl-C ends either quietly.
"""

from __future__ import annotations

import json
import shutil
import threading

import click

from paglets.cli.output import Cli, address_argument
from paglets.cli.top_view import CLEAR, EVENT_LINES, Picture, event_line, render_frame
from paglets.client.addresses import check_address
from paglets.core.errors import NodeUnreachableError

FOLLOW_WAIT = 25.0  # seconds the node may hold one read of --follow
BUSY_PAUSE = 1.0  # seconds --follow waits when the node has too many waiting readers
RECONNECT_PAUSE = 2.0  # seconds --follow waits after the node did not answer
READ_LIMIT = 500


@click.command("events")
@address_argument
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they happen (Ctrl-C ends).")
@click.option("--since", type=click.IntRange(min=0), default=0, show_default=True,
              help="Only events after this event id (0: the oldest the node keeps).")  # fmt: skip
@click.option("--agent", "agent_id", metavar="ID", help="Only events about this paglet.")
@click.option("--kind", metavar="KIND", help="Only events of this kind (an old name of a kind works too).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="At most this many events (without --follow).")  # fmt: skip
@click.pass_obj
def events(
    cli: Cli, address: str, follow: bool, since: int, agent_id: str | None, kind: str | None, limit: int
) -> None:
    """Print a node's events, oldest first: id, time, kind, paglet, class, details, error.

    With --json: a JSON list, or with --follow one JSON object per line.
    """
    address = check_address(address)
    if not follow:
        answer = cli.client.events(address, since=since, limit=limit, agent_id=agent_id, kind=kind)
        cli.emit(answer["events"], lambda rows: "\n".join(event_line(e) for e in rows) or "no events")
        return
    try:
        _follow(cli, address, since, agent_id, kind)
    except KeyboardInterrupt:
        pass


def _follow(cli: Cli, address: str, cursor: int, agent_id: str | None, kind: str | None) -> None:
    pause = threading.Event()  # never set: waits below are pauses, cut short only by Ctrl-C
    while True:
        try:
            answer = cli.client.events(
                address, since=cursor, limit=READ_LIMIT, agent_id=agent_id, kind=kind, wait=FOLLOW_WAIT
            )
        except NodeUnreachableError as exc:
            click.echo(f"paglets events: {exc}; trying again in {RECONNECT_PAUSE:g} s", err=True)
            pause.wait(RECONNECT_PAUSE)
            continue
        for event in answer["events"]:
            click.echo(json.dumps(event, sort_keys=True, default=str) if cli.as_json else event_line(event))
        cursor = answer["next"]
        if answer.get("busy") and not answer["events"]:
            pause.wait(BUSY_PAUSE)


@click.command("top")
@address_argument
@click.option("--interval", type=click.FloatRange(min=0.5), default=2.0, show_default=True,
              help="Seconds between frames.")  # fmt: skip
@click.option("--once", is_flag=True, help="Print one frame and exit (no screen clearing).")
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many frames.")
@click.pass_obj
def top(cli: Cli, address: str, interval: float, once: bool, count: int | None) -> None:
    """A refreshing picture of a node: its mesh, its paglets (deepest mailboxes first), rates, recent events."""
    address = check_address(address)
    frames = 1 if once else count
    previous: Picture | None = None
    pause = threading.Event()
    shown = 0
    try:
        while frames is None or shown < frames:
            picture = _picture(cli, address)
            if cli.as_json:
                click.echo(json.dumps(picture.__dict__, sort_keys=True, default=str))
            else:
                height = shutil.get_terminal_size((120, 40)).lines
                text = render_frame(picture, previous, height=height)
                click.echo(text if once else CLEAR + text)
            previous = picture
            shown += 1
            if frames is None or shown < frames:
                pause.wait(interval)
    except KeyboardInterrupt:
        pass


def _picture(cli: Cli, address: str) -> Picture:
    client = cli.client
    health = client.health(address)
    hosts = client.request(address, "hosts", {}).header.get("hosts") or []
    agents = client.list_agents(address, active=True, inactive=True)
    last = client.events(address, since=0, limit=1)["last"]
    recent = client.events(address, since=max(0, last - EVENT_LINES), limit=EVENT_LINES)["events"]
    return Picture(health, hosts, agents, recent)


COMMANDS = (events, top)

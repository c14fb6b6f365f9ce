"""``paglets``: talk to running nodes from a shell.

Every node command takes the node address first: ``tcp://HOST:PORT``, or
``relay+tcp://RELAY:PORT/NODE`` for a node behind a relay. Output is readable
text by default and JSON with ``--json``. Any paglets error, bad JSON
argument, bad address or file error prints ``Error: <type>: <message>`` on
stderr and exits 1; usage errors exit 2. ``--curve-secret`` (and
``--curve-server-key``) talk to nodes that require CurveZMQ; ``paglets keys
generate`` makes the key files.

Replies and states are decoded to plain data (a dataclass becomes a dict with
a ``__class__`` key), so the CLI never needs the paglets' own code. Each
command is one small function on :data:`main`; add one the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from paglets.cli.common import UnixTime, api_key_from_env, fail, parse_json, to_json
from paglets.client.host_client import DEFAULT_TIMEOUT, HostClient
from paglets.client.security import CurveIdentity, generate_keys
from paglets.client.transfer import TransferTicket
from paglets.client.transport import check_address
from paglets.core.errors import PagletError
from paglets.core.messages import MAX_PRIORITY, NORMAL_PRIORITY, UNQUEUED_PRIORITY, Message
from paglets.persistence.persistency import DeactivationPolicy
from paglets.wire import codec, protocol
from paglets.wire.message_codec import encode_message


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
    """What every command needs: the client and the output mode."""

    client: HostClient
    as_json: bool

    def emit(self, value: Any, readable: Callable[[Any], str]) -> None:
        """Print ``value`` as JSON, or as ``readable(value)`` text (nothing when that is empty)."""
        text = to_json(value) if self.as_json else readable(value)
        if text:
            click.echo(text)


class CliGroup(click.Group):
    """A group that turns paglets errors into one ``Error:`` line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (PagletError, ValueError, OSError) as exc:
            fail(exc)


def address_argument(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("address", metavar="ADDR")(function)


def ticket_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The terms of a move, each named after its TransferTicket field (unset: the ticket's default)."""
    options = (
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds the move may take before it is called off (default 10).",
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
    """
    if api_key_env and api_key:
        raise click.UsageError("give --api-key-env or --api-key, not both")
    if curve_server_key and not curve_secret:
        raise click.UsageError("--curve-server-key needs --curve-secret")
    if api_key_env:
        api_key = api_key_from_env(api_key_env)
    curve = CurveIdentity.from_files(curve_secret, curve_server_key) if curve_secret else None
    ctx.obj = Cli(HostClient(api_key=api_key or None, timeout=timeout, curve=curve), as_json)


# -- node ----------------------------------------------------------------------
@main.command()
@address_argument
@click.pass_obj
def health(cli: Cli, address: str) -> None:
    """Show a node's name, version, counts and uptime."""
    cli.emit(cli.client.health(check_address(address)), key_value_lines)


@main.command("ls")
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


@main.command()
@address_argument
@click.option("--online-only", is_flag=True, help="Leave out the nodes that have gone quiet.")
@click.pass_obj
def hosts(cli: Cli, address: str, online_only: bool) -> None:
    """List the nodes of the mesh that node ADDR knows, itself included."""
    reply = cli.client.request(check_address(address), "hosts", {"online": online_only})
    cli.emit(reply.header.get("hosts") or [], host_table)


# -- keys ----------------------------------------------------------------------
@main.group()
def keys() -> None:
    """Make CurveZMQ key files."""


@keys.command("generate")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@click.option(
    "--name",
    default="paglets",
    show_default=True,
    help="Base name of the files: NAME.key (public) and NAME.key_secret (secret).",
)
@click.pass_obj
def generate(cli: Cli, directory: str, name: str) -> None:
    """Write a new key pair into DIR; never overwrites existing key files.

    Give NAME.key to the nodes that should let its holder in (their
    --curve-allow directory); keep NAME.key_secret to yourself.
    """
    if not protocol.AGENT_ID_PATTERN.match(name):
        raise click.BadParameter(f"{name!r}: use 1-128 of A-Z a-z 0-9 . _ -", param_hint="'--name'")
    folder = Path(directory).expanduser()
    existing = [str(path) for path in (folder / f"{name}.key", folder / f"{name}.key_secret") if path.exists()]
    if existing:
        verb = "exists" if len(existing) == 1 else "exist"
        raise FileExistsError(f"{' and '.join(existing)} already {verb}; not overwriting (pick another --name)")
    public, secret = generate_keys(folder, name)
    cli.emit({"public": str(public), "secret": str(secret)}, key_value_lines)


# -- one paglet ----------------------------------------------------------------
@main.command()
@address_argument
@click.argument("class_name", metavar="CLASS")
@click.option("--state", "state_json", metavar="JSON", help="Initial state: a JSON object of field values.")
@click.option("--init", "init_json", metavar="JSON", help="Argument for on_creation (event.init), as JSON.")
@click.option("--id", "agent_id", metavar="ID", help="Agent id to use instead of a generated one.")
@click.pass_obj
def create(
    cli: Cli, address: str, class_name: str, state_json: str | None, init_json: str | None, agent_id: str | None
) -> None:
    """Start a paglet of CLASS (package.module:ClassName) on a node."""
    state = parse_json(state_json, "--state")
    if state is not None and not isinstance(state, dict):
        raise ValueError(f"--state must be a JSON object, got {type(state).__name__}")
    init = parse_json(init_json, "--init")
    proxy = cli.client.create(check_address(address), class_name, state, init, agent_id)
    cli.emit({"agent_id": proxy.agent_id, "address": proxy.host_url}, key_value_lines)


@main.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.argument("kind")
@click.option("--arg", "arg_json", metavar="JSON", help="The message's single argument, as JSON.")
@click.option("--args", "args_json", metavar="JSON", help="The message's named arguments, as a JSON object.")
@click.option(
    "--priority",
    type=click.IntRange(UNQUEUED_PRIORITY, MAX_PRIORITY),
    default=NORMAL_PRIORITY,
    show_default=True,
    help="Message priority (0 bypasses the queue).",
)
@click.option("--oneway", is_flag=True, help="Do not wait for the handler; only for the node to accept it.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds to wait for the reply.")
@click.pass_obj
def send(
    cli: Cli,
    address: str,
    agent_id: str,
    kind: str,
    arg_json: str | None,
    args_json: str | None,
    priority: int,
    oneway: bool,
    timeout: float | None,
) -> None:
    """Send a KIND message to paglet AGENT and print its reply."""
    args = parse_json(args_json, "--args")
    if args is not None and not isinstance(args, dict):
        raise ValueError(f"--args must be a JSON object, got {type(args).__name__}")
    message = Message(kind, args, parse_json(arg_json, "--arg"), priority=priority)
    address = check_address(address)
    if oneway:
        cli.client.send_oneway(address, agent_id, message)
        cli.client.flush(address, timeout)  # a refused message (unknown paglet, full mailbox) raises here
        cli.emit({"agent_id": agent_id, "queued": True}, lambda _: f"queued for {agent_id}")
        return
    cli.emit(send_plain(cli.client, address, agent_id, message, timeout), reply_text)


@main.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.pass_obj
def dispose(cli: Cli, address: str, agent_id: str) -> None:
    """Dispose of paglet AGENT (runs its on_disposing, stops its worker)."""
    cli.client.dispose(check_address(address), agent_id)
    cli.emit({"agent_id": agent_id, "disposed": True}, lambda _: f"disposed {agent_id}")


# -- parking -------------------------------------------------------------------
@main.command()
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


@main.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.pass_obj
def activate(cli: Cli, address: str, agent_id: str) -> None:
    """Wake parked paglet AGENT on node ADDR; mail queued for it is delivered first."""
    proxy = cli.client.activate(check_address(address), agent_id)
    result = {"agent_id": proxy.agent_id, "address": proxy.host_url, "active": True}
    cli.emit(result, lambda _: f"activated {agent_id}")


# -- movement ------------------------------------------------------------------
@main.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.argument("target", metavar="TARGET")
@ticket_options
@click.pass_obj
def dispatch(cli: Cli, address: str, agent_id: str, target: str, **terms: Any) -> None:
    """Move paglet AGENT from node ADDR to TARGET (a node address or name); print its new address."""
    new_address = cli.client.dispatch(check_address(address), agent_id, transfer_ticket(target, terms))
    cli.emit({"agent_id": agent_id, "address": new_address}, lambda moved: moved["address"])


@main.command()
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
    ticket = None if target is None else transfer_ticket(target, terms)
    proxy = cli.client.clone(check_address(address), agent_id, ticket)
    cli.emit({"agent_id": proxy.agent_id, "address": proxy.host_url}, key_value_lines)


@main.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.option("--to", "to_address", metavar="NODE_ADDR", required=True, help="The node that takes the paglet back.")
@click.pass_obj
def retract(cli: Cli, address: str, agent_id: str, to_address: str) -> None:
    """Pull paglet AGENT, now on node ADDR, back to node NODE_ADDR; print its new address."""
    new_address = cli.client.retract(check_address(address), agent_id, check_address(to_address))
    cli.emit({"agent_id": agent_id, "address": new_address}, lambda moved: moved["address"])


# -- requests and output -------------------------------------------------------
def transfer_ticket(target: str, terms: dict[str, Any]) -> TransferTicket:
    """A ticket to TARGET (a node address, or a name the node knows) with the terms given on the command line."""
    destination = target if protocol.AGENT_ID_PATTERN.match(target) else check_address(target)
    return TransferTicket(destination, **{name: value for name, value in terms.items() if value not in (None, ())})


def send_plain(client: HostClient, address: str, agent_id: str, message: Message, timeout: float | None) -> Any:
    """Send ``message`` and decode the reply to plain data (``HostClient.send`` would import its classes)."""
    header: dict[str, Any] = {"agent": agent_id}
    if message.priority != NORMAL_PRIORITY:
        header["prio"] = message.priority
    reply = client.request(address, "send", header, (encode_message(message),), timeout=timeout)
    return codec.decode_plain(reply.payload[0]) if reply.payload and reply.payload[0] else None


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


if __name__ == "__main__":
    main()

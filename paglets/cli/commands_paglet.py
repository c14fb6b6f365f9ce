"""``paglets create | send | dispose``: start one paglet, talk to it, end it."""

from __future__ import annotations

from typing import Any

import click

from paglets.cli.common import parse_json
from paglets.cli.output import Cli, address_argument, key_value_lines, reply_text
from paglets.client.addresses import check_address
from paglets.client.host_client import HostClient
from paglets.core.errors import MessageQueuedError
from paglets.core.messages import MAX_PRIORITY, NORMAL_PRIORITY, UNQUEUED_PRIORITY, Message
from paglets.wire import codec
from paglets.wire.message_codec import encode_message

EXIT_QUEUED = 3  # `send`: the message was queued instead of handled (see the ``paglets`` help)


@click.command()
@address_argument
@click.argument("class_name", metavar="CLASS")
@click.option("--state", "state_json", metavar="JSON", help="Initial state: a JSON object of field values.")
@click.option("--init", "init_json", metavar="JSON", help="Argument for on_creation (event.init), as JSON.")
@click.option("--id", "agent_id", metavar="ID", help="Agent id to use instead of a generated one.")
@click.pass_obj
def create(
    cli: Cli, address: str, class_name: str, state_json: str | None, init_json: str | None, agent_id: str | None
) -> None:
    """Start a paglet of CLASS (package.module:ClassName) on a node; print its id and address.

    The node imports CLASS only from modules it allows: the package's own
    (paglets.examples among them) and those given to paglets-node
    --allow-module.

    \b
    Example:
      paglets create tcp://127.0.0.1:7700 paglets.examples.echo:EchoPaglet --id echo-1 --state '{"greeting": "hi"}'
    """
    state = parse_json(state_json, "--state")
    if state is not None and not isinstance(state, dict):
        raise ValueError(f"--state must be a JSON object, got {type(state).__name__}")
    init = parse_json(init_json, "--init")
    proxy = cli.client.create(check_address(address), class_name, state, init, agent_id)
    cli.emit({"agent_id": proxy.agent_id, "address": proxy.host_url}, key_value_lines)


@click.command()
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
@click.pass_obj
def send(
    cli: Cli, address: str, agent_id: str, kind: str, arg_json: str | None, args_json: str | None, priority: int,
    oneway: bool,
) -> None:  # fmt: skip
    """Send a KIND message to paglet AGENT and print its reply.

    KIND names the message (the paglet's handle_message sees it as
    message.kind). --arg and --args are JSON: a string needs its quotes.

    \b
    Examples:
      paglets send tcp://127.0.0.1:7700 echo-1 echo --arg '"hello"'
      paglets send tcp://127.0.0.1:7700 counter-1 add --arg 5 --timeout 60

    Exit status 3 the message was queued, not handled: the paglet is parked and
    does not wake on messages, or its node is away behind a relay. It runs
    later and no reply will come; what was printed says so, with the message id.
    """
    args = parse_json(args_json, "--args")
    if args is not None and not isinstance(args, dict):
        raise ValueError(f"--args must be a JSON object, got {type(args).__name__}")
    message = Message(kind, args, parse_json(arg_json, "--arg"), priority=priority)
    address = check_address(address)
    if oneway:
        cli.client.send_oneway(address, agent_id, message)
        cli.client.flush(address)  # a refused message (unknown paglet, full mailbox) raises here
        cli.emit({"agent_id": agent_id, "queued": True}, lambda _: f"queued for {agent_id}")
        return
    try:
        reply = send_plain(cli.client, address, agent_id, message)
    except MessageQueuedError as queued:
        said = {"agent_id": agent_id, "queued": True, "message_id": queued.message_id, "reason": str(queued)}
        cli.emit(said, lambda value: value["reason"])
        raise click.exceptions.Exit(EXIT_QUEUED) from None
    cli.emit(reply, reply_text)


@click.command()
@address_argument
@click.argument("agent_id", metavar="AGENT")
@click.pass_obj
def dispose(cli: Cli, address: str, agent_id: str) -> None:
    """Dispose of paglet AGENT (runs its on_disposing, stops its worker)."""
    cli.client.dispose(check_address(address), agent_id)
    cli.emit({"agent_id": agent_id, "disposed": True}, lambda _: f"disposed {agent_id}")


def send_plain(client: HostClient, address: str, agent_id: str, message: Message) -> Any:
    """Send ``message`` and decode the reply to plain data (``HostClient.send`` would import its classes)."""
    header: dict[str, Any] = {"agent": agent_id, "mid": message.message_id}
    if message.priority != NORMAL_PRIORITY:
        header["prio"] = message.priority
    reply = client.request(address, "send", header, (encode_message(message),))
    return codec.decode_plain(reply.payload[0]) if reply.payload and reply.payload[0] else None


COMMANDS = (create, send, dispose)

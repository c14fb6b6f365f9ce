"""``paglets keys generate``: make CurveZMQ key files."""

from __future__ import annotations

from pathlib import Path

import click

from paglets.cli.output import Cli, key_value_lines
from paglets.client.security import generate_keys
from paglets.wire import protocol


@click.group()
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


COMMANDS = (keys,)

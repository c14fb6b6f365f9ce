"""``paglets artifacts put | get | ls | rm``: exchange files with a node's artifact store.

Transfers stream over ZeroMQ in chunks (:mod:`paglets.client.artifacts`);
files over a few MiB show a progress bar on stderr. ``get --from SOURCE``
makes node ADDR fetch the artifact from node SOURCE first (node to node),
then downloads it from ADDR.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from paglets.cli.output import Cli, address_argument, format_table, key_value_lines
from paglets.cli.progress import ProgressBar
from paglets.client.addresses import check_address
from paglets.core.artifacts import ArtifactRef, check_artifact_id, check_artifact_name

_progress_option = click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")


@click.group()
def artifacts() -> None:
    """Exchange files with a node: upload, download, list and delete its artifacts."""


@artifacts.command()
@address_argument
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="Name to record (metadata only; default: the file's name).")
@_progress_option
@click.pass_obj
def put(cli: Cli, address: str, path: str, name: str | None, no_progress: bool) -> None:
    """Upload the file PATH to node ADDR; prints its artifact (the ID is its sha256)."""
    bar = ProgressBar(f"put {Path(path).name}", enabled=not no_progress)
    ref = cli.client.upload_artifact(check_address(address), path, name=name, progress=bar)
    cli.emit(ref.to_wire(), key_value_lines)


@artifacts.command()
@address_argument
@click.argument("artifact_id", metavar="ID")
@click.argument("target", required=False, type=click.Path(dir_okay=False))
@click.option("--from", "source", metavar="SOURCE", help="Node that holds it: ADDR fetches it from there first.")
@_progress_option
@click.pass_obj
def get(cli: Cli, address: str, artifact_id: str, target: str | None, source: str | None, no_progress: bool) -> None:
    """Download artifact ID from node ADDR to TARGET (default: its name, in the current directory)."""
    address, client = check_address(address), cli.client
    check_artifact_id(artifact_id)
    if source is not None:
        ref = client.fetch_artifact(address, client.stat_artifact(check_address(source), artifact_id))
    else:
        ref = client.stat_artifact(address, artifact_id)
    destination = Path(target) if target else Path.cwd() / check_artifact_name(ref.name)
    bar = ProgressBar(f"get {destination.name}", enabled=not no_progress)
    written = client.download_artifact(ref, destination, progress=bar)
    cli.emit({**ref.to_wire(), "path": str(written)}, key_value_lines)


@artifacts.command("ls")
@address_argument
@click.pass_obj
def list_artifacts(cli: Cli, address: str) -> None:
    """List the artifacts node ADDR holds, and how much of its quota they take."""
    reply = cli.client.request(check_address(address), "artifact_list")
    value = {"artifacts": reply.header.get("artifacts") or [], "usage": reply.header.get("usage") or {}}
    cli.emit(value, _artifact_table)


@artifacts.command("rm")
@address_argument
@click.argument("artifact_id", metavar="ID")
@click.pass_obj
def remove(cli: Cli, address: str, artifact_id: str) -> None:
    """Delete artifact ID from node ADDR."""
    address = check_address(address)
    ref = ArtifactRef(address, check_artifact_id(artifact_id), "", 0, artifact_id, 0.0)
    cli.client.delete_artifact(ref)
    cli.emit({"id": artifact_id, "deleted": True}, lambda _: f"deleted {artifact_id}")


def _artifact_table(value: dict[str, Any]) -> str:
    rows = [
        [item.get("id", ""), str(item.get("name", "")), str(item.get("size", "")), item.get("owner") or "-",
         time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item.get("created") or 0))]
        for item in value["artifacts"]
    ]  # fmt: skip
    usage = value["usage"]
    quota = usage.get("quota")
    summary = f"{len(rows)} artifacts; {usage.get('used', 0)} bytes taken of {quota if quota else 'unlimited'}"
    if not rows:
        return summary
    return format_table(["ID", "NAME", "SIZE", "OWNER", "CREATED"], rows) + "\n" + summary


COMMANDS = (artifacts,)

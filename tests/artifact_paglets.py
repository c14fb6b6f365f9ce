"""Paglets the artifact tests use: they upload, download and delete artifacts, and keep refs in state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.artifacts import ArtifactRef
from paglets.core.messages import Message


@dataclass
class ArtifactState(PagletState):
    refs: list[ArtifactRef] = field(default_factory=list)  # every ref it made or was sent, in state


class ArtifactPaglet(Paglet[ArtifactState]):
    """``upload`` {path, host_url?, name?} -> ref; ``download`` {ref?, index?, target} -> path;
    ``delete`` {ref}; ``receive`` (args["artifact"], from send_artifact) -> the ref, kept in state;
    ``refs`` -> the refs in state; ``where`` -> this node's name."""

    State = ArtifactState

    def handle_message(self, message: Message) -> Any:
        args = message.args
        if message.kind == "upload":
            ref = self.upload_artifact(args["path"], host_url=args.get("host_url"), name=args.get("name"))
            with self.locked():
                self.state.refs.append(ref)
            return ref
        if message.kind == "receive":
            ref = args["artifact"]
            with self.locked():
                self.state.refs.append(ref)
            return ref
        if message.kind == "download":
            ref = args.get("ref") or self.state.refs[args.get("index", -1)]
            return str(self.download_artifact(ref, args["target"]))
        if message.kind == "delete":
            self.delete_artifact(args["ref"])
            return True
        if message.kind == "refs":
            return list(self.state.refs)
        if message.kind == "where":
            return self.context.name
        return self.not_handled()

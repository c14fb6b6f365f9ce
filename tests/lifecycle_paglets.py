"""Paglets for the lifecycle-order tests (an importable module: workers import paglet classes by name)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class TidyState(PagletState):
    log: list[str] = field(default_factory=list)  # hooks and resource cleanups, in the order they ran
    run_began: bool = False
    kill_on_arrival: int = 0  # a node process to SIGKILL from on_arrival (the checkpoint test); 0: none


class TidyPaglet(Paglet[TidyState]):
    """Opens resources on request; every hook and every cleanup appends a line to ``log``.

    ``open`` (args ``name``, ``fail``, ``suppress``) registers a cleanup that
    logs ``cleanup <name>`` and, with ``fail``, raises ``RuntimeError("<name>
    is still busy")``. ``scratch`` writes a file into the work dir.
    """

    State = TidyState

    def _note(self, line: str) -> None:
        with self.locked():
            self.state.log.append(line)

    def on_dispatching(self, event: Any) -> None:
        self._note("on_dispatching")

    def on_reverting(self, event: Any) -> None:
        self._note("on_reverting")

    def on_deactivating(self, event: Any) -> None:
        self._note("on_deactivating")

    def on_disposing(self, event: Any) -> None:
        self._note("on_disposing")

    def on_activation(self, event: Any) -> None:
        self._note("on_activation")

    def on_arrival(self, event: Any) -> None:
        self._note("on_arrival")
        if self.state.kill_on_arrival:
            os.kill(self.state.kill_on_arrival, signal.SIGKILL)  # the source node dies before it hears "arrived"

    def run(self) -> None:
        with self.locked():
            self.state.run_began = True

    def _open(self, name: str, fail: bool, suppress: bool) -> str:
        def cleanup() -> None:
            self._note(f"cleanup {name}")
            if fail:
                raise RuntimeError(f"{name} is still busy")

        self.resources.register(name, cleanup, suppress=suppress)
        return name

    def handle_message(self, message: Message) -> Any:
        kind = message.kind
        if kind == "open":
            args = message.args
            return self._open(args["name"], bool(args.get("fail")), bool(args.get("suppress")))
        if kind == "log":
            with self.locked():
                return list(self.state.log)
        if kind == "run-began":
            return self.state.run_began
        if kind == "scratch":
            path = self.context.work_dir() / "scratch.txt"
            path.write_text("scratch")
            return str(path)
        if kind == "where":
            return self.context.name
        return self.not_handled()

"""Starting and ending paglets on this node: create, fork, hooks, dispose.

Owns no state of its own: slots live in the broker's table, pids in
:class:`~paglets.node.procs.processes.WorkerProcesses`; this part sequences a
paglet's birth (reserve the agent id, fork a worker, run the start hook) and
its end (``on_disposing``, resource cleanup, the worker's exit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import uuid
from typing import TYPE_CHECKING, Any

from paglets.client.security import CurveIdentity
from paglets.core.errors import HostError, InvalidAgentError, PagletError
from paglets.core.events import PersistencyEvent
from paglets.waiting import wait_for
from paglets.wire import codec, protocol
from paglets.worker.spec import WorkerSpec

if TYPE_CHECKING:
    from paglets.node.host import Host

log = logging.getLogger("paglets.lifecycle")


class Lifecycle:
    """Births and deaths of the paglets of one node."""

    def __init__(self, host: Host):
        self._host = host

    def start_paglet(
        self,
        class_name: str,
        payload: list[bytes],
        *,
        agent_id: str | None = None,
        plain: bool = False,
        hook: str = "on_creation",
        event: dict[str, Any] | None = None,
        prepare_only: bool = False,
        token: str | None = None,
        source: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Fork a worker for ``class_name`` and run its start hook; returns the agent id.

        With ``prepare_only`` the worker only loads its class and waits for an
        arriving paglet's state (see :mod:`paglets.node.flows.movement`).
        """
        host = self._host
        broker = host.require_running()
        check_class_name(class_name)
        agent_id = protocol.validate_agent_id(agent_id) if agent_id else uuid.uuid4().hex
        nonce = token or uuid.uuid4().hex
        limit = host.start_timeout if timeout is None else timeout
        start_header: dict[str, Any] | None = None
        if not prepare_only:
            start_header = {"hook": hook, "plain": plain}
            if event is not None:
                start_header["event"] = event
        started = broker.expect_worker(agent_id, nonce, class_name, start_header, payload, limit, source)
        try:
            self.fork_worker(agent_id, nonce, class_name)
        except BaseException:
            broker.stop_worker(agent_id)
            raise
        try:
            wait_for(started, limit + 1, f"paglet {agent_id} ({class_name}) to start on {host.name}")
        except BaseException:
            self.remove_worker(agent_id)
            raise
        if not prepare_only:
            host.events.emit("paglet-created", agent_id=agent_id, class_name=class_name, hook=hook)
        return agent_id

    def fork_worker(self, agent_id: str, nonce: str, class_name: str) -> None:
        """Ask the template process for a worker; the broker slot must exist already."""
        host = self._host
        host.zygote.fork(self.worker_spec(agent_id, nonce, class_name))
        host.zygote.note_class(class_name, list(sys.path))

    def worker_spec(self, agent_id: str, nonce: str, class_name: str) -> WorkerSpec:
        host = self._host
        return WorkerSpec(
            agent_id=agent_id,
            token=nonce,
            class_name=class_name,
            back_endpoint=host.broker.back_endpoint,
            node_name=host.name,
            node_address=host.address,
            work_dir=str(host.work_path(agent_id)),
            storage_root=str(host.persistence_dir / "storage"),
            heartbeat=host.heartbeat_interval,
            heartbeat_misses=3,
            sys_path=list(sys.path),
            cwd=os.getcwd(),
            api_key=host.api_key,
            curve=host.curve,
            storage_quota=host.persistent_storage_quota_bytes,
            log_level=logging.getLevelName(logging.getLogger("paglets").getEffectiveLevel()),
        )

    def run_hook(self, agent_id: str, name: str, event: dict[str, Any], timeout: float) -> None:
        """Run one of the paglet's lifecycle hooks in its worker."""
        future = self._host.require_running().call_worker(agent_id, {"op": "hook", "name": name, "event": event})
        wait_for(future, timeout, f"hook {name} of paglet {agent_id}")

    def dispose(self, agent_id: str) -> None:
        """Run ``on_disposing``, clean up the paglet's resources and stop its worker."""
        host = self._host
        broker = host.require_running()
        event = PersistencyEvent(agent_id, host.name, host.address, reason="dispose").to_wire()
        try:
            future = broker.call_worker(agent_id, {"op": "dispose", "event": event})
            wait_for(future, host.client.timeout, f"on_disposing of {agent_id}")
        except InvalidAgentError:
            raise
        except PagletError as exc:
            log.warning("node %s: dispose hook of %s failed: %s", host.name, agent_id, exc)
        self.remove_worker(agent_id)
        host.files.drop(agent_id)
        host.checkpoints.forget(agent_id)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(host.work_path(agent_id))
        host.events.emit("paglet-disposed", agent_id=agent_id)

    def remove_worker(self, agent_id: str, grace: float = 2.0) -> None:
        """Take the paglet out of the broker and make sure its process is gone."""
        host = self._host
        pid = wait_for(host.broker.stop_worker(agent_id), 10, "the broker")
        if pid is not None and not host.processes.wait_gone(pid, grace):
            host.processes.kill(pid)


def _curve_wire(curve: CurveIdentity | None) -> dict[str, str] | None:
    if curve is None:
        return None
    return {"public": curve.public.decode(), "secret": curve.secret.decode(), "server": curve.server_key.decode()}


def check_class_name(class_name: str) -> None:
    if not isinstance(class_name, str) or ":" not in class_name:
        raise HostError(f"paglet class name {class_name!r} must look like 'package.module:ClassName'")
    if class_name.startswith("__main__:"):
        raise HostError(
            f"paglet class {class_name!r} is defined in __main__; worker processes import paglet "
            "classes by name, so move it to an importable module"
        )


class WorkerResources:
    """The node's view of a paglet's ResourceRegistry, which lives in its worker."""

    def __init__(self, host: Host, agent_id: str):
        self._host = host
        self.agent_id = agent_id

    def status(self) -> dict[str, bool]:
        future = self._host.require_running().call_worker(self.agent_id, {"op": "resources"})
        _header, payload = wait_for(future, 10, f"the resources of {self.agent_id}")
        return dict(codec.decode(payload[0])) if payload else {}

    def cleanup(self, *, reason: str = "lifecycle") -> None:
        future = self._host.require_running().call_worker(self.agent_id, {"op": "cleanup", "reason": reason})
        wait_for(future, 30, f"the cleanup of {self.agent_id}")


__all__ = ["Lifecycle", "WorkerResources", "check_class_name"]

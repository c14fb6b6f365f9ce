"""Starting and ending paglets on this node: create, fork, hooks, dispose, crashes.

Owns no state of its own: slots live in the broker's table, pids in
:class:`~paglets.node.procs.processes.WorkerProcesses`; this part sequences a
paglet's birth (reserve the agent id, fork a worker, run the start hook) and
its end (``on_disposing``, resource cleanup, the worker's exit). Any thread.

Resource cleanups (:meth:`Lifecycle.release_resources`) run before a paglet
leaves its worker by any way: dispatch, retract, deactivation, disposal. A
cleanup that fails (and was not registered with ``suppress=True``) cancels
that operation with :class:`~paglets.core.errors.LifecycleError`; the paglet
stays, active. The order of each way is in ``docs/architecture.md``
("Lifecycle order").
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from paglets.client.host_client import create_request
from paglets.client.security import CurveIdentity
from paglets.core.agent import PagletState, check_state_class
from paglets.core.errors import ForbiddenError, HostError, InvalidAgentError, LifecycleError, PagletError
from paglets.core.events import ContextEventLog, PersistencyEvent
from paglets.core.resources import ResourceRegistry
from paglets.node.broker.commands import LOOP_DEADLINE, BrokerCommands
from paglets.node.broker.slots import worker_ident
from paglets.node.config import NodeConfig
from paglets.node.flows.checkpoints import Checkpointer
from paglets.node.identity import NodeIdentity
from paglets.node.procs.processes import WorkerProcesses
from paglets.node.procs.template_process import TemplateProcess
from paglets.node.storage.files import FileRegistry
from paglets.waiting import wait_for
from paglets.wire import codec, protocol
from paglets.wire.codec.names import allow_hint
from paglets.worker.spec import WorkerSpec

log = logging.getLogger("paglets.lifecycle")
STOP_GRACE = 2.0  # seconds a worker asked to exit has before it is killed
START_SLACK = 1.0  # seconds beyond the start timeout we wait (the broker's own deadline fails the start first)
RESOURCES_DEADLINE = 10.0  # seconds a worker may take to list its resources
CLEANUP_DEADLINE = 30.0  # seconds a paglet's resource cleanups may take when nobody gave a deadline
MAX_EARLY_EVENTS = 8  # worker events held per starting paglet until its "create" event is out (run-finished: one)


class Lifecycle:
    """Births and deaths of the paglets of one node."""

    def __init__(
        self,
        broker: BrokerCommands,
        templates: TemplateProcess,
        processes: WorkerProcesses,
        events: ContextEventLog,
        here: NodeIdentity,
        config: NodeConfig,
        *,
        files: FileRegistry,
        checkpoints: Checkpointer,
        curve: CurveIdentity | None,
        call_timeout: float,
    ):
        self._broker = broker
        self._templates = templates
        self._processes = processes
        self._events = events
        self._here = here
        self._config = config
        self._files = files
        self._checkpoints = checkpoints
        self._curve = curve
        self._call_timeout = call_timeout
        # agent -> worker events that came before its "create" event (run() may end first): told after it
        self._unannounced: dict[str, list[dict[str, Any]]] = {}
        self._unannounced_lock = threading.Lock()

    def create(self, cls: Any, state: Any = None, init: Any = None, agent_id: str | None = None) -> str:
        """Start a new paglet of ``cls`` (a class or ``"module:Class"``); its agent id once ``on_creation`` ran."""
        if isinstance(cls, type):
            codec.trust_class(cls)  # a class object of this process: its module may be imported
            check_state_class(getattr(cls, "State", PagletState))
        header, payload = create_request(cls, state, init, agent_id)
        return self.start_paglet(header["cls"], list(payload), agent_id=agent_id, plain=bool(header.get("plain")))

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
        arriving paglet's state (see :mod:`paglets.node.flows.arrivals`).
        """
        check_class_name(class_name)
        self.check_allowed(class_name)
        check_loaded_state(class_name)
        agent_id = protocol.validate_agent_id(agent_id) if agent_id else uuid.uuid4().hex
        token = token or uuid.uuid4().hex
        limit = self._config.start_timeout if timeout is None else timeout
        start_header: dict[str, Any] | None = None
        if not prepare_only:
            start_header = {"hook": hook, "plain": plain}
            if event is not None:
                start_header["event"] = event
        if not prepare_only:
            with self._unannounced_lock:
                self._unannounced[agent_id] = []
        try:
            started = self._broker.expect_worker(agent_id, token, class_name, start_header, payload, limit, source)
            try:
                self.fork_worker(agent_id, token, class_name)
            except BaseException:
                self._broker.stop_worker(agent_id)
                raise
            try:
                what = f"paglet {agent_id} ({class_name}) to start on {self._here.name}"
                wait_for(started, limit + START_SLACK, what)
            except BaseException:
                self.remove_worker(agent_id)
                raise
            if not prepare_only:
                self._events.emit("create", agent_id=agent_id, class_name=class_name, hook=hook)
        finally:
            if not prepare_only:
                with self._unannounced_lock:
                    early = self._unannounced.pop(agent_id, [])
                for header in early:  # the paglet's own events after its creation, as they happened
                    self._tell_worker_event(agent_id, header)
        return agent_id

    def check_new_parked(self, cls: Any, state: Any, agent_id: str | None) -> tuple[str, str, bytes, bool]:
        """Check a paglet to be created parked (see :meth:`Parking.create_parked`) as :meth:`create` would:
        ``(agent_id, class_name, state bytes, plain)``."""
        if isinstance(cls, type):
            codec.trust_class(cls)
            check_state_class(getattr(cls, "State", PagletState))
        header, payload = create_request(cls, state, None, agent_id)
        class_name = header["cls"]
        check_class_name(class_name)
        self.check_allowed(class_name)
        check_loaded_state(class_name)
        agent_id = protocol.validate_agent_id(agent_id) if agent_id else uuid.uuid4().hex
        if wait_for(self._broker.has_slot(agent_id), 10, "the broker"):
            raise HostError(f"paglet {agent_id!r} already exists on node {self._here.name}")
        return agent_id, class_name, payload[0], bool(header.get("plain"))

    def check_allowed(self, class_name: str) -> None:
        """ForbiddenError unless this node may import the class's module (nothing is imported here)."""
        module = class_name.split(":", 1)[0]
        if not codec.POLICY.allows(module):
            raise ForbiddenError(
                f"paglet class {class_name!r}: module {module!r} is not allowed on node {self._here.name}; "
                + allow_hint(module)
            )

    def fork_worker(self, agent_id: str, token: str, class_name: str) -> None:
        """Ask the template process for a worker; the broker slot must exist already."""
        self._templates.fork(self.worker_spec(agent_id, token, class_name))
        self._templates.note_class(class_name, list(sys.path))

    def worker_spec(self, agent_id: str, token: str, class_name: str) -> WorkerSpec:
        here, config = self._here, self._config
        return WorkerSpec(
            agent_id=agent_id,
            token=token,
            class_name=class_name,
            back_endpoint=self._broker.back_endpoint,
            node_name=here.name,
            node_address=here.address,
            work_dir=str(self.work_path(agent_id)),
            storage_root=str(here.storage_root),
            heartbeat=config.heartbeat_interval,
            heartbeat_misses=3,
            sys_path=list(sys.path),
            cwd=os.getcwd(),
            api_key=config.api_key,
            curve=self._curve,
            storage_quota=config.persistent_storage_quota_bytes,
            log_level=logging.getLevelName(logging.getLogger("paglets").getEffectiveLevel()),
            allow_modules=[*codec.POLICY.prefixes(), class_name.partition(":")[0]],  # its own module: checked before
            allow_any_module=codec.POLICY.allow_any,
            ident=worker_ident(agent_id, token),
        )

    def work_path(self, agent_id: str) -> Path:
        return self._here.work_root / protocol.validate_agent_id(agent_id)

    def run_hook(self, agent_id: str, name: str, event: dict[str, Any], timeout: float) -> None:
        """Run one of the paglet's lifecycle hooks in its worker."""
        future = self._broker.call_worker(agent_id, {"op": "hook", "name": name, "event": event})
        wait_for(future, timeout, f"hook {name} of paglet {agent_id}")

    def release_resources(self, agent_id: str, operation: str, timeout: float) -> None:
        """Run the paglet's resource cleanups (newest first) before it leaves by ``operation``.

        A cleanup that fails without ``suppress=True`` cancels the operation:
        :class:`LifecycleError` naming the resource and its error (the failed
        cleanups stay registered; the others are done).
        """
        future = self._broker.call_worker(agent_id, {"op": "cleanup", "reason": operation})
        try:
            wait_for(future, timeout, f"the resource cleanups of paglet {agent_id} before its {operation}")
        except LifecycleError as exc:
            raise LifecycleError(
                f"{operation} of paglet {agent_id} on node {self._here.name} cancelled, the paglet stays here: {exc}"
            ) from None

    def dispose(self, agent_id: str) -> None:
        """Run ``on_disposing``, clean up the paglet's resources and stop its worker.

        A failing ``on_disposing`` is logged and the disposal goes on; a
        failing resource cleanup cancels it (LifecycleError), the paglet stays.
        """
        here = self._here
        event = PersistencyEvent(agent_id, here.name, here.address, reason="dispose").to_wire()
        try:
            self.run_hook(agent_id, "on_disposing", event, self._call_timeout)
        except InvalidAgentError:
            raise
        except PagletError as exc:
            log.warning("node %s: dispose hook of %s failed: %s", here.name, agent_id, exc)
        try:
            self.release_resources(agent_id, "dispose", self._call_timeout)
        except LifecycleError:
            raise
        except PagletError as exc:  # crashed or hung: nothing more to ask of it
            log.warning("node %s: resource cleanup of %s failed: %s", here.name, agent_id, exc)
        self._checkpoints.hold(agent_id)  # a crash from here on must not bring it back
        try:
            self.remove_worker(agent_id)
        except BaseException:
            self._checkpoints.release(agent_id)
            raise
        self.forget(agent_id)
        self._events.emit("dispose", agent_id=agent_id)

    def forget(self, agent_id: str) -> None:
        """What this node keeps for a paglet that is gone from it: files, checkpoint, work dir."""
        self._files.drop(agent_id)
        self._checkpoints.forget(agent_id)
        self.remove_work_dir(agent_id)

    def remove_work_dir(self, agent_id: str) -> None:
        """The paglet is gone from this node (moved on or disposed of): its scratch goes too."""
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.work_path(agent_id))

    def remove_worker(self, agent_id: str, grace: float = STOP_GRACE) -> None:
        """Take the paglet out of the broker and make sure its process is gone."""
        pid = wait_for(self._broker.stop_worker(agent_id), LOOP_DEADLINE, f"the broker to stop {agent_id}'s worker")
        if pid is not None and not self._processes.wait_gone(pid, grace):
            self._processes.kill(pid)

    # -- notices from the broker (on its lane for host calls) ------------------------------
    def worker_crashed(self, agent_id: str, pid: int | None, reason: str) -> None:
        log.warning("node %s: paglet %s crashed: %s", self._here.name, agent_id, reason)
        self._events.emit("crash", agent_id=agent_id, error=reason, pid=pid)
        if pid is not None:
            self._processes.kill(pid)  # a hung worker: make sure it is really gone

    def worker_event(self, agent_id: str, header: dict[str, Any]) -> None:
        with self._unannounced_lock:
            early = self._unannounced.get(agent_id)
            if early is not None and len(early) < MAX_EARLY_EVENTS:
                early.append(header)  # told once its "create" event is out
                return
        self._tell_worker_event(agent_id, header)

    def _tell_worker_event(self, agent_id: str, header: dict[str, Any]) -> None:
        if header.get("kind") == "run-finished":
            self._events.emit("run-finished", agent_id=agent_id, ok=bool(header.get("ok")))


def check_class_name(class_name: str) -> None:
    if not isinstance(class_name, str) or ":" not in class_name:
        raise HostError(f"paglet class name {class_name!r} must look like 'package.module:ClassName'")
    if class_name.startswith("__main__:"):
        raise HostError(
            f"paglet class {class_name!r} is defined in __main__; worker processes import paglet "
            "classes by name, so move it to an importable module"
        )


def check_loaded_state(class_name: str) -> None:
    """Refuse early a paglet class this process has loaded already whose state would not travel.

    Nothing is imported: a class named by a peer is looked up only among the
    modules already in ``sys.modules``; any other is checked by its worker.
    """
    module_name, _, qualname = class_name.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    state_class = getattr(found, "State", None) if isinstance(found, type) else None
    if isinstance(state_class, type):
        check_state_class(state_class)


class WorkerResources(ResourceRegistry):
    """A paglet's ResourceRegistry as its node sees it.

    What the paglet registered lives in its worker; what host-side code
    registers here lives in the node (cleanups run in the node's process) and
    is cleaned up when the paglet is disposed, leaves, parks or crashes.
    :meth:`status` shows both, :meth:`cleanup` cleans up both (the worker's first).
    """

    def __init__(self, broker: BrokerCommands, agent_id: str):
        super().__init__()
        self.broker = broker  # the current run's (the Host updates it after a restart)
        self.agent_id = agent_id

    def status(self) -> dict[str, bool]:
        future = self.broker.call_worker(self.agent_id, {"op": "resources"})
        _header, payload = wait_for(future, RESOURCES_DEADLINE, f"the resources of {self.agent_id}")
        status = dict(codec.decode(payload[0])) if payload else {}
        status.update(super().status())
        return status

    def cleanup(self, *, reason: str = "lifecycle") -> None:
        future = self.broker.call_worker(self.agent_id, {"op": "cleanup", "reason": reason})
        wait_for(future, CLEANUP_DEADLINE, f"the cleanup of {self.agent_id}")
        super().cleanup(reason=reason)

    def cleanup_host_side(self, *, reason: str) -> None:
        """Run only the cleanups registered in the node (the paglet's worker is gone)."""
        super().cleanup(reason=reason)


__all__ = ["Lifecycle", "WorkerResources", "check_class_name"]

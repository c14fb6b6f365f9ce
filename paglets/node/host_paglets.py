"""What a node offers for one paglet from its own process: resources, work dir, storage, files, mail.

:class:`PagletFacilities` has the public signatures of these ``Host``
methods (``host.work_dir_for(...)`` is ``host.per_paglet.work_dir_for(...)``,
see :func:`~paglets.node.host_services.delegate`). It owns nothing: the
resources and mail signals are the node's host-side parts
(:mod:`paglets.node.flows.host_side`), files the node's file registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from paglets.core.files import PagletFileRef
from paglets.node.assembly import RunningParts
from paglets.node.config import NodeConfig
from paglets.node.flows.host_side import HostResources, PagletMail
from paglets.node.flows.lifecycle import WorkerResources
from paglets.node.identity import NodeIdentity
from paglets.node.storage.files import FileRegistry
from paglets.persistence.storage import ManagedStorage, class_storage_dir


class PagletFacilities:
    """Per-paglet services of one node (any thread)."""

    def __init__(
        self,
        parts: Callable[[], RunningParts],
        info: Callable[[str], dict[str, Any]],
        config: NodeConfig,
        here: NodeIdentity,
        files: FileRegistry,
    ):
        self._parts = parts
        self._info = info  # agent_info: InvalidAgentError for an unknown paglet
        self._config = config
        self._here = here
        self._files = files
        self._resources = HostResources(lambda: parts().commands)  # what resources_for hands out
        self._mail = PagletMail(lambda: parts().commands)

    def on_event(self, event: Any) -> None:
        """Listener on the node's events: host-side cleanups run when their paglet goes."""
        self._resources.on_event(event)

    def resources_for(self, agent_id: str) -> WorkerResources:
        """The paglet's ResourceRegistry: what it registered, plus what host-side code registers here."""
        return self._resources.for_paglet(agent_id)

    def work_dir_for(self, agent_id: str, *, create: bool = True, check: bool = True) -> Path:
        if check:
            self._info(agent_id)
        path = self._parts().lifecycle.work_path(agent_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def persistent_storage_for(self, agent_id: str, *, quota_bytes: int | None = None) -> ManagedStorage:
        """The quota-limited storage directory shared by the paglet's class."""
        class_name = self._info(agent_id)["class_name"]
        quota = self._config.persistent_storage_quota_bytes if quota_bytes is None else quota_bytes
        return ManagedStorage(class_storage_dir(self._here.storage_root, class_name), quota)

    def register_file_for(
        self, agent_id: str, path: str | Path, *, name: str | None = None, mode: str = "copy"
    ) -> PagletFileRef:
        self._info(agent_id)
        return self._files.register(agent_id, path, name, mode)

    def registered_files_for(self, agent_id: str) -> list[PagletFileRef]:
        return self._files.files(agent_id)

    def unregister_file_for(self, agent_id: str, name: str | PagletFileRef) -> None:
        self._files.unregister(agent_id, name.name if isinstance(name, PagletFileRef) else str(name))

    def registered_file_path_for(self, agent_id: str, name: str) -> Path:
        return self._files.path(agent_id, name)

    def wait_message(self, agent_id: str, *, timeout: float | None = None) -> bool:
        """Wait on the paglet's mail signal (its own ``wait_message``'s): True once a handler of it takes
        a message or someone notifies, False after ``timeout`` seconds (None: up to an hour)."""
        return self._mail.wait(agent_id, timeout)

    def notify_message(self, agent_id: str) -> None:
        """Wake one waiter on the paglet's mail signal (the paglet's own wait_message included)."""
        self._mail.notify(agent_id)

    def notify_all_messages(self, agent_id: str) -> None:
        self._mail.notify(agent_id, everyone=True)


__all__ = ["PagletFacilities"]

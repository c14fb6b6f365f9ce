"""CodeRollout: a node with ``auto_update_from_git`` follows its checkout.

At construction (before anything binds) the node refuses a dirty checkout
and records its HEAD, which becomes the code version it advertises in the
mesh. :meth:`CodeRollout.update` (the ``update`` front op, ``paglets update``)
fetches and fast-forwards under the checkout's lock; when HEAD is no longer
the one this process started from, it reinstalls the code and restarts the
node: a thread parks every paglet (the node's ordinary shutdown: they wake
when the node is back) and then calls the restart callback, by default an
exec of the process's own command line.

The update endpoint runs commands, so it is refused on a node reached
through a relay and on one with neither an API key nor CurveZMQ.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paglets.core.errors import ForbiddenError, HostError, ProtocolError
from paglets.node.config import NodeConfig
from paglets.node.rollout.checkout import Checkout

log = logging.getLogger("paglets.rollout")
TARGET_PATTERN = re.compile(r"[0-9a-f]{4,64}\Z")
RESTART_DELAY = 0.2  # seconds between answering an update and stopping: the answer leaves first


def exec_own_command_line() -> None:
    """Replace this process with a fresh run of its own command line (new code is imported from scratch)."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *argv[1:]])


class CodeRollout:
    """The node's checkout and what it does with it; inert unless ``auto_update_from_git``."""

    def __init__(self, config: NodeConfig):
        self._config = config
        self._restart = config.auto_update_restart_callback or exec_own_command_line
        self._lock = threading.Lock()
        self._restarting = False
        self.checkout: Checkout | None = None
        self.start_head: str | None = None
        if config.auto_update_from_git:
            root = Path(config.git_repo_root) if config.git_repo_root is not None else Path.cwd()
            self.checkout = Checkout.find(root.expanduser())
            self.checkout.check_clean()
            self.start_head = self.checkout.head()

    @property
    def enabled(self) -> bool:
        return self.checkout is not None

    def code_version(self) -> str | None:
        """The version to advertise: the HEAD this process started from (None without auto-update)."""
        return self.start_head

    def catch_up(self) -> bool:
        """Before the node starts: fast-forward; True when HEAD moved (the code was reinstalled: restart now).

        A checkout that cannot be fetched (no network, say) is logged and the node starts as it is.
        """
        if self.checkout is None:
            return False
        try:
            return self._pull()["changed"]
        except HostError as exc:
            log.warning("auto-update at start skipped: %s", exc)
            return False

    def update(self, name: str, target: Any, shutdown: Callable[[], list[str]]) -> dict[str, Any]:
        """Fetch, fast-forward, reinstall and restart if HEAD moved (``shutdown`` parks and stops the node).

        ``target``: a commit id (or its first hex digits) the caller expects the upstream to be at; the
        update is refused, and nothing changes, when it is not.
        """
        self._check_allowed(name)
        if target is not None and (not isinstance(target, str) or not TARGET_PATTERN.match(target)):
            raise ProtocolError(f"update: target must be 4-64 lowercase hex digits (a commit id), got {target!r:.80}")
        answer = self._pull(target)
        answer["node"] = name
        answer["restarting"] = answer["changed"] and self._schedule_restart(name, shutdown)
        return answer

    def _check_allowed(self, name: str) -> None:
        config = self._config
        if config.connect_to:
            raise ForbiddenError(
                f"node {name} is reached through a relay: it refuses updates (the update endpoint runs commands)"
            )
        if not config.api_key and config.curve_secret is None:
            raise ForbiddenError(
                f"node {name} has neither an API key nor CurveZMQ: it refuses updates (the update endpoint runs "
                "commands; give it --api-key-env or --curve-secret)"
            )
        if self.checkout is None:
            raise HostError(f"node {name} does not follow a git checkout (start it with --auto-update-from-git)")

    def _pull(self, target: str | None = None) -> dict[str, Any]:
        checkout = self.checkout
        assert checkout is not None
        with checkout.locked():
            before = checkout.head()
            after = checkout.fast_forward(target)
            changed = after != self.start_head
            if changed:
                checkout.install(self._config.update_install_command)
        log.info("checkout %s: %s -> %s (started at %s)", checkout.root, before, after, self.start_head)
        return {"before": self.start_head, "after": after, "changed": changed}

    def _schedule_restart(self, name: str, shutdown: Callable[[], list[str]]) -> bool:
        with self._lock:
            if self._restarting:
                return True
            self._restarting = True
        threading.Thread(
            target=self._run_restart, args=(name, shutdown), name=f"paglets-restart-{name}", daemon=True
        ).start()
        return True

    def _run_restart(self, name: str, shutdown: Callable[[], list[str]]) -> None:
        threading.Event().wait(RESTART_DELAY)  # a deliberate pause: the update's answer is on its way
        log.warning("node %s: new code: parking paglets and restarting", name)
        try:
            lost = shutdown()
            if lost:
                log.error("node %s: %d paglet(s) could not be parked before the restart: %s", name, len(lost),
                          ", ".join(lost))  # fmt: skip
        finally:
            self._restart()


__all__ = ["CodeRollout", "exec_own_command_line"]

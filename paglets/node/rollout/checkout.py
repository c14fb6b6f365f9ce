"""The git checkout a node runs from: its HEAD, whether it is clean, fetch and fast-forward, reinstall.

Only fixed git commands run here, in the checkout, with a deadline and no
prompt; nothing a peer sends reaches a command line. Updates take an
exclusive lock in the checkout's git directory, so nodes sharing one checkout
update it one at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from paglets.core.errors import HostError

log = logging.getLogger("paglets.rollout")
GIT_TIMEOUT = 120.0  # seconds one git command may take (a fetch over a slow link)
INSTALL_TIMEOUT = 900.0  # seconds a reinstall may take
LOCK_NAME = "paglets-update.lock"
OUTPUT_CHARS = 400  # of a failed command's output, in an error message
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


class Checkout:
    """One git working tree."""

    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def find(cls, start: Path) -> Checkout:
        """The checkout holding ``start``; HostError if there is none."""
        if not start.is_dir():
            raise HostError(f"git repository root {start} is not a directory")
        top = _git(start, "rev-parse", "--show-toplevel", what=f"find the git checkout holding {start}")
        return cls(Path(top).resolve())

    def head(self) -> str:
        return _git(self.root, "rev-parse", "HEAD", what="read HEAD")

    def changed_files(self) -> list[str]:
        """Tracked files with uncommitted changes (untracked ones, build output say, do not count)."""
        argv = ["git", "status", "--porcelain", "--untracked-files=no"]  # "XY path" lines: not stripped
        out = _run(argv, self.root, GIT_TIMEOUT, "read the checkout's status")
        return [line[3:] for line in out.splitlines() if line.strip()]

    def check_clean(self) -> None:
        changed = self.changed_files()
        if changed:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            raise HostError(
                f"checkout {self.root} has uncommitted changes ({shown}): commit or stash them, "
                "or run without auto_update_from_git"
            )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the checkout's update lock (nodes sharing a checkout update it in turn)."""
        git_dir = Path(_git(self.root, "rev-parse", "--absolute-git-dir", what="find the git directory"))
        with open(git_dir / LOCK_NAME, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def fast_forward(self, target: str | None = None) -> str:
        """Fetch the branch's upstream and fast-forward to it; the new HEAD. Call under :meth:`locked`.

        With ``target`` (a commit id prefix) the upstream must be at it, or HostError and the checkout
        is left where it was (a refused update moves nothing)."""
        self.check_clean()
        _git(self.root, "fetch", "--quiet", what="fetch from the upstream")
        upstream = _git(self.root, "rev-parse", "@{upstream}", what="read the upstream's commit")
        if target is not None and not upstream.startswith(target):
            raise HostError(f"checkout {self.root}: the upstream is at {upstream}, not at {target} (not pushed yet?)")
        _git(self.root, "merge", "--ff-only", "--quiet", upstream, what="fast-forward to the upstream")
        return self.head()

    def install(self, command: str | None) -> None:
        """Reinstall the code: ``command`` (split like a shell would) or this Python's ``pip install -e``."""
        argv = shlex.split(command) if command else [sys.executable, "-m", "pip", "install", "--quiet", "-e", "."]
        _run(argv, self.root, INSTALL_TIMEOUT, f"reinstall with {shlex.join(argv)!r}")


def _git(cwd: Path, *args: str, what: str) -> str:
    return _run(["git", *args], cwd, GIT_TIMEOUT, what).strip()


def _run(argv: list[str], cwd: Path, timeout: float, what: str) -> str:
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **GIT_ENV},
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostError(f"cannot {what} in {cwd}: {exc}") from None
    if done.returncode != 0:
        output = " ".join((done.stderr or done.stdout).split())[-OUTPUT_CHARS:]
        raise HostError(f"cannot {what} in {cwd}: exit status {done.returncode}: {output}")
    return done.stdout


__all__ = ["Checkout"]

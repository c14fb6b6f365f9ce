"""Package boundaries hold: the import-linter contracts in pyproject.toml are kept."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept(tmp_path, capsys):
    cwd = os.getcwd()
    loggers = [one for one in logging.root.manager.loggerDict.values() if isinstance(one, logging.Logger)]
    enabled = [one for one in loggers if not one.disabled]
    os.chdir(ROOT)  # lint-imports reads pyproject.toml and imports paglets from here
    try:
        code = lint_imports(cache_dir=str(tmp_path / "cache"), no_logo=True)
    finally:
        os.chdir(cwd)
        for one in enabled:  # lint-imports configures logging and disables every logger that existed
            one.disabled = False
    assert code == 0, capsys.readouterr().out

"""Package boundaries hold: the import-linter contracts in pyproject.toml are kept."""

from __future__ import annotations

import os
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept(tmp_path, capsys):
    cwd = os.getcwd()
    os.chdir(ROOT)  # lint-imports reads pyproject.toml and imports paglets from here
    try:
        code = lint_imports(cache_dir=str(tmp_path / "cache"), no_logo=True)
    finally:
        os.chdir(cwd)
    assert code == 0, capsys.readouterr().out

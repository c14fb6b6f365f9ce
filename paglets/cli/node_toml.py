"""The TOML file of every ``paglets-node`` option with its default, generated from NodeConfig.

``configs/node.toml`` is this module's output (``paglets-node
--print-config > configs/node.toml``); a test keeps the two equal, so the
file can never drift from the options the node really takes.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from paglets.node.config import OptionSpec, option_specs

HEADER = """\
# paglets-node configuration: every option with its default value.
#
# Use it with `paglets-node --config configs/node.toml`. Keys are the
# command-line option names with underscores (--http-port -> http_port);
# a flag given on the command line overrides the value here. An unknown key
# is an error. Keys that are commented out have no fixed default.
# Generated from paglets/node/config.py (paglets-node --print-config).
#
# The same file may also hold the node's [[paglets]] (startup paglets) and
# [[resident_services]], after the options: it is then a launch config
# (docs/operations.md, "Running a fleet"). Check one with
# `paglets-node --check-config FILE`.
"""

# Options of the command line that are not node settings, as (key, default, doc).
CLI_ONLY: tuple[tuple[str, Any, str], ...] = (
    (
        "api_key_env",
        None,
        "Name of an environment variable holding the API key every client must send. Default: no key "
        "required. The node refuses to start when the variable is unset or empty.",
    ),
    ("log_level", "INFO", "Level of the log written to stderr: DEBUG, INFO, WARNING, ERROR or CRITICAL."),
)
CLI_ONLY_EXAMPLES = {"api_key_env": "PAGLETS_API_KEY"}


def toml_value(value: Any) -> str:
    """``value`` as TOML text (strings, numbers, booleans, lists and tables of strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(str(value))


def _entry(key: str, default: Any, doc: str, example: Any) -> str:
    comment = "\n".join(f"# {line}" for line in textwrap.wrap(doc, 76))
    if default is None:
        shown = example if example is not None else "..."
        return f"{comment}\n# {key} = {toml_value(shown)}\n"
    return f"{comment}\n{key} = {toml_value(default)}\n"


def render() -> str:
    """The whole file."""
    parts = [HEADER]
    specs: list[OptionSpec] = list(option_specs())
    for spec in specs:
        default = None if spec.field == "name" else spec.default
        parts.append(_entry(spec.key, default, spec.doc, spec.example))
    for key, default, doc in CLI_ONLY:
        parts.append(_entry(key, default, doc, CLI_ONLY_EXAMPLES.get(key)))
    return "\n".join(parts)


__all__ = ["render", "toml_value"]

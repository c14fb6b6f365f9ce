"""Launch configuration: one TOML file that describes a node.

The file holds the node's options (the keys of ``configs/node.toml``, which
are the :class:`~paglets.node.config.NodeConfig` options plus ``api_key_env``
and ``log_level``), its ``[[resident_services]]`` and its startup paglets::

    name = "alpha"
    allow_module = ["myapp"]

    [[paglets]]
    class = "myapp.tickets:Dispatcher"   # module:Class, imported only if allow_module allows it
    agent_id = "dispatcher"              # required with singleton
    state = { region = "eu" }            # the state's fields (a table)
    singleton = true                     # created once: left alone if it exists, active or parked
    enabled = true

``paglets-node --config FILE``, ``paglets-node --check-config FILE`` and
``Host(launch_config=...)`` all read it through :func:`load`. Every error
names the file, the table and key, and what was expected; an unknown key is
an error. Parsing imports nothing: a startup paglet's module is checked
against the node's module policy by :meth:`LaunchConfig.check_modules`.
"""

from __future__ import annotations

import logging
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from paglets.client.addresses import check_address
from paglets.node.config import OptionSpec, option_specs
from paglets.wire import protocol

log = logging.getLogger("paglets.launch")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Keys of a node's file that are not NodeConfig options: what paglets-node does with them.
EXTRA_KEYS = ("api_key_env", "log_level")
TABLES = ("paglets", "resident_services")
PAGLET_KEYS = ("class", "agent_id", "state", "singleton", "enabled")
MAX_STARTUP_PAGLETS = 1024
MAX_RESIDENT_SERVICES = 1024
OWN_PREFIX = "paglets"  # the package's own modules are always allowed (see paglets.wire.codec.names)


class LaunchConfigError(ValueError):
    """A launch configuration that cannot be used: the message names the file, table, key and what was expected."""


@dataclass(frozen=True)
class StartupPaglet:
    """One ``[[paglets]]`` entry: a paglet the node creates when it starts."""

    class_name: str
    agent_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    singleton: bool = False
    enabled: bool = True
    where: str = "[[paglets]]"  # "FILE: [[paglets]] #N", for messages

    @property
    def module(self) -> str:
        return self.class_name.partition(":")[0]


@dataclass(frozen=True)
class LaunchConfig:
    """A parsed, checked launch configuration (see the module docstring)."""

    source: str
    options: dict[str, Any] = field(default_factory=dict)  # TOML key -> checked value
    paglets: tuple[StartupPaglet, ...] = ()
    resident_services: tuple[dict[str, Any], ...] = ()  # raw tables; the resident services parser reads them

    @classmethod
    def of(cls, value: LaunchConfig | str | os.PathLike[str] | Mapping[str, Any]) -> LaunchConfig:
        """A launch config from a config, a file path, or an already parsed mapping."""
        if isinstance(value, LaunchConfig):
            return value
        if isinstance(value, (str, os.PathLike)):
            return load(value)
        if isinstance(value, Mapping):
            return parse(value, "launch config mapping")
        raise LaunchConfigError(f"launch_config must be a file path or a mapping, got {type(value).__name__}")

    def host_options(self) -> dict[str, Any]:
        """The node options as Host keywords (NodeConfig fields); ``api_key_env`` becomes ``api_key``."""
        specs = {spec.key: spec for spec in option_specs()}
        options = {specs[key].field: value for key, value in self.options.items() if key in specs}
        variable = self.options.get("api_key_env")
        if variable is not None:
            value = os.environ.get(variable, "")
            if not value:
                raise LaunchConfigError(
                    f"{self.source}: top level, key 'api_key_env': environment variable {variable} is unset or empty"
                )
            options["api_key"] = value
        return options

    def check_modules(self, allows: Callable[[str], bool]) -> None:
        """LaunchConfigError for an enabled startup paglet whose module the node's policy refuses (no import)."""
        for paglet in self.paglets:
            if paglet.enabled and not allows(paglet.module):
                raise LaunchConfigError(
                    f"{paglet.where}, key 'class': module {paglet.module!r} of {paglet.class_name!r} is not "
                    f"allowed on this node; add it to allow_module (Host(allow_modules=[...]), --allow-module)"
                )

    def check_own_modules(self) -> None:
        """:meth:`check_modules` against the file's own ``allow_module`` (what ``--check-config`` does)."""
        if self.options.get("allow_any_module"):
            return
        prefixes = [OWN_PREFIX, *self.options.get("allow_module", [])]
        self.check_modules(lambda module: any(module == p or module.startswith(p + ".") for p in prefixes))


def default_path() -> Path:
    """The launch config that ships with the package: what ``paglets-node`` runs without ``--config``."""
    return Path(str(resources.files("paglets") / "configs" / "default.toml"))


def load(path: str | os.PathLike[str]) -> LaunchConfig:
    """Read and check a launch config file."""
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as exc:
        raise LaunchConfigError(f"cannot read launch config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LaunchConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, str(path))


def parse(data: Mapping[str, Any], source: str) -> LaunchConfig:
    """Check a parsed launch config; ``source`` names it in errors."""
    specs = {spec.key: spec for spec in option_specs()}
    known = sorted([*specs, *EXTRA_KEYS, *TABLES])
    unknown = sorted(str(key) for key in data if key not in specs and key not in EXTRA_KEYS and key not in TABLES)
    if unknown:
        raise LaunchConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)} at the top level; known keys: {', '.join(known)}"
        )
    options: dict[str, Any] = {}
    for key, value in data.items():
        if key in specs:
            options[key] = _option_value(specs[key], value, source)
        elif key in EXTRA_KEYS:
            options[key] = _extra_value(key, value, source)
    paglets = _array_of_tables(data.get("paglets"), "paglets", source, MAX_STARTUP_PAGLETS)
    residents = _array_of_tables(data.get("resident_services"), "resident_services", source, MAX_RESIDENT_SERVICES)
    startup = tuple(_startup_paglet(table, f"{source}: [[paglets]] #{i}", source) for i, table in enumerate(paglets, 1))
    ids = [p.agent_id for p in startup if p.agent_id is not None]
    doubles = sorted({agent_id for agent_id in ids if ids.count(agent_id) > 1})
    if doubles:
        raise LaunchConfigError(f"{source}: [[paglets]]: agent_id {doubles[0]!r} is given more than once")
    return LaunchConfig(source, options, startup, tuple(dict(table) for table in residents))


def _fail(source: str, key: str, expected: str, value: Any) -> LaunchConfigError:
    return LaunchConfigError(f"{source}: top level, key {key!r}: expected {expected}, got {value!r:.80}")


def _option_value(spec: OptionSpec, value: Any, source: str) -> Any:
    """A node option's value checked against its kind and check; a repeatable one may be a single string."""
    key, kind = spec.key, spec.kind
    if kind == "bool" and not isinstance(value, bool):
        raise _fail(source, key, "true or false", value)
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise _fail(source, key, "an integer", value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _fail(source, key, "a number", value)
        value = float(value)
    if kind in ("str", "path") and not isinstance(value, str):
        raise _fail(source, key, "a string" if kind == "str" else "a path (a string)", value)
    if kind == "list":
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _fail(source, key, "a string or a list of strings", value)
    if kind == "dict":
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            raise _fail(source, key, 'a table of strings (key = "value")', value)
        value = dict(value)
    try:
        _check_text(spec.field, value)
        if spec.check is not None:
            spec.check(value)
    except ValueError as exc:
        raise LaunchConfigError(f"{source}: top level, key {key!r}: {exc}") from None
    return value


def _check_text(name: str, value: Any) -> None:
    """The checks paglets-node's command line makes beyond a value's type."""
    if name == "name" and not protocol.AGENT_ID_PATTERN.match(value):
        raise ValueError(f"{value!r}: use 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    if name == "peers":
        for address in value:
            check_address(address)
    if name == "connect_to" and not check_address(value).startswith("tcp://"):
        raise ValueError(f"{value!r}: give the relay's own tcp://HOST:PORT")


def _extra_value(key: str, value: Any, source: str) -> str:
    if key == "log_level":
        if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
            raise _fail(source, key, "one of " + ", ".join(LOG_LEVELS), value)
        return value.upper()
    if not isinstance(value, str) or not value:
        raise _fail(source, key, "the name of an environment variable", value)
    return value


def _array_of_tables(value: Any, name: str, source: str, most: int) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise LaunchConfigError(f"{source}: key {name!r}: expected an array of tables ([[{name}]]), got {value!r:.80}")
    if len(value) > most:
        raise LaunchConfigError(f"{source}: [[{name}]]: {len(value)} tables, at most {most}")
    return value


def _startup_paglet(table: dict[str, Any], where: str, source: str) -> StartupPaglet:
    unknown = sorted(str(key) for key in table if key not in PAGLET_KEYS)
    if unknown:
        raise LaunchConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(PAGLET_KEYS)}")

    def expect(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise LaunchConfigError(f"{where}, key {key!r}: expected {expected}, got {table[key]!r:.80}")

    if "class" not in table:
        raise LaunchConfigError(f"{where}: key 'class' is missing: expected 'package.module:ClassName'")
    class_name = table["class"]
    expect("class", isinstance(class_name, str) and _is_class_name(class_name), "'package.module:ClassName'")
    agent_id = table.get("agent_id")
    if agent_id is not None:
        expect("agent_id", isinstance(agent_id, str) and bool(protocol.AGENT_ID_PATTERN.match(agent_id)),
               "1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit")  # fmt: skip
    state = table.get("state", {})
    expect("state", isinstance(state, dict), "a table of the state's fields")
    for flag in ("singleton", "enabled"):
        if flag in table:
            expect(flag, isinstance(table[flag], bool), "true or false")
    singleton = table.get("singleton", False)
    if singleton and agent_id is None:
        raise LaunchConfigError(f"{where}: singleton = true needs an agent_id (how the node knows it exists)")
    return StartupPaglet(class_name, agent_id, dict(state), singleton, table.get("enabled", True), where)


def _is_class_name(name: str) -> bool:
    module, sep, qualname = name.partition(":")
    parts = [*module.split("."), *qualname.split(".")]
    return bool(sep) and module != "__main__" and all(p.isidentifier() and not p.startswith("__") for p in parts)


def host_keywords(name: str | None, host: Any, port: int | None, options: dict[str, Any]) -> dict[str, Any]:
    """The NodeConfig keywords of ``Host(name, host, port, **options)``: its launch config's options
    (``options["launch_config"]``, a path, mapping or LaunchConfig) under the ones given explicitly."""
    given = {key: value for key, value in (("name", name), ("host", host), ("port", port)) if value is not None}
    keywords = {**given, **options}
    if options.get("launch_config") is not None:
        config = LaunchConfig.of(options["launch_config"])
        keywords = {**config.host_options(), **keywords, "launch_config": config}
        _hand_over_resident_services(config, keywords)
    if keywords.get("name") is None:
        raise TypeError("a node needs a name: Host('alpha', ...), or name = \"alpha\" in its launch config")
    return keywords


def _hand_over_resident_services(config: LaunchConfig, keywords: dict[str, Any]) -> None:
    """The file's ``[[resident_services]]`` tables go to ``Host(resident_services=...)`` unless it was given."""
    if config.resident_services:
        keywords.setdefault("resident_services", [dict(table) for table in config.resident_services])


__all__ = [
    "EXTRA_KEYS",
    "LOG_LEVELS",
    "LaunchConfig",
    "LaunchConfigError",
    "StartupPaglet",
    "default_path",
    "host_keywords",
    "load",
    "parse",
]

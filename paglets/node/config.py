"""NodeConfig: every option of a node, named once, with its default and what it means.

``Host(...)`` keywords, ``paglets-node`` flags and the keys of a TOML config
file are all derived from the fields of :class:`NodeConfig`, so an option is
added in one place: a field here, with its help text in ``metadata``.

Field metadata (all optional but ``doc``):

=============  ================================================================
key            meaning
=============  ================================================================
doc            one or two sentences: what it does, its unit
flag           the CLI flag / TOML key when it differs from the field name
               (``host`` is ``--bind`` / ``bind``)
cli            False: no flag and no TOML key (objects, callbacks)
cli_default    the CLI's default when it differs from ``Host``'s (ports)
example        an example value for the commented-out TOML line of an
               option without a fixed default
check          a function raising ValueError for a bad value
=============  ================================================================

Types drive the CLI: ``bool`` is ``--x/--no-x``, ``list[str]`` a repeatable
flag (``--peer A --peer B``), ``dict[str, str]`` a repeatable ``KEY=VALUE``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paglets.client import hosts as mesh_entry

DEFAULT_DATA_ROOT = Path.home() / ".local" / "share" / "paglets"
MIB = 1024 * 1024
MAX_EVENT_LOG_SIZE = 1_000_000


def _port(value: int) -> None:
    if not 0 <= value < 65536:
        raise ValueError(f"{value} is not a TCP port (0-65535; 0 picks a free one)")


def _positive(value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise ValueError(f"{value} must be a positive number")


def _not_negative(value: float | None) -> None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise ValueError(f"{value} must be zero or more")


def _at_least_one(value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{value} must be at least 1")


def _event_log_size(value: int) -> None:
    if not 1 <= value <= MAX_EVENT_LOG_SIZE:
        raise ValueError(f"{value} must be 1..{MAX_EVENT_LOG_SIZE:,}")


def _mesh_version(value: str | None) -> None:
    if value is not None and len(value) > mesh_entry.MAX_VERSION_CHARS:
        raise ValueError(f"at most {mesh_entry.MAX_VERSION_CHARS} characters (other nodes refuse longer)")


def _mesh_tags(value: list[str]) -> None:
    if len(value) > mesh_entry.MAX_TAGS or any(len(tag) > mesh_entry.MAX_TAG_CHARS for tag in value):
        raise ValueError(
            f"at most {mesh_entry.MAX_TAGS} tags of at most {mesh_entry.MAX_TAG_CHARS} characters "
            "(other nodes refuse more)"
        )


def _mesh_properties(value: dict[str, str]) -> None:
    too_long = any(
        len(key) > mesh_entry.MAX_PROPERTY_KEY_CHARS or len(text) > mesh_entry.MAX_PROPERTY_VALUE_CHARS
        for key, text in value.items()
    )
    if len(value) > mesh_entry.MAX_PROPERTIES or too_long:
        raise ValueError(
            f"at most {mesh_entry.MAX_PROPERTIES} properties, keys of at most {mesh_entry.MAX_PROPERTY_KEY_CHARS} "
            f"characters, values of at most {mesh_entry.MAX_PROPERTY_VALUE_CHARS} (other nodes refuse more)"
        )


def opt(default: Any = None, doc: str = "", **meta: Any) -> Any:
    """A NodeConfig field: its default and metadata (see the module docstring)."""
    meta["doc"] = doc
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class NodeConfig:
    """Every option of one node. Build it with :meth:`from_options`, which checks each value."""

    # -- identity and addresses -------------------------------------------------------
    name: str = opt(
        None, "Node name, unique in the mesh: 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit.",
        example="my-node",
    )  # fmt: skip
    host: str = opt(
        "127.0.0.1",
        "Interface the front (ZeroMQ) socket and the HTTP shim listen on: an address, 0.0.0.0 for all, "
        "or auto for this machine's LAN address.",
        flag="bind",
    )
    port: int = opt(0, "Front (ZeroMQ) port; 0 picks a free one.", cli_default=7700, check=_port)
    bind_public: bool = opt(
        False, "Listen on every interface and advertise this machine's LAN address (overrides bind)."
    )
    public_url: str | None = opt(
        None, "Address to advertise instead of tcp://BIND:PORT (a node behind NAT or a port forward).",
        example="tcp://node.example.org:7700", metavar="URL",
    )  # fmt: skip
    connect_to: str | None = opt(
        None,
        "Listen nowhere: dial out to this relay (tcp://RELAY:PORT) and be reached as "
        "relay+tcp://RELAY:PORT/NAME (no HTTP shim).",
        flag="connect",
        example="tcp://relay.example.org:7800",
        metavar="tcp://RELAY:PORT",
    )
    http: bool = opt(True, "Start the HTTP shim (health, listings and movement over HTTP).")
    http_port: int = opt(0, "HTTP shim port; 0 picks a free one.", cli_default=7701, check=_port)
    http_max_body: int = opt(
        16 * MIB, "Largest HTTP request body the shim takes, in bytes; a larger one is refused (413) unread.",
        check=_at_least_one,
    )  # fmt: skip
    # -- security ---------------------------------------------------------------------------
    api_key: str | None = opt(None, "API key every client must send (the CLI reads it from --api-key-env).", cli=False)
    curve_secret: Path | None = opt(
        None, "This node's .key_secret file: serve (and dial out) with CurveZMQ. Needs curve_allow.",
        example="keys/node.key_secret",
    )  # fmt: skip
    curve_allow: Path | None = opt(
        None, "Directory of the public .key files of the clients (and nodes) let in.", example="keys/allowed"
    )
    curve_server_key: Path | None = opt(
        None,
        "Public .key file of the nodes and relay this node connects to (default: the public half of curve_secret).",
        example="keys/cluster.key",
    )
    allow_modules: list[str] = opt(
        [],
        "Module prefixes whose paglet classes and state types this node may import when another process names "
        "them (the package's own modules, preload modules and modules already imported are always allowed).",
        flag="allow_module",
        metavar="PREFIX",
    )
    allow_any_module: bool = opt(
        False, "Development only: import any module a remote peer names (runs its top-level code). Warns at start."
    )
    insecure: bool = opt(
        False,
        "Start even though the node is reachable off loopback (bind, bind_public, auto, public_url, a relay "
        "elsewhere) with neither an API key nor CurveZMQ; it logs a warning and /health says insecure.",
    )
    # -- the mesh -------------------------------------------------------------------------------
    mesh: bool = opt(True, "Take part in the mesh gossip.")
    peers: list[str] = opt(
        [],
        "Node addresses (tcp://HOST:PORT or relay+tcp://RELAY:PORT/NODE) to gossip with.",
        flag="peer",
        metavar="ADDR",
    )
    mesh_multicast: bool = opt(True, "Allow LAN discovery by UDP multicast (lan_discovery turns it on).")
    mesh_lan_discovery: bool = opt(
        False, "Find other nodes on the local network by UDP multicast.", flag="lan_discovery"
    )
    mesh_version: str | None = opt(
        None, "Code version to advertise in the mesh (default: the installed paglets version).", example="1.0.0",
        check=_mesh_version,
    )  # fmt: skip
    mesh_gossip_interval: float = opt(1.0, "Seconds between gossip rounds.", flag="gossip_interval", check=_positive)
    mesh_offline_after: float = opt(
        10.0, "Seconds without news after which another node counts as offline.", flag="offline_after",
        check=_positive,
    )  # fmt: skip
    tags: list[str] = opt(
        [], "Tags this node carries in the mesh (paglets can pick nodes by them).", flag="tag", metavar="TAG",
        check=_mesh_tags,
    )  # fmt: skip
    properties: dict[str, str] = opt(
        {}, "Properties (KEY=VALUE) this node carries in the mesh.", flag="property", check=_mesh_properties
    )
    # -- storage -------------------------------------------------------------------------------
    persistence_dir: Path | None = opt(
        None, "Where the node keeps its records and the paglets' work directories (default: "
        "~/.local/share/paglets/NAME).", flag="data_dir", example="~/.local/share/paglets/my-node",
    )  # fmt: skip
    persistent_storage_quota_bytes: int | None = opt(
        64 * MIB, "Bytes each paglet class may keep in its persistent storage.", check=_at_least_one
    )
    artifact_max_bytes: int | None = opt(
        256 * MIB, "Largest artifact (registered file, exchanged file) this node stores, in bytes.",
        check=_at_least_one,
    )  # fmt: skip
    artifact_storage_quota_bytes: int | None = opt(
        1024 * MIB, "Bytes all artifacts of this node may take together.", check=_at_least_one
    )
    artifact_spool_ttl_seconds: float = opt(
        3600.0, "Seconds an unfinished artifact upload is kept before it is removed.", check=_positive
    )
    checkpoint_interval: float | None = opt(
        None, "Seconds between checkpoints of active paglets; after a crash they come back from the last one. "
        "Off when unset.", check=_positive, example=5.0,
    )  # fmt: skip
    idle_park: float | None = opt(
        None, "Seconds without a message after which a paglet (its run() returned) is parked on disk, to wake on "
        "its next message; a class's IDLE_TIMEOUT and a resident service's idle_timeout come first. "
        "Never when unset or 0.", check=_not_negative, example=300.0,
    )  # fmt: skip
    # -- workers ------------------------------------------------------------------------------
    preload: list[str] = opt(
        [],
        "Modules the template process imports before forking workers, so each worker starts with them.",
        metavar="MODULE",
    )
    learn_preload: bool = opt(True, "Have the template process import the modules paglets come from, once seen.")
    worker_pool: int = opt(2, "Idle pre-forked workers the template process keeps ready.", check=_not_negative)
    heartbeat_interval: float = opt(
        0.5, "Seconds between node/worker heartbeats; a worker that misses three is considered crashed.",
        flag="heartbeat", check=_positive,
    )  # fmt: skip
    start_timeout: float = opt(30.0, "Seconds a paglet may take to start (fork and its start hook).", check=_positive)
    stop_grace: float = opt(
        10.0, "Seconds a stopping node waits for running handlers; then it parks their paglets without "
        "them (their callers get HandlerInterruptedError). A second stop signal ends the wait at once.",
        check=_not_negative,
    )  # fmt: skip
    # -- limits -------------------------------------------------------------------------------
    max_message_size: int = opt(64 * MIB, "Largest request the front socket accepts, in bytes.", check=_at_least_one)
    mailbox_limit: int = opt(
        10_000, "Messages a paglet's mailbox may hold before senders get OverloadedError.", check=_at_least_one
    )
    forward_ttl: float = opt(
        3600.0, "Seconds a departed paglet's forwarding entry answers for it here.", check=_positive
    )
    max_slow_ops: int = opt(
        64, "Slow requests from clients and other nodes (create, moves, parking, transfers) this node runs or "
        "holds at once; more are refused with OverloadedError. Reads (health, list, info, state) never wait "
        "behind them.", check=_at_least_one,
    )  # fmt: skip
    max_transfer_timeout: float = opt(
        300.0, "Longest move (ticket timeout, in seconds) a client or another node may ask of this node; a "
        "longer one is refused, and a prepared arrival waits at most this long (plus a little) for its paglet.",
        check=_positive,
    )  # fmt: skip
    # -- observing ----------------------------------------------------------------------------
    event_log_size: int = opt(
        10_000, "Events the node keeps in memory (paglets events, GET /events); the oldest go first. At most "
        "1,000,000.", check=_event_log_size,
    )  # fmt: skip
    # -- code rollout ------------------------------------------------------------------------
    auto_update_from_git: bool = opt(
        False, "Follow the git checkout this node's code comes from: refuse to start on uncommitted changes, "
        "advertise its HEAD as the code version, and on `paglets update` fetch, fast-forward, reinstall and "
        "restart, parking paglets across the restart. Needs an API key or CurveZMQ; not behind a relay.",
    )  # fmt: skip
    git_repo_root: Path | None = opt(
        None, "The git checkout auto_update_from_git follows (default: the one holding the working directory).",
        example="~/src/myapp",
    )  # fmt: skip
    update_install_command: str | None = opt(
        None, "Command run in the checkout to reinstall the code after an update (default: this Python's "
        "pip install -e of the checkout).", example="make install",
    )  # fmt: skip
    # -- objects that only Host(...) takes -----------------------------------------------
    client: Any = opt(None, "HostClient this node uses to reach other nodes.", cli=False)
    launch_config: Any = opt(None, "Launch configuration (see docs/operations.md).", cli=False)
    auto_update_restart_callback: Any = opt(
        None, "Called, once the node has parked its paglets and stopped, to restart the process after an "
        "update (default: exec the process's command line again).", cli=False,
    )  # fmt: skip
    resident_services: Any = opt(
        [], "Resident services this node runs: [[resident_services]] tables (dicts with the TOML keys), "
        "ResidentServiceSpec objects naming their paglet_class, paglet classes or 'module:Class' paths "
        "(see paglets.services.resident_config).", cli=False,
    )  # fmt: skip

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def from_options(cls, **options: Any) -> NodeConfig:
        """A config from Host keywords; a ValueError names the option and what it must be."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown node option(s): {', '.join(unknown)}")
        config = cls(**options)
        config.check()
        return config

    def check(self) -> None:
        """Check every value against its field's type and check; normalise paths."""
        for f, hint in _hints(type(self)):
            value = getattr(self, f.name)
            try:
                value = _coerce(value, hint)
                if f.metadata.get("check") is not None and value is not None:
                    f.metadata["check"](value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"node option {f.name}: {exc}") from None
            setattr(self, f.name, value)

    def replace(self, **changes: Any) -> NodeConfig:
        config = dataclasses.replace(self, **changes)
        config.check()
        return config

    @property
    def data_dir(self) -> Path:
        """The persistence directory, defaulted from the node name."""
        return self.persistence_dir if self.persistence_dir is not None else DEFAULT_DATA_ROOT / str(self.name)


@dataclass(frozen=True)
class OptionSpec:
    """One option as the CLI and the TOML file see it."""

    field: str  # the NodeConfig field (= Host keyword)
    key: str  # TOML key and, with dashes, CLI flag
    kind: str  # "bool", "int", "float", "str", "path", "list", "dict"
    optional: bool  # None is allowed (no fixed default)
    default: Any
    doc: str
    example: Any = None
    check: Callable[[Any], None] | None = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


def option_specs() -> Iterator[OptionSpec]:
    """The options a node takes from its command line and config file, in declaration order."""
    for f, hint in _hints(NodeConfig):
        meta = f.metadata
        if meta.get("cli", True) is False:
            continue
        kind, optional = _kind(hint)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        yield OptionSpec(
            field=f.name,
            key=meta.get("flag", f.name),
            kind=kind,
            optional=optional,
            default=meta.get("cli_default", default),
            doc=meta["doc"],
            example=meta.get("example"),
            check=meta.get("check"),
            metavar=meta.get("metavar"),
        )


def _hints(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f, hints[f.name]


def _kind(hint: Any) -> tuple[str, bool]:
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    origin = typing.get_origin(base)
    if origin is list:
        return "list", optional
    if origin is dict:
        return "dict", optional
    names = {bool: "bool", int: "int", float: "float", str: "str", Path: "path"}
    if base in names:
        return names[base], optional
    return "object", optional


def _coerce(value: Any, hint: Any) -> Any:
    kind, optional = _kind(hint)
    if value is None:
        if optional or kind == "object" or kind == "str":
            return None
        raise ValueError("must be set")
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"must be true or false, got {value!r:.60}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"must be an integer, got {value!r:.60}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"must be a number, got {value!r:.60}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError(f"must be a string, got {value!r:.60}")
        return value
    if kind == "path":
        if not isinstance(value, (str, Path)):
            raise TypeError(f"must be a path, got {value!r:.60}")
        return Path(value).expanduser()
    if kind == "list":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise TypeError(f"must be a list of strings, got {value!r:.60}")
        if not all(isinstance(item, str) for item in value):
            raise TypeError("must be a list of strings")
        return list(value)
    if kind == "dict":
        if not isinstance(value, dict):
            raise TypeError(f"must be a table of strings, got {value!r:.60}")
        return {str(k): str(v) for k, v in value.items()}
    return value


__all__ = ["DEFAULT_DATA_ROOT", "NodeConfig", "OptionSpec", "option_specs"]

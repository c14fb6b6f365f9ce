"""Helpers the paglets command-line tools share: API keys, JSON, errors, logging,
TOML config files and stop signals (``paglets-node`` and ``paglets-relay`` run the same way)."""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import signal
import sys
import tomllib
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn

import click

from paglets.wire import protocol

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PORT = click.IntRange(0, 65535)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_UNIX_TIME = 253402300799  # 9999-12-31T23:59:59Z


def configure_logging(level: str) -> None:
    """Log to stderr; stdout is kept for what the tools print on purpose."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)


def api_key_from_env(variable: str, option: str = "--api-key-env") -> str:
    """The API key held in environment ``variable``; a usage error when it is unset or empty."""
    value = os.environ.get(variable, "")
    if not value:
        raise click.BadParameter(f"environment variable {variable} is unset or empty", param_hint=f"'{option}'")
    return value


def parse_json(text: str | None, what: str) -> Any:
    """``text`` decoded as JSON (None stays None); ValueError naming ``what`` otherwise."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if text.strip()[:1] not in ('"', "{", "[", "-", *"0123456789"):  # a bare word: meant as a string?
            hint = f"; a string needs its JSON quotes: '\"{text[:40]}\"'"
        raise ValueError(f"{what} is not valid JSON ({exc}): {text!r:.80}{hint}") from None


class UnixTime(click.ParamType):
    """A moment given as UNIX seconds (``1767225600``) or ISO 8601 (``2026-01-01T00:00:00Z``;
    without a zone it is local time); converts to UNIX seconds."""

    name = "UNIX_OR_ISO_TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                seconds = datetime.fromisoformat(text).timestamp()
            except (ValueError, OverflowError, OSError):
                self.fail(f"{text!r} is neither UNIX seconds nor an ISO 8601 time", param, ctx)
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_UNIX_TIME:
            self.fail(f"{text!r} is not a time between 1970 and the end of year 9999", param, ctx)
        return seconds


def to_json(value: Any) -> str:
    """JSON text of plain data; anything JSON does not know is written as its ``str``."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def fail(exc: BaseException) -> NoReturn:
    """Report ``exc`` as one ``Error: <type>: <message>`` line on stderr and exit 1."""
    click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
    sys.exit(1)


# -- the servers: paglets-node and paglets-relay ---------------------------------------
def check_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Click callback: ``value`` is a node (or relay) name, 1-128 of A-Z a-z 0-9 . _ -."""
    if not protocol.AGENT_ID_PATTERN.match(value):
        raise click.BadParameter(f"{value!r}: use 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    return value


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Make the TOML file's keys the defaults of the other options (so flags still win).

    For a repeatable option a single string stands for a one-item list, and a
    table stands for its ``KEY=VALUE`` pairs (``property = {role = "gpu"}``).
    """
    if value is None:
        return None
    try:
        with open(value, "rb") as stream:
            data = tomllib.load(stream)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"cannot read {value}: {exc}", ctx, param) from None
    # A key is the option's long flag with underscores (--http-port -> http_port).
    options = {
        p.opts[0].lstrip("-").replace("-", "_"): p
        for p in ctx.command.params
        if isinstance(p, click.Option) and p.expose_value and p.name != param.name
    }
    unknown = sorted(set(data) - set(options))
    if unknown:
        raise click.BadParameter(
            f"unknown key(s) {', '.join(unknown)} in {value}; known keys: {', '.join(sorted(options))}", ctx, param
        )
    defaults = {}
    for key, item in data.items():
        option = options[key]
        if option.multiple:
            if isinstance(item, str):
                item = [item]
            elif isinstance(item, dict):
                item = [f"{name}={text}" for name, text in item.items()]
        defaults[option.name] = item
    data = defaults
    ctx.default_map = {**(ctx.default_map or {}), **data}
    return value


def config_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--config FILE``: option values from a TOML file whose keys are the option names with underscores."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_load_config,
        help="TOML file of option values (keys like http_port); command-line flags override it.",
    )(function)


def log_level_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--log-level`` of the long-running commands (node, relay)."""
    return click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default="INFO",
        show_default=True,
        help="Level of the log written to stderr.",
    )(function)


def curve_server_options(secret_help: str, allow_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--curve-secret`` and ``--curve-allow`` of a process that serves with CurveZMQ."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        function = click.option(
            "--curve-allow", type=click.Path(exists=True, file_okay=False), default=None, help=allow_help
        )(function)
        return click.option(
            "--curve-secret", type=click.Path(exists=True, dir_okay=False), default=None, help=secret_help
        )(function)

    return decorate


def install_stop_handlers() -> queue.SimpleQueue[int]:
    """Route SIGTERM and SIGINT into the returned queue; the main thread waits on it, then stops.

    Install before starting a server, so an early SIGTERM still stops it cleanly.
    """
    stop_requests: queue.SimpleQueue[int] = queue.SimpleQueue()

    # The handler only queues the signal: SimpleQueue.put is safe in a signal handler.
    def request_stop(signum: int, frame: Any) -> None:
        stop_requests.put(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    return stop_requests


def announce(lines: list[str]) -> None:
    """Print a server's address lines and ``ready`` on stdout (scripts and fixtures wait for them)."""
    click.echo("\n".join([*lines, "ready"]))
    sys.stdout.flush()


__all__ = [
    "LOG_LEVELS",
    "PORT",
    "STOP_SIGNALS",
    "UnixTime",
    "announce",
    "api_key_from_env",
    "check_name",
    "config_option",
    "configure_logging",
    "fail",
    "install_stop_handlers",
    "parse_json",
    "to_json",
]

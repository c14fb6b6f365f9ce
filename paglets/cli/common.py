"""Helpers the paglets command-line tools share: API keys, JSON, errors, logging."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from datetime import datetime
from typing import Any, NoReturn

import click

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
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
        raise ValueError(f"{what} is not valid JSON ({exc}): {text!r:.80}") from None


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


__all__ = ["LOG_LEVELS", "UnixTime", "api_key_from_env", "configure_logging", "fail", "parse_json", "to_json"]

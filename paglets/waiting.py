"""Waiting on Futures with a deadline that names what was awaited."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from paglets.core.errors import RequestTimeoutError


def wait_for(future: Future[Any], timeout: float, what: str) -> Any:
    """The Future's result, or a RequestTimeoutError that says what was awaited."""
    try:
        return future.result(timeout)
    except FutureTimeout:
        raise RequestTimeoutError(f"timed out after {timeout:g} s waiting for {what}") from None


__all__ = ["wait_for"]

"""Decoding: msgpack bytes made by :func:`~paglets.wire.codec.encode` back to Python values.

Exts are decoded by the table below; a dataclass or enum tag is resolved by
:mod:`paglets.wire.codec.names` (never importing what is not allowed), and
only dataclasses and Enum subclasses are ever instantiated. Anything
malformed raises :class:`~paglets.core.errors.SerializationError`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from enum import Enum
from pathlib import PosixPath, PurePath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import Any
from zoneinfo import ZoneInfo

from msgpack import Unpacker

from paglets.core.errors import SerializationError
from paglets.wire.codec.codes import (
    EXT_BIGINT,
    EXT_DATACLASS,
    EXT_DATE,
    EXT_DATETIME,
    EXT_ENUM,
    EXT_FROZENSET,
    EXT_POSIX_PATH,
    EXT_PURE_POSIX_PATH,
    EXT_PURE_WINDOWS_PATH,
    EXT_SET,
    EXT_TIME,
    EXT_TIMEDELTA,
    EXT_TIMEZONE,
    EXT_TUPLE,
    EXT_WINDOWS_PATH,
    EXT_ZONEINFO,
)
from paglets.wire.codec.names import class_name, class_named

# An Unpacker's first buffer (it grows to fit what is fed). msgpack's default is 1 MiB, taken
# by each nesting level of exts: 1.4 KB of nested tuples left 300 MiB held in the pool.
_READ_SIZE = 4096


def unpacker_pool(**hooks: Any) -> Callable[[bytes], Any]:
    """An unpack function backed by pooled Unpackers.

    Each ext payload is unpacked by a nested call. unpackb() keeps ~40 KB of parser
    state on the C stack, so a few hundred nested exts in hostile bytes would overflow
    it before Python's recursion limit trips; an Unpacker keeps that state on the heap.
    timestamp=3: a foreign msgpack timestamp (ext -1) becomes a supported datetime.
    """
    idle: list[Unpacker] = []

    def unpack(data: bytes) -> Any:
        try:
            unpacker = idle.pop()
        except IndexError:
            unpacker = Unpacker(
                None, read_size=_READ_SIZE, raw=False, strict_map_key=False, timestamp=3, max_buffer_size=0, **hooks
            )
        start = unpacker.tell()
        unpacker.feed(data)
        value = unpacker.unpack()  # on error the unpacker holds junk: never pool it again
        if unpacker.tell() - start != len(data):
            raise SerializationError("extra bytes after the encoded value")
        if len(data) < 65536:  # its buffer never shrinks: pool only small ones
            idle.append(unpacker)
        return value

    return unpack


def _dec_dataclass(payload: list) -> Any:
    name, values = payload
    cls, init_names, all_names = class_named(name, "dataclass")
    if not values.keys() <= all_names:
        unknown = ", ".join(sorted(map(repr, values.keys() - all_names)))
        raise SerializationError(f"{name} has no field(s) {unknown}")
    if len(values) == len(init_names) == len(all_names):
        return cls(**values)
    # Defaults apply to missing fields and __post_init__ runs; then restore init=False fields.
    obj = cls(**{k: v for k, v in values.items() if k in init_names})
    for key in values.keys() - init_names:
        object.__setattr__(obj, key, values[key])
    return obj


def _dec_enum(payload: list) -> Enum:
    name, value = payload
    return class_named(name, "Enum")(value)


def _tz(value: Any) -> tzinfo | None:
    if value is None or isinstance(value, tzinfo):
        return value
    raise SerializationError(f"expected a time zone, got {type(value).__name__}")


def _dec_datetime(payload: list) -> datetime:
    year, month, day, hour, minute, second, micro, fold, tz = payload
    return datetime(year, month, day, hour, minute, second, micro, _tz(tz), fold=fold)


def _dec_time(payload: list) -> time:
    hour, minute, second, micro, fold, tz = payload
    return time(hour, minute, second, micro, _tz(tz), fold=fold)


def _dec_timezone(payload: list) -> timezone:
    offset, name = payload
    if name is None:
        return timezone(timedelta(microseconds=offset))
    return timezone(timedelta(microseconds=offset), name)


def items(payload: Any) -> list:
    if type(payload) is not list:
        raise SerializationError(f"expected an array, got {type(payload).__name__}")
    return payload


def _path_decoder(cls: type, fallback: type) -> Callable[[bytes], PurePath]:
    kind = cls if os.name == ("nt" if cls is WindowsPath else "posix") else fallback
    return lambda raw: kind(raw.decode("utf-8", "surrogateescape"))


def _dec_bigint(text: str) -> int:
    if type(text) is not str:
        raise SerializationError("a big int must be decimal text")
    return int(text)


# Each decoder receives its ext payload already unpacked.
DECODERS: dict[int, Callable[[Any], Any]] = {
    EXT_BIGINT: _dec_bigint,
    EXT_TUPLE: lambda p: tuple(items(p)),
    EXT_SET: lambda p: set(items(p)),
    EXT_FROZENSET: lambda p: frozenset(items(p)),
    EXT_DATACLASS: _dec_dataclass,
    EXT_ENUM: _dec_enum,
    EXT_DATETIME: _dec_datetime,
    EXT_DATE: lambda p: date(*items(p)),
    EXT_TIME: _dec_time,
    EXT_TIMEDELTA: lambda p: timedelta(*items(p)),
    EXT_TIMEZONE: _dec_timezone,
    EXT_ZONEINFO: lambda key: ZoneInfo(key),
    EXT_PURE_POSIX_PATH: _path_decoder(PurePosixPath, PurePosixPath),
    EXT_PURE_WINDOWS_PATH: _path_decoder(PureWindowsPath, PureWindowsPath),
    EXT_POSIX_PATH: _path_decoder(PosixPath, PurePosixPath),
    EXT_WINDOWS_PATH: _path_decoder(WindowsPath, PureWindowsPath),
}


def _ext_hook(code: int, data: bytes) -> Any:
    return run_decoder(DECODERS, code, data, _unpack)


_unpack = unpacker_pool(ext_hook=_ext_hook)


def run_decoder(table: dict, code: int, data: bytes, unpack: Callable[[bytes], Any]) -> Any:
    decoder = table.get(code)
    if decoder is None:
        raise SerializationError(f"unknown ext code {code}")
    try:
        return decoder(unpack(data))
    except SerializationError:
        raise
    except (Exception, SystemExit) as exc:  # never let a KeyError/TypeError/user code's exit leak out
        raise SerializationError(f"malformed payload for ext code {code}: {exc!r}") from exc


def decode(data: bytes, expected: type | None = None) -> Any:
    """Decode bytes made by :func:`encode`.

    If ``expected`` is a dataclass, the top-level value must be an instance of exactly
    that class (compared by qualified name); other ``expected`` values are not checked.
    Anything malformed or refused raises :class:`SerializationError`.
    """
    try:
        value = _unpack(data)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"cannot decode: {exc!r}") from exc
    if (
        isinstance(expected, type)
        and dataclasses.is_dataclass(expected)
        and class_name(type(value)) != class_name(expected)
    ):
        raise SerializationError(f"expected {class_name(expected)}, got {class_name(type(value))}")
    return value


__all__ = ["DECODERS", "decode", "items", "run_decoder", "unpacker_pool"]

"""Encoding: Python values (dataclass trees) to msgpack bytes, with exts for the rest.

See :mod:`paglets.wire.codec` for the format. Encoders are made once per type
and cached; an error names the path of the first value that cannot be
encoded (``state.items[2].sock``).
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from operator import attrgetter
from pathlib import PosixPath, PurePath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import Any
from zoneinfo import ZoneInfo

from msgpack import ExtType, Packer

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
from paglets.wire.codec.names import class_name

_US = timedelta(microseconds=1)
_PACKERS: list[Packer] = []  # idle packers (list.pop/append are atomic: thread-safe)
_ENCODERS: dict[type, Callable[[Any], Any]] = {}  # per type: classes are long-lived


def _pack(obj: Any) -> bytes:
    # A pooled Packer costs a quarter of packb(); nested ext payloads each take their own.
    try:
        packer = _PACKERS.pop()
    except IndexError:
        packer = Packer(default=_default, strict_types=True, use_bin_type=True, buf_size=1024)
    data = packer.pack(obj)  # if this raises, the packer is simply not pooled again
    if len(data) < 65536:  # a packer keeps its grown buffer: pool only small ones
        _PACKERS.append(packer)
    return data


def _default(obj: Any) -> Any:
    encoder = _ENCODERS.get(type(obj))
    if encoder is None:
        encoder = _ENCODERS.setdefault(type(obj), _make_encoder(type(obj)))
    return encoder(obj)


def _make_encoder(cls: type) -> Callable[[Any], Any]:
    if issubclass(cls, Enum):
        name = _portable_name(cls)
        return lambda member: ExtType(EXT_ENUM, _pack([name, member.value]))
    if dataclasses.is_dataclass(cls):
        return _dataclass_encoder(cls)
    if issubclass(cls, dict):
        return dict
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        raise SerializationError(f"namedtuple {cls.__qualname__} is refused; use a dataclass")
    raise SerializationError(f"no codec for {cls.__module__}.{cls.__qualname__}")


def _dataclass_encoder(cls: type) -> Callable[[Any], ExtType]:
    name = _portable_name(cls)
    names = tuple(f.name for f in dataclasses.fields(cls))
    if len(names) > 1:  # attrgetter + zip is the fastest way to the field map
        values = attrgetter(*names)
        return lambda obj: ExtType(EXT_DATACLASS, _pack([name, dict(zip(names, values(obj), strict=False))]))
    # attrgetter needs a name, and returns a bare value (not a tuple) for just one
    return lambda obj: ExtType(EXT_DATACLASS, _pack([name, {n: getattr(obj, n) for n in names}]))


def _portable_name(cls: type) -> str:
    name = class_name(cls)
    if "<locals>" in name:  # fail at the sender, not later at an unsuspecting receiver
        raise SerializationError(f"{name} is a local class; a decoder cannot import it")
    return name


def _encode_timezone(tz: timezone) -> ExtType:
    offset = tz.utcoffset(None)
    name = tz.tzname(None)
    if name == timezone(offset).tzname(None):
        name = None  # default name: decode to timezone(offset), keeping timezone.utc a singleton
    return ExtType(EXT_TIMEZONE, _pack([offset // _US, name]))


def _encode_zoneinfo(tz: ZoneInfo) -> ExtType:
    if tz.key is None:
        raise SerializationError("a ZoneInfo built from a file has no key to send")
    return ExtType(EXT_ZONEINFO, _pack(tz.key))


def _path_encoder(code: int) -> Callable[[PurePath], ExtType]:
    return lambda p: ExtType(code, _pack(str(p).encode("utf-8", "surrogateescape")))


_ENCODERS.update(
    {
        int: lambda n: ExtType(EXT_BIGINT, _pack(str(n))),  # msgpack calls default on overflow only
        tuple: lambda t: ExtType(EXT_TUPLE, _pack(list(t))),
        set: lambda s: ExtType(EXT_SET, _pack(list(s))),
        frozenset: lambda s: ExtType(EXT_FROZENSET, _pack(list(s))),
        datetime: lambda d: ExtType(
            EXT_DATETIME, _pack([d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, d.fold, d.tzinfo])
        ),
        date: lambda d: ExtType(EXT_DATE, _pack([d.year, d.month, d.day])),
        time: lambda t: ExtType(EXT_TIME, _pack([t.hour, t.minute, t.second, t.microsecond, t.fold, t.tzinfo])),
        timedelta: lambda d: ExtType(EXT_TIMEDELTA, _pack([d.days, d.seconds, d.microseconds])),
        timezone: _encode_timezone,
        ZoneInfo: _encode_zoneinfo,
        PurePosixPath: _path_encoder(EXT_PURE_POSIX_PATH),
        PureWindowsPath: _path_encoder(EXT_PURE_WINDOWS_PATH),
        PosixPath: _path_encoder(EXT_POSIX_PATH),
        WindowsPath: _path_encoder(EXT_WINDOWS_PATH),
    }
)


def encode(value: Any, root: str = "value") -> bytes:
    """Encode ``value`` to msgpack bytes.

    ``root`` names the value in error messages: a failure raises
    :class:`SerializationError` naming the path of the first offending value, such as
    ``state.items[2].sock: socket is not serializable (...)``.
    """
    try:
        return _pack(value)
    except Exception as exc:  # only now pay for the walk that finds the culprit
        raise SerializationError(_explain(value, root, exc)) from exc


def _explain(value: Any, root: str, exc: Exception) -> str:
    try:
        found = _culprit(value, root, set())
    except RecursionError:
        found = None
    path, obj, reason = found or (root, value, str(exc))
    return f"{path}: {type(obj).__name__} is not serializable ({reason})"


def _culprit(obj: Any, path: str, active: set[int]) -> tuple[str, Any, str] | None:
    """The first (path, value, reason) that cannot be encoded, depth first."""
    if id(obj) in active:
        return path, obj, "circular reference"
    try:
        _pack(obj)
        return None
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
    active.add(id(obj))
    for suffix, child in _children(obj):
        found = _culprit(child, path + suffix, active)
        if found is not None:
            return found
    active.discard(id(obj))
    return path, obj, reason


def _children(obj: Any) -> list[tuple[str, Any]]:
    if isinstance(obj, Enum):
        return [(".value", obj.value)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [(f".{f.name}", getattr(obj, f.name, None)) for f in dataclasses.fields(obj)]
    if isinstance(obj, (list, tuple)):
        return [(f"[{i}]", item) for i, item in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return [(f"{{{reprlib.repr(item)}}}", item) for item in obj]
    if isinstance(obj, dict):
        keys = [(f"[{reprlib.repr(k)}]<key>", k) for k in obj]
        return keys + [(f"[{reprlib.repr(k)}]", v) for k, v in obj.items()]
    if isinstance(obj, (datetime, time)):
        return [(".tzinfo", obj.tzinfo)]
    return []


__all__ = ["encode"]

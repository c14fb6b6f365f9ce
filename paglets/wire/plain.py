"""Build typed state from plain JSON-like data, guided by the dataclass's type hints.

Used where a person or another language supplies state (the CLI, the HTTP
shim): ``{"count": 3, "tags": ["a"]}`` becomes ``CounterState(count=3, tags=["a"])``.
Only fields the class declares are accepted; values are converted where the
annotation says how (nested dataclasses, enums, tuples, sets, dates, paths).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import pathlib
import types
import typing
from typing import Any

from paglets.core.errors import SerializationError

_NONE = type(None)


def state_from_plain(cls: type[Any], data: Any, path: str = "state") -> Any:
    """Instantiate dataclass ``cls`` from a dict of plain values."""
    if not isinstance(data, dict):
        raise SerializationError(f"{path}: expected an object for {cls.__qualname__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SerializationError(f"{path}: {cls.__qualname__} has no field(s) {', '.join(map(str, unknown))}")
    kwargs = {}
    late = {}
    for name, value in data.items():
        converted = _convert(hints.get(name, Any), value, f"{path}.{name}")
        (kwargs if known[name].init else late)[name] = converted
    try:
        instance = cls(**kwargs)
    except TypeError as exc:
        raise SerializationError(f"{path}: cannot build {cls.__qualname__}: {exc}") from None
    for name, value in late.items():
        object.__setattr__(instance, name, value)
    return instance


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if origin in (typing.Union, types.UnionType):
        return _convert_union(args, value, path)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return value if isinstance(value, hint) else state_from_plain(hint, value, path)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _convert_enum(hint, value, path)
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple, set, frozenset):
        return _convert_collection(origin or hint, args, value, path)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise SerializationError(f"{path}: expected an object, got {type(value).__name__}")
        key_hint, value_hint = args or (Any, Any)
        return {
            _convert(key_hint, k, f"{path}[{k!r}]"): _convert(value_hint, v, f"{path}[{k!r}]") for k, v in value.items()
        }
    return _convert_scalar(hint, value, path)


def _convert_union(args: tuple[Any, ...], value: Any, path: str) -> Any:
    if value is None and _NONE in args:
        return None
    errors = []
    for option in args:
        if option is _NONE:
            continue
        try:
            return _convert(option, value, path)
        except SerializationError as exc:
            errors.append(str(exc))
    raise SerializationError(f"{path}: {value!r:.60} matches no type of the union ({'; '.join(errors)})")


def _convert_enum(hint: type[enum.Enum], value: Any, path: str) -> Any:
    if isinstance(value, hint):
        return value
    try:
        return hint(value)
    except ValueError:
        if isinstance(value, str) and value in hint.__members__:
            return hint.__members__[value]
    raise SerializationError(f"{path}: {value!r:.60} is not a {hint.__qualname__}")


def _convert_collection(kind: type, args: tuple[Any, ...], value: Any, path: str) -> Any:
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise SerializationError(f"{path}: expected a list, got {type(value).__name__}")
    items = list(value)
    if kind is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(args) != len(items):
            raise SerializationError(f"{path}: expected {len(args)} items, got {len(items)}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, items, strict=True)))
    item_hint = args[0] if args else Any
    return kind(_convert(item_hint, v, f"{path}[{i}]") for i, v in enumerate(items))


_SCALARS: dict[type, Any] = {
    dt.datetime: dt.datetime.fromisoformat,
    dt.date: dt.date.fromisoformat,
    dt.time: dt.time.fromisoformat,
    dt.timedelta: lambda v: dt.timedelta(seconds=float(v)),
    pathlib.Path: pathlib.Path,
    pathlib.PurePosixPath: pathlib.PurePosixPath,
    bytes: lambda v: v.encode() if isinstance(v, str) else bytes(v),
}


def _convert_scalar(hint: Any, value: Any, path: str) -> Any:
    if not isinstance(hint, type):
        return value
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    parse = _SCALARS.get(hint)
    if parse is not None and isinstance(value, (str, int, float, list)):
        try:
            return parse(value)
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"{path}: {value!r:.60} is not a valid {hint.__name__}: {exc}") from None
    raise SerializationError(f"{path}: expected {hint.__name__}, got {type(value).__name__}")


__all__ = ["state_from_plain"]

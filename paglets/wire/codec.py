"""State codec: dataclass trees <-> msgpack bytes.

Native msgpack types go through unchanged (``strict_types=True``, so subclasses do
not); everything else is a msgpack ExtType whose payload is itself msgpack:

====  =====================  ====================================================
code  Python type            payload
====  =====================  ====================================================
1     int beyond 64 bits     decimal text (str)
2     tuple                  array of items
3     set                    array of members
4     frozenset              array of members
5     dataclass instance     ``["module:Qual.Name", {field: value, ...}]``
6     Enum member            ``["module:Qual.Name", member.value]``
7     datetime.datetime      ``[y, mo, d, h, mi, s, us, fold, tzinfo]``
8     datetime.date          ``[y, mo, d]``
9     datetime.time          ``[h, mi, s, us, fold, tzinfo]``
10    datetime.timedelta     ``[days, seconds, microseconds]``
11    datetime.timezone      ``[offset_microseconds, name or nil]`` (nil: default name)
12    zoneinfo.ZoneInfo      key (str)
13    PurePosixPath          UTF-8 bytes (surrogateescape)
14    PureWindowsPath        UTF-8 bytes (surrogateescape)
15    PosixPath              UTF-8 bytes; a PurePosixPath where it cannot exist
16    WindowsPath            UTF-8 bytes; a PureWindowsPath where it cannot exist
====  =====================  ====================================================

Deliberate choices: bytearray/memoryview pack natively as bytes; dict subclasses
(OrderedDict, defaultdict, Counter) encode as plain dict; namedtuples and other
subclasses of str/int/float/bytes/list/tuple/set are refused (a silently lost type
would break the receiving code later); enums travel by value, so Flag combinations
work; ints beyond 4300 decimal digits are refused (Python's int/str limit, which
also protects the decoder from quadratic parsing). Dataclass fields are those of
``dataclasses.fields`` (init=False included; InitVar needs a default to decode).
Each ext level costs a few Python frames, so ext nesting (a dataclass in a tuple in
a dataclass...) is bounded by the recursion limit: about 300 levels by default.

Decoding imports the module named in a dataclass/enum tag but instantiates only
dataclasses and Enum subclasses; it never unpickles. Encode errors name the path of
the first offending value: ``.field`` for dataclass fields, ``[i]`` for list/tuple
items, ``[key]`` for dict values, ``[key]<key>`` for dict keys, ``{member}`` for set
members, ``.value``/``.tzinfo`` for enum values and time zones.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import math
import os
import reprlib
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from enum import Enum
from operator import attrgetter
from pathlib import PosixPath, PurePath, PurePosixPath, PureWindowsPath, WindowsPath
from typing import Any
from zoneinfo import ZoneInfo

from msgpack import ExtType, Packer, Unpacker

from paglets.core.errors import SerializationError

# The ext codes of the table above, in order.
(
    EXT_BIGINT,
    EXT_TUPLE,
    EXT_SET,
    EXT_FROZENSET,
    EXT_DATACLASS,
    EXT_ENUM,
    EXT_DATETIME,
    EXT_DATE,
    EXT_TIME,
    EXT_TIMEDELTA,
    EXT_TIMEZONE,
    EXT_ZONEINFO,
    EXT_PURE_POSIX_PATH,
    EXT_PURE_WINDOWS_PATH,
    EXT_POSIX_PATH,
    EXT_WINDOWS_PATH,
) = range(1, 17)

_US = timedelta(microseconds=1)
_PACKERS: list[Packer] = []  # idle packers (list.pop/append are atomic: thread-safe)
# An Unpacker's first buffer (it grows to fit what is fed). msgpack's default is 1 MiB, taken
# by each nesting level of exts: 1.4 KB of nested tuples left 300 MiB held in the pool.
_READ_SIZE = 4096

# Per-process caches: classes are long-lived, and these keep the hot path to dict hits.
_ENCODERS: dict[type, Callable[[Any], Any]] = {}
_CLASS_NAMES: dict[type, str] = {}
_IMPORTED: dict[str, object] = {}
_DATACLASSES: dict[str, tuple[type, set[str], set[str]]] = {}  # class, init, all fields
_ENUMS: dict[str, type[Enum]] = {}


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


def _unpacker_pool(**hooks: Any) -> Callable[[bytes], Any]:
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


# ---------------------------------------------------------------- encoding


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


# ---------------------------------------------------------------- names


def class_name(cls: type) -> str:
    """The portable name of ``cls``: ``"module:Qual.Name"``."""
    try:
        return _CLASS_NAMES[cls]
    except KeyError:
        name = _CLASS_NAMES[cls] = f"{cls.__module__}:{cls.__qualname__}"
        return name


def import_by_name(name: str) -> object:
    """Import the module of a ``"module:Qual.Name"`` name and walk the qualname.

    Raises :class:`SerializationError` naming the part that failed. Dunder parts are
    refused so a name cannot wander through ``__class__``/``__globals__`` and friends.
    """
    try:
        return _IMPORTED[name]
    except (KeyError, TypeError):
        pass
    if not isinstance(name, str):
        raise SerializationError(f"a class name must be a str, not {type(name).__name__}")
    module_name, _, qualname = name.partition(":")
    parts = qualname.split(".")
    if not module_name or not all(p.isidentifier() and not p.startswith("__") for p in parts):
        raise SerializationError(f"malformed class name {name!r}: expected 'module:Qual.Name'")
    # BaseException: a module's top level (or its __getattr__) may raise SystemExit, and a
    # name from the wire must not end the process that decodes it.
    try:
        obj: object = importlib.import_module(module_name)
    except BaseException as exc:
        raise SerializationError(f"{name}: cannot import module {module_name!r}: {exc!r}") from exc
    for i, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except BaseException as exc:
            where = ".".join([module_name, *parts[:i]])
            raise SerializationError(f"{name}: {where} has no attribute {part!r}") from exc
    _IMPORTED[name] = obj
    return obj


def _class_named(name: str, kind: str) -> Any:
    """The dataclass or Enum class a decoded tag names; anything else is refused."""
    cache = _DATACLASSES if kind == "dataclass" else _ENUMS
    try:
        return cache[name]
    except (KeyError, TypeError):  # TypeError: a hostile, unhashable "name"
        pass
    cls = import_by_name(name)
    if kind == "dataclass" and isinstance(cls, type) and dataclasses.is_dataclass(cls):
        fields = dataclasses.fields(cls)
        cache[name] = (cls, {f.name for f in fields if f.init}, {f.name for f in fields})
    elif kind == "Enum" and isinstance(cls, type) and issubclass(cls, Enum):
        cache[name] = cls
    else:
        raise SerializationError(f"{name} is not a{'n' * (kind == 'Enum')} {kind}; refusing it")
    return cache[name]


# ---------------------------------------------------------------- decoding


def _dec_dataclass(payload: list) -> Any:
    name, values = payload
    cls, init_names, all_names = _class_named(name, "dataclass")
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
    return _class_named(name, "Enum")(value)


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


def _items(payload: Any) -> list:
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
_DECODERS: dict[int, Callable[[Any], Any]] = {
    EXT_BIGINT: _dec_bigint,
    EXT_TUPLE: lambda p: tuple(_items(p)),
    EXT_SET: lambda p: set(_items(p)),
    EXT_FROZENSET: lambda p: frozenset(_items(p)),
    EXT_DATACLASS: _dec_dataclass,
    EXT_ENUM: _dec_enum,
    EXT_DATETIME: _dec_datetime,
    EXT_DATE: lambda p: date(*_items(p)),
    EXT_TIME: _dec_time,
    EXT_TIMEDELTA: lambda p: timedelta(*_items(p)),
    EXT_TIMEZONE: _dec_timezone,
    EXT_ZONEINFO: lambda key: ZoneInfo(key),
    EXT_PURE_POSIX_PATH: _path_decoder(PurePosixPath, PurePosixPath),
    EXT_PURE_WINDOWS_PATH: _path_decoder(PureWindowsPath, PureWindowsPath),
    EXT_POSIX_PATH: _path_decoder(PosixPath, PurePosixPath),
    EXT_WINDOWS_PATH: _path_decoder(WindowsPath, PureWindowsPath),
}


def _ext_hook(code: int, data: bytes) -> Any:
    return _run_decoder(_DECODERS, code, data, _unpack)


_unpack = _unpacker_pool(ext_hook=_ext_hook)


def _run_decoder(table: dict, code: int, data: bytes, unpack: Callable[[bytes], Any]) -> Any:
    decoder = table.get(code)
    if decoder is None:
        raise SerializationError(f"unknown ext code {code}")
    try:
        return decoder(unpack(data))
    except SerializationError:
        raise
    except Exception as exc:  # never let a KeyError/TypeError/msgpack error leak out
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


# ---------------------------------------------------------------- plain data


class _Pairs(list):
    """A map decoded by decode_plain, kept as (key, value) pairs: keys need not hash."""


class _UnknownZone(tzinfo):
    """Stands in (plain output only) for a zone key this machine has no data for."""

    def __init__(self, key: str):
        self.key = key

    def utcoffset(self, dt: datetime | None) -> None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return self.key


def _plain_dataclass(payload: list) -> _Pairs:
    name, fields = payload
    if type(name) is not str or type(fields) is not _Pairs:
        raise SerializationError("a dataclass payload must be [name, {field: value}]")
    return _Pairs([("__class__", name), *fields])


def _plain_enum(payload: list) -> Any:
    _name, value = payload
    return value


def _plain_zone(key: str) -> tzinfo:
    try:
        return ZoneInfo(key)
    except Exception:
        return _UnknownZone(str(key))


# Stdlib values are rebuilt (safe, nothing imported); user classes never are.
_PLAIN_DECODERS: dict[int, Callable[[Any], Any]] = {
    **_DECODERS,
    EXT_TUPLE: _items,
    EXT_SET: _items,
    EXT_FROZENSET: _items,
    EXT_DATACLASS: _plain_dataclass,
    EXT_ENUM: _plain_enum,
    EXT_ZONEINFO: _plain_zone,
}


def _plain_ext_hook(code: int, data: bytes) -> Any:
    return _run_decoder(_PLAIN_DECODERS, code, data, _unpack_plain)


_unpack_plain = _unpacker_pool(ext_hook=_plain_ext_hook, object_pairs_hook=_Pairs)


def _jsonable(x: Any, budget: list[int]) -> Any:
    t = type(x)
    if x is None or t is str or t is int or t is bool:
        return x
    if t is float:
        return x if math.isfinite(x) else str(x)  # strict JSON has no NaN/Infinity
    if t is list:
        return [_jsonable(item, budget) for item in x]
    if t is _Pairs:
        return {_json_key(k, budget): _jsonable(v, budget) for k, v in x}
    if t is bytes:
        return base64.b64encode(x).decode("ascii")
    if isinstance(x, (datetime, time)):
        key = getattr(x.tzinfo, "key", None)
        return f"{x.isoformat()}[{key}]" if key else x.isoformat()
    if t is date:
        return x.isoformat()
    if t is timedelta:
        return x.total_seconds()
    if isinstance(x, tzinfo):
        return getattr(x, "key", None) or x.tzname(None)
    if isinstance(x, PurePath):
        return str(x)
    raise SerializationError(f"no plain form for {t.__name__}")


def _json_key(key: Any, budget: list[int]) -> Any:
    plain = _jsonable(key, budget)
    if plain is None or type(plain) in (str, int, float, bool):
        return plain
    text = json.dumps(plain, separators=(",", ":"))  # tuple keys etc: their JSON text
    # A map key holding a map key is escaped twice, and so on: left unbounded, 600 bytes
    # of nested keys would ask for 2**300 characters. Real keys stay far below the budget.
    budget[0] -= len(text)
    if budget[0] < 0:
        raise SerializationError("map keys nested in map keys make too much JSON text for a plain form")
    return text


def decode_plain(data: bytes) -> Any:
    """Decode to JSON-friendly plain data without importing or instantiating user code.

    Mapping: dataclass -> dict of fields plus ``"__class__": "module:Qual.Name"``;
    enum -> its value; tuple/set/frozenset -> list; bytes -> base64 str; big int -> int;
    nan/inf -> "nan"/"inf"/"-inf"; datetime/date/time -> ISO 8601 str, with a
    ``[Zone/Key]`` suffix for ZoneInfo zones; timedelta -> float seconds; timezone ->
    its name, ZoneInfo -> its key; paths -> str; a dict key that is not
    None/bool/int/float/str -> the compact JSON text of its plain form. Those key texts
    may total about eight times the input size; more (map keys nested in map keys, each
    level escaping the one inside) raises :class:`SerializationError`.
    """
    try:
        return _jsonable(_unpack_plain(data), [8 * len(data) + 65536])  # budget of key text
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"cannot decode: {exc!r}") from exc

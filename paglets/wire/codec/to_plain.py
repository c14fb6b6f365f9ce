"""decode_plain: encoded state as JSON-friendly plain data, importing and instantiating nothing.

For listings, the CLI and the HTTP shim: a dataclass becomes a dict of its
fields plus ``"__class__"``; user classes are never resolved, so any state can
be shown whatever modules this process may import.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import PurePath
from typing import Any
from zoneinfo import ZoneInfo

from paglets.core.errors import SerializationError
from paglets.wire.codec.codes import EXT_DATACLASS, EXT_ENUM, EXT_FROZENSET, EXT_SET, EXT_TUPLE, EXT_ZONEINFO
from paglets.wire.codec.decoding import DECODERS, items, run_decoder, unpacker_pool


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
    **DECODERS,
    EXT_TUPLE: items,
    EXT_SET: items,
    EXT_FROZENSET: items,
    EXT_DATACLASS: _plain_dataclass,
    EXT_ENUM: _plain_enum,
    EXT_ZONEINFO: _plain_zone,
}


def _plain_ext_hook(code: int, data: bytes) -> Any:
    return run_decoder(_PLAIN_DECODERS, code, data, _unpack_plain)


_unpack_plain = unpacker_pool(ext_hook=_plain_ext_hook, object_pairs_hook=_Pairs)


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


__all__ = ["decode_plain"]

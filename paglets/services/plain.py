"""Typed payloads: dataclass trees <-> plain data, checked against their type hints both ways.

A service request or reply travels as plain data: a dataclass becomes a dict
of its fields, an enum its value, a tuple, set or frozenset a list; bytes
stay bytes (a bytearray travels as bytes and comes back a bytearray where
the field says so). Each side converts with a *plan* compiled once per type
from its type hints, so a value that does not fit its declared type is
refused where it is produced or where it arrives, as a
:class:`~paglets.core.errors.ServiceContractError` naming the path
(``QuoteReply.lines[2].price``), what was expected and what was found.

Types a plan checks: dataclasses, Enum subclasses, ``str``, ``int``,
``float`` (an int is accepted), ``bool``, ``bytes``, ``bytearray``, ``None``,
``list``/``tuple``/``set``/``frozenset``/``Sequence`` of a type, ``dict``/
``Mapping`` of key and value types, ``X | Y`` and ``Optional``, ``Literal``;
any other class is checked by ``isinstance`` and passed as it is (the
message codec carries datetimes, paths...); ``Any`` and ``object`` pass
unchecked.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import sys
import threading
import types
import typing
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from paglets.core.errors import ServiceContractError


class _Mismatch(Exception):
    """A value that does not fit; ``path`` grows as it bubbles up (innermost first)."""

    def __init__(self, expected: str, value: Any, found: str | None = None):
        super().__init__(expected)
        self.expected = expected
        self.found = _describe(value) if found is None else found
        self.path: list[str] = []


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


class Plan:
    """How one type becomes plain data (``encode``) and back (``decode``); both raise _Mismatch."""

    __slots__ = ("decode", "encode", "name")

    def __init__(self, name: str, encode: Any, decode: Any):
        self.name = name
        self.encode = encode
        self.decode = decode


_PLANS: dict[Any, Plan] = {}  # keyed by type hints of this process's own classes: bounded by its code
_LOCK = threading.RLock()


def check_dataclass(cls: Any, what: str) -> None:
    """ServiceContractError unless ``cls`` is a module-level dataclass whose fields this module can check."""
    if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        raise ServiceContractError(f"{what}: {cls!r:.100} is not a dataclass; requests and replies must be dataclasses")
    if "<locals>" in cls.__qualname__ or _find(cls) is not cls:
        raise ServiceContractError(
            f"{what}: {cls.__module__}.{cls.__qualname__} is not importable by its name (defined inside a function?); "
            "define request and reply dataclasses at module level"
        )
    plan_for(cls, what)


def _find(cls: type) -> Any:
    found: Any = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    return found


def plan_for(hint: Any, what: str = "payload") -> Plan:
    """The (cached) plan of a type hint; ServiceContractError if a hint cannot be resolved."""
    try:
        return _PLANS[hint]
    except (KeyError, TypeError):
        pass
    with _LOCK:
        try:
            return _compile(hint)
        except ServiceContractError:
            raise
        except Exception as exc:  # a broken hint: name the class and why
            raise ServiceContractError(f"{what}: cannot check type {hint!r:.100}: {exc}") from None


def to_plain(cls: type, value: Any, what: str) -> Any:
    """``value`` (an instance of ``cls``) as plain data; ServiceContractError naming the first misfit."""
    try:
        return plan_for(cls, what).encode(value)
    except _Mismatch as exc:
        raise _contract_error(what, cls, exc) from None


def from_plain(cls: type, data: Any, what: str) -> Any:
    """An instance of ``cls`` built from plain data; ServiceContractError naming the first misfit."""
    try:
        return plan_for(cls, what).decode(data)
    except _Mismatch as exc:
        raise _contract_error(what, cls, exc) from None


def _contract_error(what: str, cls: type, exc: _Mismatch) -> ServiceContractError:
    path = getattr(cls, "__qualname__", str(cls)) + "".join(reversed(exc.path))
    return ServiceContractError(f"{what}: {path}: expected {exc.expected}, got {exc.found}")


# -- compiling ----------------------------------------------------------------------------------
def _compile(hint: Any) -> Plan:
    if hint in _PLANS:
        return _PLANS[hint]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_plan(hint)  # registers itself first: recursive types work
    plan = _plain_plan(hint)
    try:
        _PLANS[hint] = plan
    except TypeError:  # an unhashable hint (a Literal of lists...): used, not cached
        pass
    return plan


def _plain_plan(hint: Any) -> Plan:
    if hint is Any or hint is object or isinstance(hint, typing.TypeVar):
        return Plan("any value", _same, _same)
    if hint is None or hint is type(None):
        return _exact_plan("None", lambda v: v is None)
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return _union_plan(hint)
    if origin is Literal:
        return _literal_plan(hint)
    if origin is not None:
        return _generic_plan(hint, origin)
    if isinstance(hint, type):
        return _class_plan(hint)
    raise ServiceContractError(f"unsupported type hint {hint!r:.100}")


def _same(value: Any) -> Any:
    return value


def _exact_plan(name: str, ok: Any) -> Plan:
    def check(value: Any) -> Any:
        if not ok(value):
            raise _Mismatch(name, value)
        return value

    return Plan(name, check, check)


def _class_plan(cls: type) -> Plan:
    if issubclass(cls, Enum):
        return _enum_plan(cls)
    if cls is bool:
        return _exact_plan("bool", lambda v: v is True or v is False)
    if cls is int:
        return _exact_plan("int", lambda v: type(v) is int or (isinstance(v, int) and not isinstance(v, bool)))
    if cls is float:
        return _float_plan()
    if cls is bytes:
        return _bytes_plan(bytes)
    if cls is bytearray:
        return _bytes_plan(bytearray)
    if cls in (list, tuple, set, frozenset, dict):
        return _generic_plan(cls, cls)
    return _exact_plan(cls.__name__, lambda v: isinstance(v, cls))


def _float_plan() -> Plan:
    def encode(value: Any) -> Any:
        if type(value) is float or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
        raise _Mismatch("float", value)

    def decode(value: Any) -> Any:
        return float(encode(value))

    return Plan("float", encode, decode)


def _bytes_plan(kind: type) -> Plan:
    def encode(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return value
        raise _Mismatch(kind.__name__, value)

    def decode(value: Any) -> Any:
        if type(value) is kind:
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return kind(value)
        raise _Mismatch(kind.__name__, value)

    return Plan(kind.__name__, encode, decode)


def _enum_plan(cls: type[Enum]) -> Plan:
    name = f"{cls.__qualname__} (an enum)"

    def encode(value: Any) -> Any:
        if isinstance(value, cls):
            return value.value
        raise _Mismatch(name, value)

    def decode(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise _Mismatch(f"one of the values of {cls.__qualname__}", value) from None

    return Plan(name, encode, decode)


def _literal_plan(hint: Any) -> Plan:
    allowed = get_args(hint)
    return _exact_plan(f"one of {allowed!r:.80}", lambda v: any(v == a and type(v) is type(a) for a in allowed))


def _union_plan(hint: Any) -> Plan:
    arms = [_compile(arm) for arm in get_args(hint)]
    name = " or ".join(arm.name for arm in arms)

    def attempt(value: Any, decoding: bool) -> Any:
        for arm in arms:
            try:
                return arm.decode(value) if decoding else arm.encode(value)
            except _Mismatch:
                continue
        raise _Mismatch(name, value)

    return Plan(name, lambda v: attempt(v, False), lambda v: attempt(v, True))


def _generic_plan(hint: Any, origin: Any) -> Plan:
    args = get_args(hint)
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        key = _compile(args[0]) if args else _compile(Any)
        value = _compile(args[1]) if len(args) > 1 else _compile(Any)
        return _mapping_plan(key, value)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        return _fixed_tuple_plan([_compile(arg) for arg in args])
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.MutableSequence,
                  collections.abc.Set, collections.abc.MutableSet, collections.abc.Iterable,
                  collections.abc.Collection):  # fmt: skip
        item = _compile(args[0]) if args else _compile(Any)
        build = {tuple: tuple, set: set, frozenset: frozenset, collections.abc.Set: frozenset}.get(origin, list)
        if origin is collections.abc.MutableSet:
            build = set
        return _sequence_plan(item, build, getattr(origin, "__name__", "sequence"))
    if isinstance(origin, type):  # another generic class (type[X], a user generic...): its class is checked
        return _exact_plan(origin.__name__, lambda v: isinstance(v, origin))
    raise ServiceContractError(f"unsupported type hint {hint!r:.100}")


def _sequence_plan(item: Plan, build: type, kind: str) -> Plan:
    name = f"{kind} of {item.name}"

    def convert(value: Any, decoding: bool) -> Any:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise _Mismatch(name, value)
        step = item.decode if decoding else item.encode
        out = []
        for index, member in enumerate(value):
            try:
                out.append(step(member))
            except _Mismatch as exc:
                exc.path.append(f"[{index}]")
                raise
        return build(out) if decoding and build is not list else out

    return Plan(name, lambda v: convert(v, False), lambda v: convert(v, True))


def _fixed_tuple_plan(items: list[Plan]) -> Plan:
    name = f"tuple of ({', '.join(item.name for item in items)})"

    def convert(value: Any, decoding: bool) -> Any:
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise _Mismatch(name, value)
        out = []
        for index, (plan, member) in enumerate(zip(items, value, strict=True)):
            try:
                out.append(plan.decode(member) if decoding else plan.encode(member))
            except _Mismatch as exc:
                exc.path.append(f"[{index}]")
                raise
        return tuple(out) if decoding else out

    return Plan(name, lambda v: convert(v, False), lambda v: convert(v, True))


def _mapping_plan(key: Plan, value: Plan) -> Plan:
    name = f"dict of {key.name} to {value.name}"

    def convert(data: Any, decoding: bool) -> Any:
        if not isinstance(data, dict):
            raise _Mismatch(name, data)
        out = {}
        for k, v in data.items():
            try:
                out[key.decode(k) if decoding else key.encode(k)] = value.decode(v) if decoding else value.encode(v)
            except _Mismatch as exc:
                exc.path.append(f"[{k!r:.40}]")
                raise
        return out

    return Plan(name, lambda v: convert(v, False), lambda v: convert(v, True))


def _dataclass_plan(cls: type) -> Plan:
    """Registered before its fields compile, so a dataclass may refer to itself."""
    fields: list[tuple[str, Plan]] = []
    required: set[str] = set()
    known: set[str] = set()
    name = cls.__qualname__

    def encode(value: Any) -> Any:
        if not isinstance(value, cls):
            raise _Mismatch(name, value)
        out = {}
        for field_name, plan in fields:
            try:
                out[field_name] = plan.encode(getattr(value, field_name))
            except _Mismatch as exc:
                exc.path.append(f".{field_name}")
                raise
        return out

    def decode(data: Any) -> Any:
        if isinstance(data, cls):
            data = encode(data)  # checked like anything else: decode(encode(x)) is a checked copy
        if not isinstance(data, dict):
            raise _Mismatch(f"{name} (a map of its fields)", data)
        unknown = [key for key in data if key not in known]
        if unknown:
            listed = ", ".join(repr(key)[:40] for key in unknown[:5])
            raise _Mismatch(f"only the fields of {name}", None, f"unknown field(s) {listed}")
        missing = [key for key in required if key not in data]
        if missing:
            raise _Mismatch(f"field(s) {', '.join(sorted(missing))} of {name}", None, "none")
        values = {}
        for field_name, plan in fields:
            if field_name in data:
                try:
                    values[field_name] = plan.decode(data[field_name])
                except _Mismatch as exc:
                    exc.path.append(f".{field_name}")
                    raise
        return cls(**values)

    plan = Plan(name, encode, decode)
    _PLANS[cls] = plan
    try:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if not field.init:
                continue
            fields.append((field.name, _compile(hints.get(field.name, Any))))
            known.add(field.name)
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                required.add(field.name)
    except BaseException:
        _PLANS.pop(cls, None)
        raise
    return plan


__all__ = ["Plan", "check_dataclass", "from_plain", "plan_for", "to_plain"]

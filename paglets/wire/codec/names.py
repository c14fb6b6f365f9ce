"""Class names on the wire, and which modules a name from outside may make this process import.

A dataclass or enum in encoded state travels as ``"module:Qual.Name"``. To
decode one, the module must be imported; importing runs the module's top
level, so a name from another process is resolved only when

* the module is already imported in this process (nothing runs), or
* it is under one of the **allowed module prefixes** (:data:`POLICY`): by
  default only ``paglets`` itself; a node adds its ``allow_modules`` and
  ``preload`` modules, and a class object handed to ``Host.create`` adds its
  own module (:func:`trust_class`).

Anything else is refused before any import, with an error naming the module
and the option that would allow it. Caches keyed by names from outside are
bounded.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import threading
from enum import Enum
from typing import Any

from paglets.core.errors import SerializationError

CACHE_LIMIT = 4096  # names from outside are endless; their caches are not


def allow_hint(module: str) -> str:
    """How an operator allows ``module``: the words every refusal ends with."""
    return f"allow it with --allow-module {module} (Host(allow_modules=[...]), config key allow_modules)"


class ModulePolicy:
    """Which modules names from outside may make this process import. Any thread."""

    def __init__(self, prefixes: tuple[str, ...] = ("paglets",)):
        self._prefixes: set[str] = set(prefixes)
        self._lock = threading.Lock()
        self.allow_any = False

    def allow(self, *prefixes: str) -> None:
        """Allow modules under these dotted prefixes (``myapp`` allows ``myapp`` and ``myapp.x``)."""
        for prefix in prefixes:
            check_module_name(prefix)
        with self._lock:
            self._prefixes.update(prefixes)

    def prefixes(self) -> list[str]:
        with self._lock:
            return sorted(self._prefixes)

    def allows(self, module: str) -> bool:
        """True when a name from outside may make this process import ``module``."""
        if self.allow_any or module in sys.modules:
            return True
        with self._lock:
            prefixes = self._prefixes
            return any(module == p or module.startswith(p + ".") for p in prefixes)


POLICY = ModulePolicy()


def check_module_name(name: Any) -> str:
    if not isinstance(name, str) or not name or not all(part.isidentifier() for part in name.split(".")):
        raise ValueError(f"{name!r:.80} is not a dotted module name")
    return name


def trust_class(cls: type) -> None:
    """A class object this process holds: its module may be imported wherever this process asks."""
    POLICY.allow(cls.__module__)


class _BoundedCache(dict):
    """A dict that forgets its oldest entries past CACHE_LIMIT (insertion order)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        if len(self) >= CACHE_LIMIT:
            for old in list(self)[: CACHE_LIMIT // 4]:
                self.pop(old, None)
        super().__setitem__(key, value)


_CLASS_NAMES: dict[type, str] = {}  # keyed by class objects of this process: bounded by the code
_IMPORTED: dict[str, object] = _BoundedCache()
_DATACLASSES: dict[str, tuple[type, set[str], set[str]]] = _BoundedCache()  # class, init, all fields
_ENUMS: dict[str, type[Enum]] = _BoundedCache()


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
    if not POLICY.allows(module_name):
        raise SerializationError(f"{name}: module {module_name!r} is not allowed here: " + allow_hint(module_name))
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


def class_named(name: str, kind: str) -> Any:
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


__all__ = [
    "POLICY",
    "ModulePolicy",
    "allow_hint",
    "check_module_name",
    "class_name",
    "class_named",
    "import_by_name",
    "trust_class",
]

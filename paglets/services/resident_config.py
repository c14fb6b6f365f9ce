"""Declarations of resident services: ``[[resident_services]]`` tables and ``Host(resident_services=[...])``.

Two steps, so a tool can check a file without importing anything:

1. :func:`parse_resident_tables` checks the TOML tables (keys, types,
   values) and returns a :class:`ResidentDeclaration` per table: the class
   path and the spec fields the table sets. Nothing is imported.
2. :func:`resolve_declarations` imports each class through ``load_class``
   (the node's, which refuses modules its policy does not allow with
   ForbiddenError, passed on as it is), takes its
   ``RESIDENT_SERVICE`` spec and lays the table's fields over it (``state``
   tables are merged key by key), then checks the whole set: agent ids
   unique, a ``singleton`` class declared once.

:func:`resident_specs_from_tables` does both. Every error is a ``ValueError``
naming the file (``source``), the table, the entry's number and the key.

A table::

    [[resident_services]]
    class = "myapp.tickets:TicketService"   # required
    agent_id = "service.tickets"            # default: service.<module>.<Class>
    lifecycle = "lazy"                      # or "eager"
    scope = "mesh"                          # or "local"
    singleton = true
    idle_timeout = 30.0                     # 0: never idle-park it
    state = { region = "eu" }
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet
from paglets.core.errors import ForbiddenError, PagletError
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.resident import ResidentServiceSpec, check_class_path, check_idle_timeout
from paglets.wire.protocol import AGENT_ID_PATTERN

TABLE = "resident_services"
MAX_RESIDENTS = 256  # declarations per node
CLASS_KEY = "class"
TABLE_KEYS = (CLASS_KEY, "agent_id", "lifecycle", "scope", "singleton", "idle_timeout", "state")

LoadClass = Callable[[str], Any]  # "module:Class" -> the class (raising if the node may not import it)


@dataclass(frozen=True)
class ResidentDeclaration:
    """One declared resident service before its class is imported: the class and the fields set."""

    paglet_class: str
    given: dict[str, Any]
    where: str  # for errors: "node.toml: [[resident_services]] #2"


def _where(source: str, table: str, index: int) -> str:
    return f"{source}: [[{table}]] #{index + 1}"


def _fail(where: str, key: str, why: str) -> ValueError:
    return ValueError(f"{where}, key {key!r}: {why}")


def parse_resident_tables(tables: Any, source: str, table: str = TABLE) -> list[ResidentDeclaration]:
    """Check ``[[table]]`` entries as read from TOML; nothing is imported. ValueError names file, entry and key."""
    if not isinstance(tables, list) or not all(isinstance(entry, dict) for entry in tables):
        raise ValueError(f"{source}: {table} must be an array of tables ([[{table}]]), got {type(tables).__name__}")
    if len(tables) > MAX_RESIDENTS:
        raise ValueError(f"{source}: {len(tables)} [[{table}]] entries; the limit is {MAX_RESIDENTS}")
    return [parse_resident_table(entry, _where(source, table, index)) for index, entry in enumerate(tables)]


def parse_resident_table(entry: dict[str, Any], where: str) -> ResidentDeclaration:
    unknown = sorted(set(entry) - set(TABLE_KEYS))
    if unknown:
        raise _fail(where, unknown[0], f"unknown key; the keys are {', '.join(TABLE_KEYS)}")
    if CLASS_KEY not in entry:
        raise _fail(where, CLASS_KEY, "missing: the importable class path of the service ('package.module:Class')")
    try:
        paglet_class = check_class_path(entry[CLASS_KEY], "the class")
    except ValueError as exc:
        raise _fail(where, CLASS_KEY, str(exc)) from None
    given: dict[str, Any] = {}
    for key in TABLE_KEYS[1:]:
        if key in entry:
            try:
                given[key] = _CHECKS[key](entry[key])
            except ValueError as exc:
                raise _fail(where, key, str(exc)) from None
    return ResidentDeclaration(paglet_class, given, where)


def _agent_id(value: Any) -> str:
    if not isinstance(value, str) or not AGENT_ID_PATTERN.match(value):
        raise ValueError(f"{value!r:.80} is not an agent id: 1-128 of A-Z a-z 0-9 . _ - (a letter or digit first)")
    return value


def _choice(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"must be {' or '.join(repr(m.value) for m in kind)}, got {value!r:.40}") from None

    return check


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r:.40}")
    return value


def _state(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a table of the state's field values, got {type(value).__name__}")
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "agent_id": _agent_id,
    "lifecycle": _choice(ResidentLifecycle),
    "scope": _choice(ServiceScope),
    "singleton": _bool,
    "idle_timeout": lambda value: check_idle_timeout(value, "idle_timeout"),
    "state": _state,
}


# -- step 2: the classes -------------------------------------------------------------------------------
def class_spec(cls: Any, path: str) -> ResidentServiceSpec:
    """The ``RESIDENT_SERVICE`` a paglet class declares (ValueError if it is no paglet class or declares none)."""
    if not isinstance(cls, type) or not issubclass(cls, Paglet):
        raise ValueError(f"{path} is not a Paglet class")
    spec = getattr(cls, "RESIDENT_SERVICE", None)
    if not isinstance(spec, ResidentServiceSpec):
        raise ValueError(
            f"{path} declares no RESIDENT_SERVICE = ResidentServiceSpec(contract, ...): the node needs the "
            "contract to advertise the service before it runs"
        )
    return spec


def resolve_declaration(declaration: ResidentDeclaration, load_class: LoadClass) -> ResidentServiceSpec:
    """The class's own spec with the declaration's fields laid over it."""
    path, where = declaration.paglet_class, declaration.where
    try:
        base = class_spec(load_class(path), path)
    except ForbiddenError as exc:  # the node's module policy refused it: that stays a refusal
        raise ForbiddenError(f"{where}, key {CLASS_KEY!r}: {exc}") from None
    except (PagletError, ValueError, ImportError) as exc:
        raise _fail(where, CLASS_KEY, str(exc)) from None
    given = dict(declaration.given)
    if isinstance(given.get("state"), dict) and isinstance(base.state, dict):
        given["state"] = {**base.state, **given["state"]}
    try:
        return dataclasses.replace(base, **given, paglet_class=path)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def resolve_declarations(items: Iterable[ResidentDeclaration], load_class: LoadClass) -> list[ResidentServiceSpec]:
    declarations = list(items)
    specs = [resolve_declaration(declaration, load_class) for declaration in declarations]
    check_unique(specs, [declaration.where for declaration in declarations])
    return specs


def resident_specs_from_tables(
    tables: Any, source: str, load_class: LoadClass, table: str = TABLE
) -> list[ResidentServiceSpec]:
    """``[[table]]`` entries of a TOML file -> checked ResidentServiceSpecs (classes imported by ``load_class``)."""
    return resolve_declarations(parse_resident_tables(tables, source, table), load_class)


def declaration_of(item: Any, where: str) -> ResidentDeclaration | ResidentServiceSpec:
    """One item of ``Host(resident_services=[...])``: a spec naming its class, a paglet class, a class path,
    a table (the TOML keys) or a parsed declaration."""
    if isinstance(item, (ResidentDeclaration, ResidentServiceSpec)):
        if isinstance(item, ResidentServiceSpec) and item.paglet_class is None:
            raise ValueError(f"{where}: a ResidentServiceSpec given to the node must name its paglet_class")
        return item
    if isinstance(item, type):
        return ResidentDeclaration(f"{item.__module__}:{item.__qualname__}", {}, where)
    if isinstance(item, str):
        return parse_resident_table({CLASS_KEY: item}, where)
    if isinstance(item, dict):
        return parse_resident_table(item, where)
    raise ValueError(
        f"{where}: expected a ResidentServiceSpec, a paglet class, a 'module:Class' path or a table, "
        f"got {type(item).__name__}"
    )


def resident_specs(
    items: Iterable[Any], load_class: LoadClass, source: str = "the node's resident_services"
) -> list[ResidentServiceSpec]:
    """What ``Host(resident_services=[...])`` (or a parsed file) declares, as checked specs."""
    specs: list[ResidentServiceSpec] = []
    wheres: list[str] = []
    for index, item in enumerate(items):
        where = getattr(item, "where", None) or _where(source, TABLE, index)
        found = declaration_of(item, where)
        if isinstance(found, ResidentDeclaration):
            specs.append(resolve_declaration(found, load_class))
        else:
            load_class(found.paglet_class)  # the node must be allowed to run it
            specs.append(found)
        wheres.append(where)
    if len(specs) > MAX_RESIDENTS:
        raise ValueError(f"{source}: {len(specs)} resident services; the limit is {MAX_RESIDENTS}")
    check_unique(specs, wheres)
    return specs


def check_unique(specs: list[ResidentServiceSpec], wheres: list[str]) -> None:
    """One service per agent id; a singleton class declared once."""
    ids: dict[str, str] = {}
    classes: dict[str, str] = {}
    for spec, where in zip(specs, wheres, strict=True):
        agent_id = spec.resolved_agent_id
        if agent_id in ids:
            raise _fail(where, "agent_id", f"{agent_id!r} is already the agent id of {ids[agent_id]}")
        ids[agent_id] = where
        path = spec.paglet_class or ""
        if path in classes and (spec.singleton or specs[wheres.index(classes[path])].singleton):
            raise _fail(
                where, CLASS_KEY,
                f"{path} is declared again (first at {classes[path]}); a singleton service runs once per node "
                "(set singleton = false and give each declaration its own agent_id)",
            )  # fmt: skip
        classes.setdefault(path, where)


__all__ = [
    "MAX_RESIDENTS",
    "TABLE",
    "TABLE_KEYS",
    "ResidentDeclaration",
    "class_spec",
    "declaration_of",
    "parse_resident_table",
    "parse_resident_tables",
    "resident_specs",
    "resident_specs_from_tables",
    "resolve_declaration",
    "resolve_declarations",
]

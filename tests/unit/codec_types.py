"""Module-level types for test_codec: the codec can only decode importable classes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple


class Color(enum.Enum):
    RED = "red"
    GREEN = (0, 255, 0)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    FAST = "fast"
    SLOW = "slow"


class Scope(str, enum.Enum):
    LOCAL = "local"
    MESH = "mesh"


class Perm(enum.Flag):
    READ = 1
    WRITE = 2


@dataclass
class Point:
    x: int
    y: int


@dataclass
class Empty:
    pass


@dataclass
class One:
    only: int = 0


@dataclass(frozen=True)
class FrozenPoint:
    x: int
    y: int


@dataclass(slots=True)
class Slotted:
    name: str
    tags: list[str] = field(default_factory=list)


@dataclass
class Derived:
    """Has an init=False field computed in __post_init__ and then changed."""

    base: int
    doubled: int = field(init=False)
    note: str = "default"

    def __post_init__(self) -> None:
        self.doubled = self.base * 2


@dataclass(frozen=True, slots=True)
class FrozenSlottedDerived:
    base: int
    label: str = field(init=False, default="unset")


@dataclass
class Holder:
    """A catch-all container for nesting awkward values."""

    items: list = field(default_factory=list)
    extra: object = None


@dataclass
class Node:
    name: str
    child: Node | None = None


@dataclass
class Counter:
    """Counts instantiations, to prove decode_plain never builds user classes."""

    instances = 0  # not a field: no annotation
    n: int = 0

    def __post_init__(self) -> None:
        type(self).instances += 1


class Pair(NamedTuple):
    a: int
    b: int


class NotADataclass:
    def __init__(self, x: int = 0) -> None:
        self.x = x


class Outer:
    @dataclass
    class Inner:
        value: int


def make_local_dataclass() -> type:
    @dataclass
    class Local:
        x: int

    return Local

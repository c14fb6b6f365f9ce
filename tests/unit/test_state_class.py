"""check_state_class: a state class whose declared fields would not travel is refused before it runs."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from paglets.core.agent import PagletState, check_state_class
from paglets.core.errors import SerializationError


class NoDecorator(PagletState):
    count: int = 0


@dataclasses.dataclass
class Fine(PagletState):
    count: int = 0
    shared: ClassVar[int] = 0
    _: dataclasses.KW_ONLY
    tags: list = dataclasses.field(default_factory=list)


class UndecoratedChild(Fine):
    extra: str = ""


@dataclasses.dataclass
class DecoratedOverUndecorated(NoDecorator):
    other: int = 0


class OnlyClassVars(Fine):
    limit: ClassVar[int] = 3


class NotADataclass:
    count: int = 0


def test_dataclass_states_and_the_base_pass():
    for cls in (PagletState, Fine, OnlyClassVars):
        check_state_class(cls)


@pytest.mark.parametrize(
    ("cls", "culprit", "fields"),
    [
        (NoDecorator, "NoDecorator", "count"),
        (UndecoratedChild, "UndecoratedChild", "extra"),
        (DecoratedOverUndecorated, "NoDecorator", "count"),  # its field is not one of the subclass's
        (NotADataclass, "NotADataclass", "count"),
    ],
)
def test_fields_that_would_be_lost_are_refused_naming_the_class(cls, culprit, fields):
    with pytest.raises(SerializationError) as raised:
        check_state_class(cls)
    text = str(raised.value)
    assert f"{__name__}:{culprit} " in text and f"({fields})" in text and "add @dataclass" in text

"""Which modules a name from outside may make this process import, and the bounded caches of names."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import msgpack
import pytest

from paglets.core.errors import SerializationError
from paglets.wire import codec
from paglets.wire.codec import names


@dataclass
class Box:
    value: int = 0


ALIASES = 3 * names.CACHE_LIMIT
for _index in range(ALIASES):  # many names for one class: a peer can vary a name endlessly
    globals()[f"Alias{_index}"] = Box


def tag(name: str) -> bytes:
    inner = msgpack.packb([name, {"value": 1}], use_bin_type=True)
    return msgpack.packb(msgpack.ExtType(codec.EXT_DATACLASS, inner), use_bin_type=True)


def test_caches_keyed_by_names_from_outside_stay_bounded():
    for index in range(ALIASES):
        assert codec.decode(tag(f"{__name__}:Alias{index}")) == Box(1)
    assert len(names._IMPORTED) <= names.CACHE_LIMIT
    assert len(names._DATACLASSES) <= names.CACHE_LIMIT


def test_a_module_under_an_allowed_prefix_is_allowed_and_others_are_not():
    policy = names.ModulePolicy(("myapp",))
    assert policy.allows("myapp") and policy.allows("myapp.sub.mod")
    assert not policy.allows("myapplication")  # a prefix is a whole dotted part
    assert not policy.allows("not_imported_anywhere_xyz")
    assert policy.allows("json")  # already imported here: importing it runs nothing


def test_allow_refuses_what_is_not_a_module_name():
    with pytest.raises(ValueError, match="not a dotted module name"):
        names.ModulePolicy().allow("../etc")


def test_a_refused_tag_names_the_module_and_the_option_and_imports_nothing():
    with pytest.raises(SerializationError, match=r"'never_imported_xyz' is not allowed here.*--allow-module"):
        codec.decode(tag("never_imported_xyz:Thing"))
    assert "never_imported_xyz" not in sys.modules

"""Behaviour of the state codec (paglets.wire.codec)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import socket
import sys
from collections import OrderedDict, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path, PurePosixPath, PureWindowsPath
from zoneinfo import ZoneInfo

import msgpack
import pytest

from paglets.core.errors import SerializationError
from paglets.wire import codec
from paglets.wire.codec import class_name, decode, decode_plain, encode, import_by_name
from tests.unit import codec_types as ct

MISSING_MODULE = "paglets_codec_test_no_such_module"


def round_trip(value):
    return decode(encode(value))


def typed(x):
    """``x`` with the exact type of every node spelled out, for deep type-aware equality."""
    if isinstance(x, (list, tuple)):
        return (type(x), tuple(typed(i) for i in x))
    if isinstance(x, (set, frozenset)):
        return (type(x), frozenset(typed(i) for i in x))
    if isinstance(x, dict):
        return (type(x), frozenset((typed(k), typed(v)) for k, v in x.items()))
    if dataclasses.is_dataclass(x):
        return (type(x), tuple(typed(getattr(x, f.name)) for f in dataclasses.fields(x)))
    return (type(x), x)


def assert_round_trips(value):
    assert typed(round_trip(value)) == typed(value)


def raw(obj) -> bytes:
    """Hand-made wire bytes, for payloads encode() would never produce."""
    return msgpack.packb(obj, use_bin_type=True)


def ext(code: int, payload) -> msgpack.ExtType:
    return msgpack.ExtType(code, raw(payload))


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        1.5,
        -0.0,
        "",
        "ünïcödé ✓",
        b"",
        b"\x00\xff",
        [],
        [1, [2, [3]]],
        {},
        {"a": 1, "b": [None]},
    ],
)
def test_native_values_round_trip(value):
    assert_round_trips(value)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**100, -(10**100), 2**1000])
def test_big_ints_round_trip_beyond_64_bits(value):
    assert_round_trips(value)


def test_nan_and_infinities_round_trip():
    assert math.isnan(round_trip(float("nan")))
    assert round_trip([float("inf"), float("-inf")]) == [float("inf"), float("-inf")]


def test_bytearray_and_memoryview_encode_as_bytes():
    assert round_trip(bytearray(b"ab")) == b"ab"
    assert round_trip(memoryview(b"cd")) == b"cd"


def test_tuples_stay_tuples_and_lists_stay_lists():
    assert_round_trips((1, "a", [2, (3.0, None)], ()))
    assert_round_trips([(1, "a"), (2, "b")])


def test_set_and_frozenset_stay_distinct():
    assert_round_trips([{1, 2}, frozenset({1, 2}), set(), frozenset()])


def test_set_of_tuples_round_trips():
    assert_round_trips({(1, "a"), (2, "b"), ()})


def test_dict_with_int_tuple_and_frozenset_keys_round_trips():
    assert_round_trips({1: "one", (1, "a"): [1], frozenset({2}): {3: 4}, None: b"x"})


def test_dict_with_frozen_dataclass_and_enum_keys_round_trips():
    assert_round_trips({ct.FrozenPoint(1, 2): "p", ct.Level.LOW: "low"})


def test_nested_dataclasses_inside_tuples_inside_dict_values_round_trip():
    value = {"route": (ct.Point(1, 2), [ct.FrozenPoint(3, 4)]), "tree": ct.Node("a", ct.Node("b"))}
    assert_round_trips(value)


def test_dict_subclasses_encode_as_plain_dicts():
    counts = defaultdict(int, {"a": 1})
    assert typed(round_trip(counts)) == typed({"a": 1})
    assert typed(round_trip(OrderedDict(b=2))) == typed({"b": 2})


# ------------------------------------------------------------------ enums


@pytest.mark.parametrize(
    "member",
    [
        ct.Color.RED,
        ct.Color.GREEN,
        ct.Level.HIGH,
        ct.Mode.SLOW,
        ct.Scope.MESH,
        ct.Perm.READ,
    ],
)
def test_enum_members_decode_to_the_identical_member(member):
    assert round_trip(member) is member


def test_flag_combinations_round_trip():
    both = ct.Perm.READ | ct.Perm.WRITE
    assert round_trip(both) is both


def test_int_enum_is_not_flattened_to_int():
    assert type(round_trip([ct.Level.LOW])[0]) is ct.Level


# ------------------------------------------------------------------ dataclasses


def test_dataclasses_with_zero_and_one_field_round_trip():
    assert_round_trips([ct.Empty(), ct.One(5)])


def test_class_name_and_import_by_name_are_inverse():
    name = class_name(ct.Slotted)
    assert name == "tests.unit.codec_types:Slotted"
    assert import_by_name(name) is ct.Slotted


def test_frozen_dataclass_round_trips():
    assert_round_trips(ct.FrozenPoint(1, 2))


def test_slots_dataclass_round_trips():
    assert_round_trips(ct.Slotted("s", ["a", "b"]))


def test_init_false_field_keeps_its_encoded_value_not_the_recomputed_one():
    value = ct.Derived(3, note="n")
    value.doubled = 99
    back = round_trip(value)
    assert (back.base, back.doubled, back.note) == (3, 99, "n")


def test_frozen_slots_init_false_field_is_restored():
    value = ct.FrozenSlottedDerived(1)
    object.__setattr__(value, "label", "set later")
    assert round_trip(value).label == "set later"


def test_missing_fields_take_their_defaults_and_post_init_runs():
    data = raw(ext(codec.EXT_DATACLASS, ["tests.unit.codec_types:Derived", {"base": 5}]))
    back = decode(data)
    assert (back.base, back.doubled, back.note) == (5, 10, "default")


def test_nested_class_round_trips_by_its_qualname():
    assert class_name(ct.Outer.Inner) == "tests.unit.codec_types:Outer.Inner"
    assert_round_trips(ct.Outer.Inner(7))


def test_optional_field_round_trips_either_way():
    assert_round_trips(ct.Node("leaf"))
    assert_round_trips(ct.Node("root", ct.Node("leaf")))


# ------------------------------------------------------------------ dates, times, paths


def test_naive_datetime_round_trips():
    assert_round_trips(datetime(2024, 2, 29, 23, 59, 59, 999999))


def test_zoneinfo_datetime_round_trips_with_its_key():
    value = datetime(2024, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    back = round_trip(value)
    assert back == value and back.tzinfo is ZoneInfo("Europe/Paris")


def test_fixed_offset_timezone_keeps_its_name():
    tz = timezone(timedelta(hours=-3, minutes=-30), "NST")
    back = round_trip(datetime(2024, 1, 1, tzinfo=tz))
    assert back.tzinfo.tzname(None) == "NST"
    assert back.utcoffset() == timedelta(hours=-3, minutes=-30)


def test_unnamed_offset_and_utc_round_trip_unchanged():
    assert round_trip(datetime(2024, 1, 1, tzinfo=UTC)).tzinfo is UTC
    tz = timezone(timedelta(hours=5, microseconds=1))
    assert repr(round_trip(tz)) == repr(tz)


def test_fold_is_kept():
    ambiguous = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris"))
    back = round_trip(ambiguous)
    assert back.fold == 1 and back.utcoffset() == timedelta(hours=1)


def test_date_and_aware_time_round_trip():
    assert_round_trips(date(1, 1, 1))
    value = time(23, 1, 2, 3, tzinfo=timezone(timedelta(hours=2)), fold=1)
    back = round_trip(value)
    assert back == value and back.fold == 1 and back.utcoffset() == timedelta(hours=2)


def test_negative_timedelta_round_trips():
    assert_round_trips(timedelta(days=-3, seconds=5, microseconds=-7))


def test_standalone_zoneinfo_round_trips():
    assert round_trip(ZoneInfo("America/New_York")) is ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    "path",
    [
        PurePosixPath("/a/b"),
        PureWindowsPath(r"C:\Users\x"),
        Path("rel/file.txt"),
    ],
)
def test_paths_keep_their_own_class(path):
    assert_round_trips(path)


def test_path_with_undecodable_bytes_round_trips():
    path = Path(os.fsdecode(b"/tmp/\xff\xfe"))
    assert round_trip(path) == path


# ------------------------------------------------------------------ encode errors


def test_socket_deep_in_state_is_named_by_field_path():
    with socket.socket() as sock:
        state = ct.Holder(items=[0, 1, ct.Holder(extra=sock)])
        with pytest.raises(SerializationError) as err:
            encode(state, root="state")
    assert str(err.value).startswith("state.items[2].extra: socket ")


def test_lambda_inside_tuple_inside_dict_is_named_by_path():
    with pytest.raises(SerializationError) as err:
        encode({"k": (1, lambda: 0)})
    assert str(err.value).startswith("value['k'][1]: function ")


def test_bad_dict_key_and_bad_set_member_are_named():
    with pytest.raises(SerializationError, match=r"^value\[.*\]<key>: object "):
        encode({object(): 1})
    with pytest.raises(SerializationError, match=r"^value\.extra\{.*\}: object "):
        encode(ct.Holder(extra={object()}))


def test_unsupported_tzinfo_is_named_at_tzinfo():
    class Plus1(tzinfo):
        def utcoffset(self, dt):
            return timedelta(hours=1)

    with pytest.raises(SerializationError, match=r"^state\.extra\.tzinfo: Plus1 "):
        encode(ct.Holder(extra=datetime(2024, 1, 1, tzinfo=Plus1())), root="state")


def test_namedtuple_is_refused_with_a_hint():
    with pytest.raises(SerializationError, match="use a dataclass"):
        encode([ct.Pair(1, 2)])


def test_str_subclass_is_refused():
    class Name(str):
        pass

    with pytest.raises(SerializationError, match=r"^value\[0\]: Name "):
        encode([Name("x")])


def test_local_dataclass_is_refused_when_encoding():
    local = ct.make_local_dataclass()
    with pytest.raises(SerializationError, match="local class"):
        encode(ct.Holder(extra=local(1)))


def test_circular_reference_is_reported():
    node = ct.Node("loop")
    node.child = node
    with pytest.raises(SerializationError, match=r"^value\.child: Node .*circular"):
        encode(node)


def test_lone_surrogate_string_is_named():
    with pytest.raises(SerializationError, match=r"^value\.name: str "):
        encode(ct.Node("\udc80"))


def test_huge_int_beyond_the_decimal_text_limit_is_refused():
    with pytest.raises(SerializationError, match=r"^value\[0\]: int "):
        encode([1 << 20000])


# ------------------------------------------------------------------ decode safety


def test_decode_refuses_a_function_tag_without_calling_it(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    with pytest.raises(SerializationError, match="not a dataclass"):
        decode(raw(ext(codec.EXT_DATACLASS, ["os:system", {}])))
    with pytest.raises(SerializationError, match="not an Enum"):
        decode(raw(ext(codec.EXT_ENUM, ["os:system", "echo hi"])))
    assert calls == []


@pytest.mark.parametrize(
    "name",
    [
        "tests.unit.codec_types:NotADataclass",
        "builtins:dict",
        "tests.unit.codec_types:Color",
    ],
)
def test_decode_refuses_classes_that_are_not_dataclasses(name):
    with pytest.raises(SerializationError, match="not a dataclass"):
        decode(raw(ext(codec.EXT_DATACLASS, [name, {}])))


def test_enum_tag_naming_a_dataclass_is_refused():
    with pytest.raises(SerializationError, match="not an Enum"):
        decode(raw(ext(codec.EXT_ENUM, ["tests.unit.codec_types:Point", 1])))


@pytest.mark.parametrize(
    "name",
    [
        "builtins:object.__subclasses__",
        "os:__builtins__",
        "nocolon",
        ":Point",
        "a:b:c",
        "m:",
    ],
)
def test_malformed_or_dunder_names_are_refused(name):
    with pytest.raises(SerializationError, match="malformed class name"):
        import_by_name(name)


def test_unknown_module_is_named_in_the_error():
    with pytest.raises(SerializationError, match=MISSING_MODULE):
        decode(raw(ext(codec.EXT_DATACLASS, [f"{MISSING_MODULE}:Thing", {}])))


def test_missing_attribute_names_the_failing_part():
    failing_part = r"tests\.unit\.codec_types\.Outer has no attribute 'Nope'"
    with pytest.raises(SerializationError, match=failing_part):
        import_by_name("tests.unit.codec_types:Outer.Nope")


def test_unknown_field_name_is_refused():
    fields = {"x": 1, "y": 2, "z": 3}
    data = raw(ext(codec.EXT_DATACLASS, ["tests.unit.codec_types:Point", fields]))
    with pytest.raises(SerializationError, match="no field"):
        decode(data)


def test_missing_required_field_is_a_serialization_error():
    with pytest.raises(SerializationError):
        decode(raw(ext(codec.EXT_DATACLASS, ["tests.unit.codec_types:Point", {"x": 1}])))


@pytest.mark.parametrize(
    "payload",
    [
        ext(codec.EXT_DATACLASS, ["tests.unit.codec_types:Point"]),
        ext(codec.EXT_DATACLASS, ["tests.unit.codec_types:Point", [1, 2]]),
        ext(codec.EXT_DATACLASS, [7, {}]),
        ext(codec.EXT_ENUM, ["tests.unit.codec_types:Level", 99]),
        ext(codec.EXT_TUPLE, 5),
        ext(codec.EXT_SET, [[1]]),
        ext(codec.EXT_BIGINT, "12x"),
        ext(codec.EXT_BIGINT, 12),
        ext(codec.EXT_DATETIME, [2024, 1, 1]),
        ext(codec.EXT_DATETIME, [2024, 13, 1, 0, 0, 0, 0, 0, None]),
        ext(codec.EXT_DATETIME, [2024, 1, 1, 0, 0, 0, 0, 0, "UTC"]),
        ext(codec.EXT_TIME, [1, 2, 3]),
        ext(codec.EXT_TIMEZONE, [10**12, None]),
        ext(codec.EXT_ZONEINFO, "../../../etc/passwd"),
        ext(codec.EXT_ZONEINFO, "No/Such_Zone"),
        ext(codec.EXT_POSIX_PATH, 3),
        msgpack.ExtType(codec.EXT_TUPLE, b"\x93\x01"),
        msgpack.ExtType(codec.EXT_TUPLE, b"\x90\x01"),
        msgpack.ExtType(99, b""),
    ],
)
def test_malformed_ext_payloads_raise_serialization_error(payload):
    with pytest.raises(SerializationError):
        decode(raw([payload]))


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", b"\x01\x02", "text", None])
def test_garbage_raises_serialization_error(data):
    with pytest.raises(SerializationError):
        decode(data)


def test_trailing_bytes_are_refused():
    with pytest.raises(SerializationError, match="extra bytes"):
        decode(encode(ct.Point(1, 2)) + b"\x00")


def test_deeply_nested_hostile_exts_fail_cleanly_instead_of_crashing():
    data = raw([])
    for _ in range(5000):  # ((((...),),),): each tuple payload is a 1-array (0x91) of the next
        data = raw(msgpack.ExtType(codec.EXT_TUPLE, b"\x91" + data))
    for fn in (decode, decode_plain):
        with pytest.raises(SerializationError):
            fn(data)


def test_legitimately_deep_nesting_round_trips():
    value = None
    for i in range(200):
        value = ct.Node(str(i), value)
    assert round_trip((value, 1)) == (value, 1)


def test_every_truncation_of_a_valid_encoding_raises_serialization_error():
    data = encode(ct.Holder(items=[ct.Point(1, 2), (3, "x"), {4: 2**70}], extra=datetime.now()))
    for end in range(len(data)):
        with pytest.raises(SerializationError):
            decode(data[:end])


def test_random_corruption_never_leaks_a_foreign_exception():
    data = encode(
        ct.Holder(
            items=[ct.Point(1, 2), (ct.Level.LOW, {1.5}), Path("/x")],
            extra={"when": datetime(2024, 1, 1, tzinfo=ZoneInfo("UTC"))},
        )
    )
    rng = random.Random(1234)
    for _ in range(500):
        corrupt = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        for fn in (decode, decode_plain):
            try:
                fn(bytes(corrupt))
            except SerializationError:
                pass


def test_failures_do_not_poison_later_calls():
    value = ct.Holder(items=[ct.Point(1, 2), (3, "x")])
    for _ in range(3):
        with pytest.raises(SerializationError):
            encode([value, object()])
        with pytest.raises(SerializationError):
            decode(encode(value)[:-1])
        assert round_trip(value) == value


def test_concurrent_encoding_and_decoding_from_threads_is_consistent():
    values = [ct.Holder(items=[ct.Point(i, -i), (i, str(i)), {i: {i}}]) for i in range(8)]

    def work(value):
        return all(round_trip(value) == value for _ in range(300))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(work, values))


def test_foreign_msgpack_timestamp_decodes_as_utc_datetime():
    stamp = msgpack.packb(msgpack.Timestamp(0, 0))
    assert decode(stamp) == datetime(1970, 1, 1, tzinfo=UTC)
    assert decode_plain(stamp) == "1970-01-01T00:00:00+00:00"


def test_expected_class_must_match_exactly():
    data = encode(ct.Point(1, 2))
    assert decode(data, expected=ct.Point) == ct.Point(1, 2)
    with pytest.raises(SerializationError, match=r"expected tests\.unit\.codec_types:FrozenPoint"):
        decode(data, expected=ct.FrozenPoint)
    with pytest.raises(SerializationError, match="expected"):
        decode(encode(None), expected=ct.Point)


# ------------------------------------------------------------------ decode_plain


def test_decode_plain_output_is_strict_json():
    value = ct.Holder(
        items=[
            ct.Point(1, 2),
            (1, "a"),
            {3, 4},
            frozenset({5}),
            b"\x00\xff",
            2**80,
            float("nan"),
            float("-inf"),
            ct.Level.HIGH,
            ct.Color.GREEN,
            ct.Perm.READ,
        ],
        extra={
            (1, 2): "tuple key",
            7: "int key",
            "when": datetime(2024, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris")),
            "day": date(2024, 1, 2),
            "at": time(1, 2, tzinfo=UTC),
            "gap": timedelta(minutes=-1, microseconds=5),
            "tz": timezone(timedelta(hours=1), "CET"),
            "zone": ZoneInfo("Asia/Tokyo"),
            "path": Path("/srv/x"),
        },
    )
    plain = decode_plain(encode(value))
    json.dumps(plain, allow_nan=False)
    assert plain["__class__"] == "tests.unit.codec_types:Holder"
    assert plain["items"] == [
        {"__class__": "tests.unit.codec_types:Point", "x": 1, "y": 2},
        [1, "a"],
        [3, 4],
        [5],
        "AP8=",
        2**80,
        "nan",
        "-inf",
        2,
        [0, 255, 0],
        1,
    ]
    assert plain["extra"] == {
        "[1,2]": "tuple key",
        7: "int key",
        "when": "2024-07-01T09:30:00+02:00[Europe/Paris]",
        "day": "2024-01-02",
        "at": "01:02:00+00:00",
        "gap": -59.999995,
        "tz": "CET",
        "zone": "Asia/Tokyo",
        "path": "/srv/x",
    }


def test_decode_plain_does_not_import_or_instantiate_anything():
    thing = ext(codec.EXT_DATACLASS, [f"{MISSING_MODULE}:Thing", {"a": ext(codec.EXT_TUPLE, [1])}])
    data = raw([thing, ext(codec.EXT_ENUM, [f"{MISSING_MODULE}:Kind", "v"])])
    before = ct.Counter.instances
    assert decode_plain(data) == [{"__class__": f"{MISSING_MODULE}:Thing", "a": [1]}, "v"]
    counter_plain = decode_plain(encode(ct.Counter(3)))
    assert counter_plain == {"__class__": "tests.unit.codec_types:Counter", "n": 3}
    assert MISSING_MODULE not in sys.modules
    assert ct.Counter.instances == before + 1  # only the ct.Counter(3) built above


def test_decode_plain_shows_frozen_dataclass_dict_keys_as_json_text():
    plain = decode_plain(encode({ct.FrozenPoint(1, 2): "p"}))
    assert plain == {'{"__class__":"tests.unit.codec_types:FrozenPoint","x":1,"y":2}': "p"}


def test_decode_plain_keeps_an_unknown_zone_key_instead_of_failing():
    zone = ext(codec.EXT_ZONEINFO, "Mars/Olympus")
    data = raw(ext(codec.EXT_DATETIME, [2024, 1, 1, 12, 0, 0, 0, 0, zone]))
    assert decode_plain(data) == "2024-01-01T12:00:00[Mars/Olympus]"


def test_decode_plain_rejects_garbage():
    with pytest.raises(SerializationError):
        decode_plain(b"\x92\x01")
    with pytest.raises(SerializationError):
        decode_plain(raw(msgpack.ExtType(99, b"")))

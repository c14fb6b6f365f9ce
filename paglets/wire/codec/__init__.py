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

Decoding resolves the class named in a dataclass/enum tag only where
:mod:`paglets.wire.codec.names` allows (a module already imported, or under
the allowed module prefixes: nothing is imported because a peer named it), and
instantiates only dataclasses and Enum subclasses; it never unpickles. Encode errors name the path of
the first offending value: ``.field`` for dataclass fields, ``[i]`` for list/tuple
items, ``[key]`` for dict values, ``[key]<key>`` for dict keys, ``{member}`` for set
members, ``.value``/``.tzinfo`` for enum values and time zones.
"""

from paglets.wire.codec.codes import *  # noqa: F403  (the ext codes of the table above)
from paglets.wire.codec.codes import __all__ as _codes
from paglets.wire.codec.decoding import decode
from paglets.wire.codec.encoding import encode
from paglets.wire.codec.names import POLICY, class_name, import_by_name, trust_class
from paglets.wire.codec.to_plain import decode_plain

__all__ = [*_codes, "POLICY", "class_name", "decode", "decode_plain", "encode", "import_by_name", "trust_class"]

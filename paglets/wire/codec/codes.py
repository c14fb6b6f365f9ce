"""The ext codes of the state codec (the table is in :mod:`paglets.wire.codec`)."""

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

__all__ = [
    "EXT_BIGINT", "EXT_DATACLASS", "EXT_DATE", "EXT_DATETIME", "EXT_ENUM", "EXT_FROZENSET", "EXT_POSIX_PATH",
    "EXT_PURE_POSIX_PATH", "EXT_PURE_WINDOWS_PATH", "EXT_SET", "EXT_TIME", "EXT_TIMEDELTA", "EXT_TIMEZONE",
    "EXT_TUPLE", "EXT_WINDOWS_PATH", "EXT_ZONEINFO",
]  # fmt: skip

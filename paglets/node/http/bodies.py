"""Reading and decoding request bodies without starving the node.

The shim shares its process, and so the GIL, with the broker loop, whose
heartbeats keep every worker alive (a worker exits when its node is silent
for three of them). A JSON or msgpack decode is one C call that holds the
GIL until it is done: 16 MiB of ``{"1":0,"2":0,...}`` takes seconds. So the
work HTTP may do at once is bounded three ways:

* :class:`BodyBudget`: the bytes of the large bodies (over
  :data:`SMALL_BODY`) being read and decoded at once. Such a request waits
  up to ``wait`` seconds for its share, then gets 503; its body stays in the
  kernel's socket buffer meanwhile, unread. A small body needs no share: it
  costs little to hold and milliseconds to decode, so a client that declares
  large bodies and sends them slowly, holding the budget, delays only other
  large bodies, never the usual small requests;
* one large decode at a time (``BodyBudget.decoding``), so a decode
  competes for the GIL with the broker loop, not with a convoy of others;
* :data:`MAX_JSON_VALUES` per JSON body, so each C call is short, and so is
  everything done with the result later (encoding it for the worker, the
  JSON reply). A body whose separators (``, : [ {``, counted in C) allow at
  most that many values is decoded by the C decoder; any other body by the
  pure-Python one, which lets the GIL go every few milliseconds and stops
  (413) as soon as it has seen one value too many. A long text full of
  commas is one value and passes.

An envelope (msgpack) is checked the same way before it is decoded: a map of
at most :data:`MAX_ENVELOPE_FIELDS` fields whose ``state`` is binary and
whose other fields take at most :data:`MAX_ENVELOPE_FIELD_BYTES` each.
"""

from __future__ import annotations

import contextlib
import json
import json.decoder
import json.scanner
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

from paglets.node.http.requests import HttpRefusal

MAX_JSON_VALUES = 100_000  # values (object keys included) in one JSON body
SMALL_BODY = 64 * 1024  # a body this size or less takes no share of the budget and decodes at once
MAX_ENVELOPE_FIELDS = 32
MAX_ENVELOPE_FIELD_BYTES = 64 * 1024  # every envelope field but the (binary) state
_SEPARATORS = tuple(ord(c) for c in ",:[{")
_BINARY_OR_NIL = frozenset({0xC0, 0xC4, 0xC5, 0xC6})  # nil, bin 8/16/32
_RETRY_AFTER = {"Retry-After": "1"}


class BodyBudget:
    """Bytes of request bodies being read and decoded at once, and the one-decode-at-a-time lock."""

    def __init__(self, capacity: int, wait: float):
        self.capacity = capacity
        self.wait = wait
        self._free = capacity
        self._changed = threading.Condition()
        self._decode = threading.Lock()

    @property
    def free(self) -> int:
        """Bytes of the budget no body holds now."""
        with self._changed:
            return self._free

    @contextlib.contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        """Hold ``size`` bytes of the budget (waiting up to ``wait`` seconds for them), or 503.

        A small body (at most :data:`SMALL_BODY`) holds nothing.
        """
        if size <= SMALL_BODY:
            yield
            return
        size = min(size, self.capacity)
        deadline = time.monotonic() + self.wait
        with self._changed:
            while self._free < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise HttpRefusal(
                        503, "too many large request bodies being read at once; retry later", "OverloadedError",
                        headers=_RETRY_AFTER,
                    )  # fmt: skip
                self._changed.wait(remaining)
            self._free -= size
        try:
            yield
        finally:
            with self._changed:
                self._free += size
                self._changed.notify_all()

    @contextlib.contextmanager
    def decoding(self, size: int) -> Iterator[None]:
        """Decode a body of ``size`` bytes: a large one when no other is (waiting up to ``wait`` seconds), or 503."""
        if size <= SMALL_BODY:
            yield
            return
        if not self._decode.acquire(timeout=self.wait):
            raise HttpRefusal(503, "too many large request bodies being decoded; retry later", "OverloadedError",
                              headers=_RETRY_AFTER)  # fmt: skip
        try:
            yield
        finally:
            self._decode.release()


# -- JSON ---------------------------------------------------------------------------------
def decode_json(data: bytes) -> Any:
    """The JSON value of a body (None for an empty one); 400 if it is not JSON, 413 if it holds too much."""
    if not data:
        return None
    try:
        text = data.decode("utf-8")  # JSON bodies are UTF-8 (RFC 8259); no guessing at other encodings
    except UnicodeDecodeError as exc:
        raise HttpRefusal(400, f"body is not UTF-8: {exc}"[:300]) from None
    try:
        if sum(data.count(c) for c in _SEPARATORS) < MAX_JSON_VALUES:
            return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        return _CountingDecoder().decode(text)
    except (ValueError, RecursionError) as exc:
        raise HttpRefusal(400, f"body is not valid JSON: {exc}"[:300]) from None


def _too_many() -> HttpRefusal:
    return HttpRefusal(
        413, f"body holds more than {MAX_JSON_VALUES} JSON values; send bulk data over ZeroMQ (the paglets client)"
    )


class _CountingDecoder(json.JSONDecoder):
    """The pure-Python JSON decoder, counting values as it goes and stopping (413) past the limit."""

    def __init__(self) -> None:
        super().__init__(parse_constant=_reject_constant, parse_float=_finite_float)
        self._count = 0
        object_parser, array_parser = self.parse_object, self.parse_array

        def parse_object(s_and_end: Any, strict: bool, scan_once: Callable, *args: Any) -> Any:
            return object_parser(s_and_end, strict, self._counted(scan_once, 2), *args)  # a key and its value

        def parse_array(s_and_end: Any, scan_once: Callable) -> Any:
            return array_parser(s_and_end, self._counted(scan_once, 1))

        self.parse_object, self.parse_array = parse_object, parse_array
        self.scan_once = json.scanner.py_make_scanner(self)

    def _counted(self, scan_once: Callable, values: int) -> Callable:
        def counted(string: str, index: int) -> Any:
            self._count += values
            if self._count > MAX_JSON_VALUES:
                raise _too_many()
            return scan_once(string, index)

        return counted


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


# -- msgpack envelopes --------------------------------------------------------------------
def check_envelope_shape(data: bytes) -> None:
    """400 unless ``data`` is a msgpack map of few, small fields and a binary ``state``.

    Walks the top level with a streaming unpacker that skips values without
    building them, so a hostile body costs a skip, not a decode.
    """
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1))
    unpacker.feed(data)
    try:
        count = unpacker.read_map_header()
        if count > MAX_ENVELOPE_FIELDS:
            raise _bad_envelope(f"has {count} fields; at most {MAX_ENVELOPE_FIELDS}")
        for _ in range(count):
            start = unpacker.tell()
            unpacker.skip()  # the key
            if unpacker.tell() - start > 64:
                raise _bad_envelope("has a field name longer than 64 bytes")
            key_end = unpacker.tell()
            key = msgpack.unpackb(data[start:key_end], raw=False)
            if key == "state" and data[key_end] not in _BINARY_OR_NIL:
                raise _bad_envelope("field 'state' must be binary (codec-encoded state)")
            unpacker.skip()
            if key != "state" and unpacker.tell() - key_end > MAX_ENVELOPE_FIELD_BYTES:
                raise _bad_envelope(f"field {key!r:.40} takes over {MAX_ENVELOPE_FIELD_BYTES} bytes")
    except HttpRefusal:
        raise
    except Exception as exc:  # any decoding failure is the sender's fault
        raise HttpRefusal(400, f"envelope is not a valid msgpack map: {exc}"[:300], "SerializationError") from None


def _bad_envelope(why: str) -> HttpRefusal:
    return HttpRefusal(400, f"envelope {why}", "SerializationError")


__all__ = [
    "MAX_ENVELOPE_FIELDS",
    "MAX_ENVELOPE_FIELD_BYTES",
    "MAX_JSON_VALUES",
    "SMALL_BODY",
    "BodyBudget",
    "check_envelope_shape",
    "decode_json",
]

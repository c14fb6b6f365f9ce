"""Relay frames: what one side builds the other parses, and a malformed frame set is refused."""

from __future__ import annotations

import msgpack
import pytest

from paglets.core.errors import ProtocolError
from paglets.wire import protocol, relay

CLIENT = b"\x00client"
SECRET = "s" * 43
REQUEST = protocol.request_frames("ping", b"c1", {})


def test_a_request_for_a_node_reaches_the_relay_as_to_node():
    parsed = relay.parse_at_relay([CLIENT, *relay.to_prefix("natted"), *REQUEST])
    assert parsed == relay.ToNode(client=CLIENT, node="natted", request=REQUEST)


def test_the_relay_passes_a_request_on_as_from_client():
    parsed = relay.parse_at_node(relay.from_frames(CLIENT, REQUEST))
    assert parsed == relay.FromClient(client=CLIENT, request=REQUEST)


def test_a_node_reply_names_the_client():
    reply = protocol.ok_frames(b"c1", {"name": "natted"})
    parsed = relay.parse_at_relay([b"conn", *relay.reply_frames(CLIENT, reply)])
    assert parsed == relay.NodeReply(source=b"conn", client=CLIENT, reply=reply)


@pytest.mark.parametrize("key", [None, "s3cret"])
def test_hello_carries_the_name_secret_and_key_whatever_the_routing_id(key):
    parsed = relay.parse_at_relay([b"any-routing-id", *relay.hello_frames("natted", SECRET, key)])
    assert parsed == relay.Hello(name="natted", secret=SECRET, key=key)


@pytest.mark.parametrize("secret", [None, 7, "short", "x" * 257, "tab\tinside" * 4, "\u00e9" * 40])
def test_a_hello_without_a_usable_secret_parses_with_none_for_the_relay_to_refuse(secret):
    body = protocol.pack({"name": "natted", "secret": secret})
    assert relay.parse_at_relay([b"id", relay.RELAY_MAGIC, relay.HELLO, body]).secret is None


def test_refused_carries_the_reason_and_a_garbled_one_is_still_a_refusal():
    assert relay.parse_at_node(relay.refused_frames("wrong key")) == relay.Refused(reason="wrong key")
    garbled = relay.parse_at_node([relay.RELAY_MAGIC, relay.REFUSED, b"\xc1"])
    assert garbled == relay.Refused(reason="(the relay gave no reason)")
    long = relay.parse_at_node([relay.RELAY_MAGIC, relay.REFUSED, protocol.pack({"reason": "r" * 10_000})])
    assert len(long.reason) == relay.MAX_REASON_CHARS


def test_welcome_carries_relay_and_epoch():
    assert relay.parse_at_node(relay.welcome_frames("r1", "e1")) == relay.Welcome(relay="r1", epoch="e1")


def test_a_garbled_welcome_is_still_a_welcome():
    assert relay.parse_at_node([relay.RELAY_MAGIC, relay.WELCOME, b"\xc1"]) == relay.Welcome(relay=None, epoch=None)


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([CLIENT, b"RLY2", b"to", b"n", b"x"], "magic"),
        ([CLIENT, relay.RELAY_MAGIC, b"to", b"natted"], "'to'"),
        ([CLIENT, relay.RELAY_MAGIC, b"to", b"../etc", b"x"], "invalid node name"),
        ([CLIENT, relay.RELAY_MAGIC, b"to", b"n" * 200, b"x"], "invalid node name"),
        ([b"natted", relay.RELAY_MAGIC, b"reply", CLIENT], "'reply'"),
        ([b"natted", relay.RELAY_MAGIC, b"hello"], "'hello'"),
        ([b"natted", relay.RELAY_MAGIC, b"hello", b"{}", b"extra"], "'hello'"),
        ([b"natted", relay.RELAY_MAGIC, b"hello", b"\xc1"], "msgpack"),
        ([b"natted", relay.RELAY_MAGIC, b"hello", b"\x80" + b"x" * 20_000], "over the"),
        ([b"natted", relay.RELAY_MAGIC, b"hello", msgpack.packb({"secret": SECRET})], "invalid node name"),
        ([b".bad", relay.RELAY_MAGIC, b"hello", msgpack.packb({"name": ".bad"})], "invalid node name"),
        ([CLIENT, relay.RELAY_MAGIC, b"explode"], "unknown"),
    ],
)
def test_malformed_frames_at_the_relay_are_refused(frames, reason):
    with pytest.raises(ProtocolError, match=reason):
        relay.parse_at_relay(frames)


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([b"RLY2", b"from", CLIENT, b"x"], "magic"),
        ([relay.RELAY_MAGIC], "magic"),
        ([relay.RELAY_MAGIC, b"from", CLIENT], "'from'"),
        ([relay.RELAY_MAGIC, b"hello", b"{}"], "unknown"),
    ],
)
def test_malformed_frames_at_a_node_are_refused(frames, reason):
    with pytest.raises(ProtocolError, match=reason):
        relay.parse_at_node(frames)

"""MessageQueuedError on the wire: its type and message id survive the trip; a peer's junk does not."""

from __future__ import annotations

import pytest

from paglets.core.errors import MessageQueuedError, PagletError
from paglets.wire.errors import MAX_MESSAGE_ID, error_from_wire, error_to_wire


def test_message_queued_error_travels_with_its_message_id():
    sent = MessageQueuedError("message abc queued for parked paglet p on node n", message_id="abc")
    wire = error_to_wire(sent)
    assert wire == {"type": "MessageQueuedError", "message": str(sent), "message_id": "abc"}
    back = error_from_wire(wire)
    assert type(back) is MessageQueuedError and isinstance(back, PagletError)
    assert (str(back), back.message_id) == (str(sent), "abc")


@pytest.mark.parametrize(
    ("offered", "kept"), [(None, ""), (7, ""), ({"id": "x"}, ""), ("m" * 10_000, "m" * MAX_MESSAGE_ID)]
)
def test_a_peers_message_id_is_kept_only_as_a_bounded_string(offered, kept):
    back = error_from_wire({"type": "MessageQueuedError", "message": "queued", "message_id": offered})
    assert type(back) is MessageQueuedError and back.message_id == kept

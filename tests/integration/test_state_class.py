"""A paglet whose state class forgot ``@dataclass`` is refused everywhere it would start.

Such a class declares fields the codec never sees (they are class attributes,
not dataclass fields): the paglet would count 1, 2, 3 and then 1 again after
its first move or park. Creating, arriving or waking one fails, and the error
names the class and says to add ``@dataclass``.
"""

from __future__ import annotations

import time

import pytest

from paglets.core.errors import SerializationError, TransferError
from paglets.core.runtime_values import EnvelopeKind
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest, InactiveRecord
from paglets.remote.client import HostClient
from paglets.runtime.envelope import PagletEnvelope
from paglets.wire import codec
from tests import sample_paglets as sp

FORGETFUL = "tests.sample_paglets:ForgetfulPaglet"
NAMED = r"tests\.sample_paglets:ForgetfulState .*add @dataclass"


def forgetful_envelope(node, kind: EnvelopeKind, agent_id: str) -> PagletEnvelope:
    return PagletEnvelope(
        kind=kind,
        agent_id=agent_id,
        agent_class_name=FORGETFUL,
        state_class_name="",
        state=codec.encode(sp.ForgetfulState()),
        source_host_name="elsewhere",
        source_host_address="tcp://127.0.0.1:9",
        target_host_name=node.name,
        target_host_address=node.address,
        metadata={},
    )


def test_host_create_with_the_class_refuses_it(node):
    with pytest.raises(SerializationError, match=NAMED):
        node.create(sp.ForgetfulPaglet)
    assert node.list_agents() == []


def test_a_node_that_has_the_class_loaded_refuses_a_create_by_name(node):
    with pytest.raises(SerializationError, match=NAMED):
        HostClient().create(node.address, FORGETFUL)
    assert node.list_agents() == []


def test_a_node_process_refuses_it_when_its_worker_loads_the_class(node_process):
    alpha = node_process("alpha")  # the node process never imports the tests' modules; its workers do
    client = HostClient(timeout=20)
    with pytest.raises(SerializationError, match=NAMED):
        client.create(alpha.address, FORGETFUL, state={"count": 5})
    assert client.list_agents(alpha.address) == []


def test_an_arriving_one_is_refused_and_nothing_of_it_stays(node):
    envelope = forgetful_envelope(node, EnvelopeKind.DISPATCH, "forgetful-1")
    with pytest.raises(TransferError, match=NAMED):  # a move that did not happen; the reason says why
        node.arrivals.receive_envelope(envelope.to_bytes())
    assert node.list_agents() == []


def test_waking_a_parked_one_fails_and_it_stays_parked(make_node, tmp_path):
    data = tmp_path / "with-record"
    envelope = forgetful_envelope(make_node("seed", persistence_dir=tmp_path / "seed"), EnvelopeKind.ACTIVATION, "fgt")
    record = InactiveRecord(
        envelope, DeactivationPolicy(activate_on_message=False), DeactivationRequest(reason="test"), time.time()
    )
    (data / "inactive").mkdir(parents=True)
    (data / "inactive" / "fgt.mpk").write_bytes(record.to_bytes())
    node = make_node("alpha", persistence_dir=data)
    assert node.agent_info("fgt")["active"] is False
    with pytest.raises(SerializationError, match=NAMED):
        node.activate("fgt")
    assert node.agent_info("fgt")["active"] is False

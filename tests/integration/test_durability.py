"""What a node reported as done survives SIGKILL at random moments."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from paglets.core.errors import MessageQueuedError, NodeUnreachableError, RequestTimeoutError
from paglets.core.messages import Message
from paglets.remote.client import HostClient

PARKING = "tests.sample_paglets:SerialParkingPaglet"
QUEUE_ONLY = {"policy": {"activate_on_message": False}, "reason": "durability test"}
ROUNDS = 5
NODE_GONE = (NodeUnreachableError, RequestTimeoutError)  # what a client sees of a node killed under it


def deactivate(client: HostClient, address: str, agent_id: str) -> None:
    client.request(address, "deactivate", {"agent": agent_id, "request": QUEUE_ONLY})


def parked_ids(client: HostClient, address: str) -> set[str]:
    return {a["agent_id"] for a in client.list_agents(address, active=False, inactive=True)}


@pytest.mark.timeout(240)
def test_acknowledged_mail_and_records_survive_random_sigkills(node_process):
    rng = random.Random(20261124)
    node = node_process("durable")
    client = HostClient(timeout=3)
    mailboxes = [client.create(node.address, PARKING).agent_id for _ in range(3)]
    cycler = client.create(node.address, PARKING).agent_id
    for agent_id in mailboxes:
        deactivate(client, node.address, agent_id)
    acked: dict[str, list[str]] = {agent_id: [] for agent_id in mailboxes}
    unexpected: list[str] = []  # what the threads saw that they should not have: asserted below
    cycler_parked = False  # the last move of the cycler the node reported done
    waking = False  # an activation of the cycler was under way

    for round_no in range(ROUNDS):
        stop = threading.Event()
        flowing = threading.Event()  # set at the round's first acknowledged note

        def send_mail(
            address: str = node.address, round_no: int = round_no, stop: threading.Event = stop,
            flowing: threading.Event = flowing,
        ) -> None:  # fmt: skip
            for count in range(100_000):
                if stop.is_set():
                    return
                agent_id = rng.choice(mailboxes)
                message = Message("note", arg=f"{round_no}-{count}")
                try:
                    reply = client.send(address, agent_id, message, timeout=2)
                except NODE_GONE:
                    return  # the node is gone; this note was never acknowledged
                except MessageQueuedError as queued:  # on disk: the acknowledgement of a queued note
                    if queued.message_id != message.message_id:
                        unexpected.append(f"note {message.arg} queued as {queued.message_id!r}")
                        return
                except Exception as exc:  # recorded for the assertion after the round
                    unexpected.append(f"note {message.arg}: {exc!r}")
                    return
                else:
                    unexpected.append(f"note {message.arg} answered {reply!r}, not MessageQueuedError")
                    return
                acked[agent_id].append(message.arg)
                flowing.set()

        def cycle(address: str = node.address, stop: threading.Event = stop, cycler: str = cycler) -> None:
            nonlocal cycler_parked, waking
            for _ in range(1000):
                if stop.is_set():
                    return
                try:
                    if cycler_parked:
                        waking = True  # done but unreported when the node dies: the record may be gone
                        client.request(address, "activate", {"agent": cycler})
                        cycler_parked = waking = False
                    else:
                        deactivate(client, address, cycler)
                        cycler_parked = True
                except NODE_GONE:
                    return
                except Exception as exc:  # recorded for the assertion after the round
                    unexpected.append(f"cycling {cycler}: {exc!r}")
                    return

        threads = [threading.Thread(target=send_mail), threading.Thread(target=cycle)]
        for thread in threads:
            thread.start()
        assert flowing.wait(20), f"round {round_no}: no note was acknowledged"
        time.sleep(rng.uniform(0.05, 0.6))  # a random moment to pull the plug, not a wait for anything
        node.stop(signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(20)
        assert not any(thread.is_alive() for thread in threads), f"round {round_no}: a client thread hangs"
        assert unexpected == [], f"round {round_no}"
        node = node_process("durable")  # the same data dir
        parked = parked_ids(client, node.address)
        assert set(mailboxes) <= parked, f"round {round_no}: a parked paglet's record is missing"
        if cycler_parked and not waking:
            assert cycler in parked, f"round {round_no}: the cycler's record is missing"
        elif cycler not in parked:
            # It was active when the node died (no checkpoints): gone, as promised. Start a new one.
            cycler = client.create(node.address, PARKING).agent_id
            cycler_parked = False
        else:
            cycler_parked = True  # killed mid-activation: the record was still there
        waking = False

    for agent_id in mailboxes:
        client.request(node.address, "activate", {"agent": agent_id})
        seen = client.send(node.address, agent_id, "seen")
        assert len(seen) == len(set(seen)), "a queued message was delivered twice"
        missing = [note for note in acked[agent_id] if note not in seen]
        assert missing == [], f"acknowledged notes lost: {missing[:5]}"
        positions = [seen.index(note) for note in acked[agent_id]]
        assert positions == sorted(positions), "acknowledged notes out of order"

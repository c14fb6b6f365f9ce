"""What ``paglets top`` and ``paglets events`` print, from the plain data a node answers."""

from __future__ import annotations

import time

from paglets.cli.top_view import Picture, event_line, render_frame

HEALTH = {"name": "beta", "address": "tcp://127.0.0.1:7710", "version": "0.1.0", "uptime": 75.0,
          "active_count": 2, "inactive_count": 1, "crashed_count": 0}  # fmt: skip
HOSTS = [
    {"name": "alpha", "online": True, "code_version": "0.1.0", "active_count": 0, "inactive_count": 0,
     "url": "tcp://127.0.0.1:7700"},
    {"name": "beta", "online": False, "code_version": "0.1.0", "active_count": 2, "inactive_count": 1,
     "url": "tcp://127.0.0.1:7710"},
]  # fmt: skip


def agent(agent_id: str, queued: int, delivered: int, **extra) -> dict:
    mailbox = {"queued": queued, "in_flight": 0, "delivered": delivered, "failed": 0}
    return {"agent_id": agent_id, "class_name": "m:Echo", "phase": "ready", "mailbox": mailbox,
            "started_at": time.time() - 30, **extra}  # fmt: skip


def test_a_frame_shows_the_node_the_mesh_deepest_mailboxes_first_and_recent_events():
    agents = [
        agent("calm", 0, 10),
        agent("busy", 7, 5, source="tcp://127.0.0.1:7700"),
        {"agent_id": "parked", "class_name": "m:Echo", "phase": "inactive", "queued_messages": 2,
         "deactivated_at": time.time() - 4000},
    ]  # fmt: skip
    events = [{"event_id": 9, "timestamp": 0.5, "kind": "arrival", "agent_id": "busy", "class_name": "m:Echo",
               "details": {"source": "tcp://127.0.0.1:7700", "how": "dispatch"}}]  # fmt: skip
    previous = Picture(HEALTH, HOSTS, [agent("calm", 0, 4), agent("busy", 7, 1)], [], taken_at=100.0)
    frame = render_frame(Picture(HEALTH, HOSTS, agents, events, taken_at=102.0), previous, height=40)
    lines = frame.splitlines()
    assert lines[0].startswith("paglets top - beta  tcp://127.0.0.1:7710  paglets 0.1.0  up 75s")
    assert "2 active, 1 parked, 0 crashed" in lines[1] and "messages/s: 5.0 handled, 0.0 failed" in lines[1]
    rows = [line.split() for line in lines if line.split()[:1] in (["busy"], ["parked"], ["calm"])]
    assert [row[0] for row in rows] == ["busy", "parked", "calm"]
    assert rows[0][1:4] == ["Echo", "active", "7"] and rows[0][-1] == "tcp://127.0.0.1:7700"
    assert rows[1][1:4] == ["Echo", "parked", "2"] and rows[1][-2:] == ["parked", "here"]
    assert any(line.startswith("beta") and "offline" in line for line in lines)
    assert "source=tcp://127.0.0.1:7700  how=dispatch" in frame and "\x1b" not in frame


def test_a_short_terminal_shows_what_fits_and_says_how_many_more():
    agents = [agent(f"a{index:02d}", 0, 0) for index in range(50)]
    frame = render_frame(Picture(HEALTH, HOSTS, agents, []), None, height=24)
    assert "... and " in frame and "more" in frame and "messages/s: -" in frame


def test_an_event_line_carries_id_time_kind_paglet_details_and_error():
    line = event_line({"event_id": 3, "timestamp": 1.25, "kind": "message-failed", "agent_id": "a1",
                       "class_name": "pkg.mod:Worker", "message_id": "m-7", "error": "ValueError: no",
                       "details": {"count": 1, "empty": None}})  # fmt: skip
    parts = line.split("  ")
    assert (
        parts[0] == "#3"
        and parts[1].endswith(".250")
        and parts[2:6] == ["message-failed", "a1", "Worker", "message=m-7"]
    )
    assert parts[6:] == ["count=1", "error: ValueError: no"]

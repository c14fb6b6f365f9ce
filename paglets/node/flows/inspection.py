"""What a node can tell about its paglets: listings, details, state, health.

Owns no state: active paglets are read from the broker's table (through
:class:`~paglets.node.broker.commands.BrokerCommands`), parked ones from
:class:`~paglets.node.storage.parked_records.ParkedRecords`. Any thread.
"""

from __future__ import annotations

import os
from typing import Any

import paglets
from paglets.core.agent import ACTIVE, INACTIVE
from paglets.core.errors import InvalidAgentError, PagletError
from paglets.node.broker.commands import LOOP_DEADLINE, BrokerCommands
from paglets.node.flows.listing_fields import add_active_fields, add_parked_fields
from paglets.node.identity import NodeIdentity
from paglets.node.storage.parked_records import ParkedRecords
from paglets.waiting import wait_for
from paglets.wire import codec, protocol


class Inspection:
    """Read-only views of one node's paglets."""

    def __init__(self, broker: BrokerCommands, parked: ParkedRecords, here: NodeIdentity, call_timeout: float):
        self._broker = broker
        self._parked = parked
        self._here = here
        self._call_timeout = call_timeout

    def active_summaries(self) -> list[dict[str, Any]]:
        """The broker's raw view of every worker slot (phase, class, mailbox, checkpoint interval)."""
        return wait_for(self._broker.summaries(), LOOP_DEADLINE, "the broker's listing")

    def agent_ids(self, state: int = ACTIVE) -> list[str]:
        ids: list[str] = []
        if state & ACTIVE:
            ids.extend(s["agent_id"] for s in self.active_summaries() if s["phase"] == "ready")
        if state & INACTIVE:
            ids.extend(self._parked.ids())
        return ids

    def agent_info(self, agent_id: str, *, include_state: bool = False, resources: bool = True) -> dict[str, Any]:
        """Details of one paglet, active or parked; InvalidAgentError if it is not here. ``resources=False``
        leaves its worker alone (no resources listed): what the node's own flows need, a round trip less."""
        try:
            summary = wait_for(self._broker.summary(agent_id), LOOP_DEADLINE, "the broker")
        except InvalidAgentError:
            if agent_id not in self._parked:
                raise InvalidAgentError(
                    f"no paglet {agent_id!r} on node {self._here.name} (neither active nor parked)"
                ) from None
            return self._located(self._parked_info(agent_id, include_state))
        add_active_fields([summary], self._broker, resources=resources)
        return self._describe(summary, include_state)

    def class_name(self, agent_id: str) -> str:
        return str(self.agent_info(agent_id, resources=False)["class_name"])

    def list_agents(self, *, active: bool = True, inactive: bool = False, include_state: bool = False) -> list[dict]:
        agents: list[dict[str, Any]] = []
        if active:
            summaries = self.active_summaries()
            add_active_fields(summaries, self._broker)
            agents.extend(self._describe(s, include_state) for s in summaries)
        if inactive:
            for agent_id in self._parked.ids():
                try:
                    agents.append(self._located(self._parked_info(agent_id, include_state)))
                except InvalidAgentError:
                    continue  # woke while we were listing
        return agents

    def _parked_info(self, agent_id: str, include_state: bool) -> dict[str, Any]:
        info = self._parked.describe(agent_id, include_state)
        record = self._parked.record(agent_id)
        return add_parked_fields(info, record.envelope.state if record is not None else b"")

    def _describe(self, summary: dict[str, Any], include_state: bool) -> dict[str, Any]:
        info = self._located(dict(summary))
        info["active"] = summary["phase"] == "ready"
        if include_state and info["active"]:
            try:
                info["state"] = codec.decode_plain(self.state_bytes(summary["agent_id"]))
            except PagletError as exc:
                info["state_error"] = str(exc)
        return info

    def _located(self, info: dict[str, Any]) -> dict[str, Any]:
        info["host"] = self._here.name
        info["address"] = self._here.address
        return info

    def counts(self) -> tuple[int, int]:
        """(active, parked) paglets here."""
        active = sum(1 for s in self.active_summaries() if s["phase"] == "ready")
        return active, len(self._parked.ids())

    def state_bytes(self, agent_id: str, timeout: float | None = None) -> bytes:
        """The codec-encoded state: a fresh snapshot from the worker (waiting at most ``timeout``,
        by default the call timeout), or the parked record's."""
        record = self._parked.record(agent_id)
        if record is not None:
            return record.envelope.state
        future = self._broker.call_worker(agent_id, {"op": "state"})
        wait = self._call_timeout if timeout is None else timeout
        _header, payload = wait_for(future, wait, f"the state of paglet {agent_id}")
        return payload[0] if payload else b""

    def health(self) -> dict[str, Any]:
        here = self._here
        summaries = self.active_summaries()
        return {
            "name": here.name,
            "address": here.address,
            "http_address": here.http_address,
            "version": paglets.__version__,
            "protocol": protocol.PROTOCOL_VERSION,
            "code_version": here.code_version,
            "active_count": sum(1 for s in summaries if s["phase"] == "ready"),
            "inactive_count": len(self._parked.ids()),
            "crashed_count": sum(1 for s in summaries if s["crashed"]),
            "capabilities": here.capabilities(),
            "tags": list(here.tags),
            "properties": dict(here.properties),
            "pid": os.getpid(),
            "uptime": here.uptime(),
            "insecure": here.insecure,
        }


__all__ = ["Inspection"]

"""What a node can tell about its paglets: listings, details, state, health.

Owns no state: active paglets are read from the broker's table, parked ones
from :class:`~paglets.node.flows.parking.Parking`.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import paglets
from paglets.core.agent import ACTIVE, INACTIVE
from paglets.core.errors import InvalidAgentError, PagletError
from paglets.waiting import wait_for
from paglets.wire import codec, protocol

if TYPE_CHECKING:
    from paglets.node.host import Host


class Inspection:
    """Read-only views of one node's paglets."""

    def __init__(self, host: Host):
        self._host = host

    def _summaries(self) -> list[dict[str, Any]]:
        return wait_for(self._host.require_running().summaries(), 10, "the broker's listing")

    def active_summaries(self) -> list[dict[str, Any]]:
        """The broker's raw view of every worker slot (phase, class, mailbox, checkpoint interval)."""
        return self._summaries()

    def agent_ids(self, state: int = ACTIVE) -> list[str]:
        ids: list[str] = []
        if state & ACTIVE:
            ids.extend(s["agent_id"] for s in self._summaries() if s["phase"] == "ready")
        if state & INACTIVE:
            ids.extend(self._host.parking.ids())
        return ids

    def agent_info(self, agent_id: str, *, include_state: bool = False) -> dict[str, Any]:
        """Details of one paglet, active or parked; InvalidAgentError if it is not here."""
        host = self._host
        try:
            summary = wait_for(host.require_running().summary(agent_id), 10, "the broker")
        except InvalidAgentError:
            if host.parking.record(agent_id) is None:
                raise
            return self._located(host.parking.describe(agent_id, include_state))
        return self._describe(summary, include_state)

    def list_agents(self, *, active: bool = True, inactive: bool = False, include_state: bool = False) -> list[dict]:
        agents: list[dict[str, Any]] = []
        if active:
            agents.extend(self._describe(s, include_state) for s in self._summaries())
        if inactive:
            for agent_id in self._host.parking.ids():
                try:
                    agents.append(self._located(self._host.parking.describe(agent_id, include_state)))
                except InvalidAgentError:
                    continue  # woke while we were listing
        return agents

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
        info["host"] = self._host.name
        info["address"] = self._host.address
        return info

    def counts(self) -> tuple[int, int]:
        """(active, parked) paglets here."""
        active = sum(1 for s in self._summaries() if s["phase"] == "ready")
        return active, len(self._host.parking.ids())

    def state_bytes(self, agent_id: str) -> bytes:
        """The codec-encoded state: a fresh snapshot from the worker, or the parked record's."""
        host = self._host
        record = host.parking.record(agent_id)
        if record is not None:
            return record.envelope.state
        future = host.require_running().call_worker(agent_id, {"op": "state"})
        _header, payload = wait_for(future, host.client.timeout, f"the state of paglet {agent_id}")
        return payload[0] if payload else b""

    def health(self) -> dict[str, Any]:
        host = self._host
        summaries = self._summaries()
        return {
            "name": host.name,
            "address": host.address,
            "http_address": host.http_address,
            "version": paglets.__version__,
            "protocol": protocol.PROTOCOL_VERSION,
            "code_version": host.mesh_version,
            "active_count": sum(1 for s in summaries if s["phase"] == "ready"),
            "inactive_count": len(host.parking.ids()),
            "crashed_count": sum(1 for s in summaries if s["crashed"]),
            "capabilities": host.capabilities(),
            "tags": list(host.tags),
            "properties": dict(host.host_properties),
            "pid": os.getpid(),
            "uptime": round(time.time() - host.started_at, 3),
        }


__all__ = ["Inspection"]

"""Paglets used only by the benchmarks' probes (importable by node workers as ``bench.bench_paglets``)."""

from __future__ import annotations

from paglets.examples.echo import EchoPaglet


class WideEchoPaglet(EchoPaglet):
    """EchoPaglet with more handler threads, so the node keeps more messages in flight to it."""

    MAILBOX_WORKERS = 32


class SingleEchoPaglet(EchoPaglet):
    """EchoPaglet with one handler thread: one message in flight at a time."""

    MAILBOX_WORKERS = 1

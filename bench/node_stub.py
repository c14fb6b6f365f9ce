"""A stand-in for ``paglets-node`` until ``paglets.cli.node`` exists.

Speaks the same start-up lines as the real CLI (``address ...``, then
``ready``) so :mod:`bench.node_process` parses both the same way, and stops
the node cleanly on SIGTERM or SIGINT. Run as ``python -m bench.node_stub``.
"""

from __future__ import annotations

import argparse
import signal
import threading

from paglets.runtime.host import Host


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="bench")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--http-port", default=None, help="ignored: the stub runs no HTTP shim")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preload", action="append", default=[])
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    host = Host(
        args.name, args.bind, args.port,
        persistence_dir=args.data_dir, http_port=None, mesh_lan_discovery=False, preload=args.preload,
    )  # fmt: skip
    host.start_background()
    try:
        print(f"address {host.address}", flush=True)
        print("ready", flush=True)
        stop.wait()
    finally:
        host.stop()


if __name__ == "__main__":
    main()

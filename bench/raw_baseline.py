"""The physical baseline: raw pyzmq client -> ROUTER broker -> DEALER worker and back.

Three processes, the same socket shapes paglets uses (client DEALER -> broker
front ROUTER; broker back ROUTER -> worker DEALER), msgpack-free payloads and
no application logic: what any broker-based design on this machine pays.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time

import zmq


def _broker(front_port: int, back_endpoint: str, ready: mp.Event) -> None:
    ctx = zmq.Context()
    front = ctx.socket(zmq.ROUTER)
    front.bind(f"tcp://127.0.0.1:{front_port}")
    back = ctx.socket(zmq.ROUTER)
    back.bind(back_endpoint)
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    worker_id = None
    ready.set()
    while True:
        for sock, _ in poller.poll():
            frames = sock.recv_multipart()
            if sock is back:
                if frames[1] == b"ready":
                    worker_id = frames[0]
                    continue
                if frames[1] == b"stop":
                    return
                front.send_multipart(frames[1:])
            elif worker_id is not None:
                back.send_multipart([worker_id, *frames])


def _worker(back_endpoint: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.identity = b"w"
    sock.connect(back_endpoint)
    sock.send_multipart([b"ready"])
    while True:
        frames = sock.recv_multipart()
        if frames[-1] == b"stop":
            sock.send_multipart([b"stop"])
            return
        sock.send_multipart(frames)


def measure_rtt(samples: int = 3000, warmup: int = 300) -> list[float]:
    """Round-trip times in seconds through a raw 3-process ROUTER broker."""
    runtime = tempfile.mkdtemp(prefix="pgl-raw-")
    back = f"ipc://{runtime}/back"
    probe = zmq.Context.instance().socket(zmq.ROUTER)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(0)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    broker = ctx.Process(target=_broker, args=(port, back, ready), daemon=True)
    broker.start()
    ready.wait(10)
    worker = ctx.Process(target=_worker, args=(back,), daemon=True)
    worker.start()
    client = zmq.Context.instance().socket(zmq.DEALER)
    client.linger = 0
    client.connect(f"tcp://127.0.0.1:{port}")
    payload = os.urandom(100)
    try:
        # the first replies arrive once the worker registered
        for _ in range(100):
            client.send_multipart([b"x", payload])
            if client.poll(200):
                client.recv_multipart()
                break
        times = []
        for i in range(warmup + samples):
            t0 = time.perf_counter()
            client.send_multipart([b"x", payload])
            client.recv_multipart()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        return times
    finally:
        client.send_multipart([b"x", b"stop"])
        client.poll(1000)
        client.close(0)
        broker.join(2)
        worker.join(2)
        for proc in (broker, worker):
            if proc.is_alive():
                proc.kill()
        shutil.rmtree(runtime, ignore_errors=True)


if __name__ == "__main__":
    import json
    import statistics

    rtts = sorted(measure_rtt())
    print(
        json.dumps(
            {
                "raw_rtt_p50_us": round(statistics.median(rtts) * 1e6, 1),
                "raw_rtt_p99_us": round(rtts[int(len(rtts) * 0.99)] * 1e6, 1),
            }
        )
    )

"""The node's own threads: a pool never shrinks, a loop command that raises is heard of at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import zmq

from paglets.core.errors import InvalidAgentError
from paglets.loops import LoopChannel, LoopThread
from paglets.node.broker.lanes import Lane
from paglets.threads import ThreadPool
from paglets.waiting import wait_for
from tests.logs import LogRecords


# -- thread pools ----------------------------------------------------------------------------
def test_a_job_that_raises_leaves_its_thread_to_the_next_job():
    pool = ThreadPool("test-raises", limit=1)
    try:
        failed = pool.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failed.result(5)
        assert wait_for(pool.submit(lambda: "next"), 5, "the next job") == "next"
    finally:
        pool.shutdown()


def test_a_callback_that_raises_a_base_exception_does_not_shrink_the_pool():
    pool = ThreadPool("test-callback", limit=1)
    gate = threading.Event()
    try:
        first = pool.submit(gate.wait, 5)

        def callback(_future: object) -> None:
            raise KeyboardInterrupt("from a done-callback")

        first.add_done_callback(callback)
        with LogRecords("paglets.threads") as logged:
            gate.set()
            assert wait_for(pool.submit(lambda: "still served"), 5, "a job after the callback raised") == "still served"
        assert any(r.exc_info and isinstance(r.exc_info[1], KeyboardInterrupt) for r in logged.records)
    finally:
        pool.shutdown()


def test_a_broker_lane_job_that_raises_is_logged_and_the_lane_keeps_serving():
    lane = Lane("test-lane", "test jobs", threads=1, limit=4)
    try:
        with LogRecords("paglets.broker") as logged:
            failed = lane.submit(lambda: {}["missing"])
            assert logged.seen.wait(5), "the failed lane job was not logged"
        assert isinstance(failed.exception(5), KeyError)
        record = next(r for r in logged.records if r.levelno >= logging.ERROR)
        assert record.exc_info and isinstance(record.exc_info[1], KeyError)
        assert wait_for(lane.submit(lambda: "next"), 5, "the lane's next job") == "next"
    finally:
        lane.shutdown()


# -- loop commands ---------------------------------------------------------------------------
@pytest.fixture
def loop() -> Iterator[LoopChannel]:
    """A LoopChannel served by a LoopThread of its own, as the broker's is."""
    channel = LoopChannel(zmq.Context.instance(), "test")  # the process's context, as the node's loops use
    stop = threading.Event()

    def serve() -> None:
        pull = channel.pull
        while not stop.is_set():
            if pull.poll(50):
                channel.drain()

    thread = LoopThread("test-loop", channel.bind, serve, channel.close)
    thread.start()
    yield channel
    stop.set()
    thread.join(5)


def test_a_posted_command_that_raises_is_logged_with_its_traceback_and_the_loop_goes_on(loop):
    with LogRecords("paglets.loops") as logged:
        loop.post(lambda: {}["missing"])
        assert logged.seen.wait(5), "the failed command was not logged"
    record = next(r for r in logged.records if r.levelno >= logging.ERROR)
    assert record.exc_info and isinstance(record.exc_info[1], KeyError)
    assert wait_for(loop.call(lambda: "alive"), 5, "the loop after a failed command") == "alive"


def test_a_command_someone_waits_for_fails_their_future_at_once(loop):
    with LogRecords("paglets.loops") as logged:
        with pytest.raises(KeyError):
            wait_for(loop.call(lambda: {}["missing"]), 5, "the failing command")
        assert logged.seen.is_set()  # a bug, not a refusal: logged as well
    with LogRecords("paglets.loops") as refusals:
        with pytest.raises(InvalidAgentError):
            wait_for(loop.call(_refuse), 5, "the refusing command")
    assert not refusals.records  # a refusal is its caller's to report


def _refuse() -> None:
    raise InvalidAgentError("no such paglet")

"""The blocking-call layer against real sockets: whole-call deadlines, abort, fences, a bounded pool."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from relaxd.adapters.blocking import BlockingCalls, CallAbandoned
from relaxd.adapters.worker_pool import WorkerPool
from relaxd.core.ports import DeviceError
from tests.slow_http import SlowHttp


def classify(what: str, exc: BaseException) -> DeviceError:
    if isinstance(exc, TimeoutError):
        return DeviceError("thing", f"{what}: timed out ({exc})")
    return DeviceError("thing", f"{what}: {type(exc).__name__}: {exc}")


@pytest.fixture
def calls() -> Iterator[BlockingCalls]:
    c = BlockingCalls(workers=4)
    yield c
    c.close()


@pytest.fixture
def server() -> Iterator[SlowHttp]:
    s = SlowHttp()
    yield s
    s.close()


def get(url: str, path: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)  # per read: a trickle never trips it
    try:
        conn.request("GET", path)
        return conn.getresponse().read()
    finally:
        conn.close()


async def test_a_trickling_answer_is_cut_at_the_deadline_and_the_worker_is_free_at_once(
    calls: BlockingCalls, server: SlowHttp
) -> None:
    server.trickle_s = 0.2  # a byte every 0.2 s: every read is well within its 10 s timeout
    fence = calls.fence("thing", classify)
    began = time.monotonic()
    with pytest.raises(DeviceError, match="timed out"):
        await fence.call("read", lambda: get(server.url, "/slow"), budget_s=0.5)
    assert 0.45 < time.monotonic() - began < 0.65
    # The fence is free as soon as the worker returned, which the shut-down socket made immediate.
    server.trickle_s = 0.0
    began = time.monotonic()
    assert await fence.call("read", lambda: get(server.url, "/fast"), budget_s=2) == b'{"ok": true}'
    assert time.monotonic() - began < 0.3


async def test_a_call_given_up_sends_nothing_more(calls: BlockingCalls, server: SlowHttp) -> None:
    server.delay_s = 1.0

    def two_requests() -> None:
        get(server.url, "/first")  # answered after 1 s: the op has given up by then
        get(server.url, "/second")  # like soco's Play after SetAVTransportURI

    fence = calls.fence("thing", classify)
    with pytest.raises(DeviceError):
        await fence.call("play", two_requests, budget_s=0.3)
    await asyncio.sleep(1.5)
    assert server.paths() == ["/first"]


async def test_cancelling_the_caller_aborts_within_100_ms_and_nothing_more_is_sent(
    calls: BlockingCalls, server: SlowHttp
) -> None:
    server.trickle_s = 0.5

    def two_requests() -> None:
        get(server.url, "/first")
        get(server.url, "/second")

    fence = calls.fence("thing", classify)
    task = asyncio.create_task(fence.call("play", two_requests, budget_s=30))
    await asyncio.sleep(0.2)
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began < 0.1
    # The next call on the fence waits for the aborted worker, which returns at once.
    server.trickle_s = 0.0
    began = time.monotonic()
    await fence.call("next", lambda: get(server.url, "/next"), budget_s=2)
    assert time.monotonic() - began < 0.3
    assert server.paths() == ["/first", "/next"]


async def test_requests_library_connections_are_cut_too(calls: BlockingCalls, server: SlowHttp) -> None:
    server.trickle_s = 0.3  # soco posts with requests and a 20 s read timeout
    fence = calls.fence("speaker", classify)
    began = time.monotonic()
    with pytest.raises(DeviceError):
        await fence.call("post", lambda: requests.post(server.url + "/soap", data=b"x", timeout=20), budget_s=0.4)
    assert time.monotonic() - began < 0.6


async def test_the_next_call_waits_for_a_job_that_cannot_be_aborted(calls: BlockingCalls) -> None:
    release = threading.Event()
    order: list[str] = []

    def stuck() -> None:
        release.wait(5)  # no socket to shut down: only its own return frees the fence
        order.append("stuck returned")

    fence = calls.fence("thing", classify)
    with pytest.raises(DeviceError, match="timed out"):
        await fence.call("stuck", stuck, budget_s=0.1)
    with pytest.raises(DeviceError, match="has not ended"):
        await fence.call("next", lambda: order.append("next ran"), budget_s=0.2)
    release.set()
    await fence.call("after", lambda: order.append("after ran"), budget_s=2)
    assert order == ["stuck returned", "after ran"]


async def test_parallel_jobs_of_one_op_share_its_deadline(calls: BlockingCalls, server: SlowHttp) -> None:
    server.delay_s = 2.0
    fence = calls.fence("thing", classify)
    began = time.monotonic()
    with pytest.raises(DeviceError):
        async with fence.op("snapshot", 0.3) as op:
            await asyncio.gather(op.run(lambda: get(server.url, "/a")), op.run(lambda: get(server.url, "/b")))
    assert time.monotonic() - began < 0.5


async def test_the_pool_never_grows_beyond_its_workers(calls: BlockingCalls) -> None:
    before = threading.active_count()
    fences = [calls.fence(f"d{i}", classify) for i in range(40)]
    await asyncio.gather(*(f.call("sleep", lambda: time.sleep(0.01), budget_s=10) for f in fences))
    assert calls.pool.started_threads == 4
    assert threading.active_count() <= before + 4


def test_a_job_of_a_given_up_op_is_refused_before_it_starts() -> None:
    pool = WorkerPool(1)
    calls = BlockingCalls(workers=1)
    calls.pool = pool
    ran: list[str] = []

    async def scenario() -> None:
        blocker = threading.Event()
        fence_a, fence_b = calls.fence("a", classify), calls.fence("b", classify)
        first = asyncio.create_task(fence_a.call("busy", lambda: blocker.wait(1), budget_s=5))
        await asyncio.sleep(0.05)
        # Queued behind the busy worker; given up before a worker takes it.
        with pytest.raises(DeviceError):
            await fence_b.call("queued", lambda: ran.append("queued"), budget_s=0.1)
        blocker.set()
        await first

    asyncio.run(scenario())
    pool.shutdown()
    assert ran == []
    assert issubclass(CallAbandoned, ConnectionAbortedError)

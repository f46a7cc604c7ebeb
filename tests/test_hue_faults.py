"""The Hue adapter against a bridge that answers slowly or trickles: whole-request deadlines, no leaks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.core.ports import DeviceError
from relaxd.sim.hue_bridge import HueBridgeSim
from tests.hue_rig import WARM, SlowReturn, assert_restored, light_puts, until

TIMEOUT_S = 0.4


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    hub = HueBridgeSim(lights=12)
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture
def bridge(sim: HueBridgeSim, calls: BlockingCalls) -> HueBridge:
    return HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=TIMEOUT_S)


async def settled_thread_count(at_most: int, timeout_s: float = 1.0) -> int:
    """The thread count once the simulator's handler threads for given-up answers have ended."""
    deadline_s = time.monotonic() + timeout_s
    while threading.active_count() > at_most and time.monotonic() < deadline_s:
        await asyncio.sleep(0.02)
    return threading.active_count()


async def test_a_trickling_bridge_is_cut_at_the_deadline_of_the_whole_request(
    sim: HueBridgeSim, bridge: HueBridge
) -> None:
    # A chunk every 0.05 s: each read is far within the per-read timeout, the whole answer is not.
    sim.trickle_next(3, interval_s=0.05)
    calls_made: list[Callable[[], Awaitable[Any]]] = [
        bridge.lights,
        bridge.check,
        lambda: bridge.set_light(1, {"on": True, "bri": 9}),
    ]
    for call in calls_made:
        began = time.monotonic()
        with pytest.raises(DeviceError, match=r"within 0\.4 s"):
            await call()
        assert time.monotonic() - began < TIMEOUT_S + 0.3
    assert sim.light_state(1)["bri"] == 9  # carried out on arrival; only its answer was lost
    await bridge.check()  # and the bridge is usable at once


async def test_twenty_trickled_calls_leave_no_thread_behind(
    sim: HueBridgeSim, bridge: HueBridge, calls: BlockingCalls
) -> None:
    for light in range(1, 5):  # every worker started: the pool is as big as it gets
        await bridge.set_light(light, {"on": True})
    await asyncio.gather(*(bridge.check() for _ in range(4)))
    baseline = await settled_thread_count(threading.active_count())
    sim.trickle_next(20, interval_s=0.05)
    began = time.monotonic()
    most = 0

    async def one(i: int) -> None:
        nonlocal most
        with pytest.raises(DeviceError, match="within"):
            await (bridge.check() if i % 2 else bridge.set_light(1 + i % 12, {"on": True}))
        most = max(most, threading.active_count())

    await asyncio.gather(*(one(i) for i in range(20)))
    took_s = time.monotonic() - began
    # Three at a time (the bridge's connections), each cut at its deadline.
    assert took_s < 7 * (TIMEOUT_S + 0.1) + 1.1
    assert calls.pool.started_threads == 4
    assert most <= baseline + 3 + 3  # at most the simulator's handlers of the trickles in flight and ending
    assert await settled_thread_count(baseline) <= baseline


async def test_shutting_down_during_trickled_answers_is_prompt(sim: HueBridgeSim, calls: BlockingCalls) -> None:
    bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=30)
    sim.trickle_next(10, interval_s=0.05)
    tasks = [asyncio.create_task(bridge.check()) for _ in range(5)] + [asyncio.create_task(bridge.lights())]
    await until(lambda: bridge.in_flight == 3)
    await asyncio.sleep(0.2)
    began = time.monotonic()
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    await until(lambda: bridge.in_flight == 0, timeout_s=0.2)
    calls.close()
    sim.stop()
    assert time.monotonic() - began < 0.5
    assert len([e for e in sim.request_log() if e.method == "GET"]) == 3  # the queued ones were never sent


async def test_a_restore_after_a_command_given_up_waits_for_it_and_ends_exact(
    sim: HueBridgeSim, bridge: HueBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    returns = SlowReturn(monkeypatch, linger=set(), linger_s=0.0)  # when the given-up call really returned
    room = HueLights(bridge, names=["Light 1", "Light 2", "Light 3"])
    snapshot = await room.snapshot()
    sim.slow_next(1, delay_s=3, path_contains="/lights/2/state")
    sim.clear_request_log()
    with pytest.raises(DeviceError, match="could not set Light 2"):
        await room.apply(WARM)
    report = await room.restore(snapshot)
    assert len(report.restored) == 3
    to_light_2 = [e.at_s for e in sim.request_log() if e.method == "PUT" and "/lights/2/" in e.path]
    assert len(to_light_2) == 2 and to_light_2[1] > returns.returned_at_s[2][0]
    await asyncio.sleep(0.2)
    assert_restored(sim, snapshot)


async def test_a_restore_right_after_a_cancelled_apply_finds_the_fences_clear_and_is_exact(
    sim: HueBridgeSim, bridge: HueBridge
) -> None:
    room = HueLights(bridge, names=["Light 1", "Light 2", "Light 3"])
    snapshot = await room.snapshot()
    sim.slow_next(3, delay_s=5, path_contains="/state")  # carried out on arrival, answered late
    sim.clear_request_log()
    apply = asyncio.create_task(room.apply(WARM))
    await until(lambda: len(light_puts(sim)) == 3)
    apply.cancel()
    with pytest.raises(asyncio.CancelledError):
        await apply
    began = time.monotonic()
    await until(lambda: bridge.in_flight == 0, timeout_s=0.1)
    report = await room.restore(snapshot)
    assert time.monotonic() - began < 0.15  # fences clear in a few ms, then one read and three commands
    assert len(report.restored) == 3 and report.left_alone == []
    assert_restored(sim, snapshot)

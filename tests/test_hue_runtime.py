"""The Hue adapter on the async runtime: cancellation, per-light fences, shared reads, group membership."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.core.ports import DeviceError, LightScene
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import DIMMABLE, EXTENDED_COLOR
from tests.hue_rig import WARM, SlowReturn, assert_restored, group_puts, light_puts, lights_reads, until

DIM = LightScene(bri_254=20, ct_mired=450, transition_s=0)


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    """Fifteen lights: more than one pacing window of light commands; group "Massage Room" has 1-4."""
    hub = HueBridgeSim(lights=0)
    for i in range(15):
        hub.add_light(EXTENDED_COLOR, f"Lamp {i + 1}", on=True, bri=200 - i, ct=200 + i, colormode="ct")
    hub.add_group("Massage Room", ["1", "2", "3", "4"])
    hub.start()
    yield hub
    hub.stop()


# -- cancellation ---------------------------------------------------------------------------------


async def test_an_apply_cancelled_in_the_pacer_sends_nothing_more_and_a_restore_is_exact(
    sim: HueBridgeSim, calls: BlockingCalls
) -> None:
    bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)
    room = HueLights(bridge, names=sim.light_names())  # 15 per-light commands: 5 wait for the pacer
    snapshot = await room.snapshot()
    sim.clear_request_log()
    apply = asyncio.create_task(room.apply(WARM))
    await until(lambda: len(light_puts(sim)) == 10)
    await asyncio.sleep(0.05)
    began = time.monotonic()
    apply.cancel()
    with pytest.raises(asyncio.CancelledError):
        await apply
    assert time.monotonic() - began < 0.1
    await asyncio.sleep(1.3)  # past the pacing window: a waiting command would have gone by now
    assert len(light_puts(sim)) == 10
    report = await room.restore(snapshot)
    assert len(report.restored) == 15 and report.left_alone == []
    assert_restored(sim, snapshot)
    assert sim.rate_limited_count == 0


async def test_a_command_is_not_sent_while_an_earlier_one_to_its_light_is_still_running(
    sim: HueBridgeSim, calls: BlockingCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = SlowReturn(monkeypatch, linger={1}, linger_s=0.4)
    bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=0.25)
    room = HueLights(bridge, names=["Lamp 1", "Lamp 2"])
    snapshot = await room.snapshot()
    with pytest.raises(DeviceError, match=r"could not set Lamp 1 .*within 0\.25 s"):
        await room.apply(WARM)  # its command given up at its deadline, its thread still busy
    sim.clear_request_log()
    began = time.monotonic()
    report = await room.restore(snapshot)
    assert len(report.restored) == 2 and time.monotonic() - began < 0.4
    # The restore's command to that light reached the bridge only after the old call returned.
    [to_light_1] = [e.at_s for e in sim.request_log() if e.method == "PUT" and "/lights/1/" in e.path]
    assert to_light_1 > slow.returned_at_s[1][0]
    assert_restored(sim, snapshot)


async def test_a_fence_that_does_not_clear_within_the_budget_is_a_device_error(
    sim: HueBridgeSim, calls: BlockingCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = SlowReturn(monkeypatch, linger={1}, linger_s=0.8)
    bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=0.25)
    with pytest.raises(DeviceError, match="within"):
        await bridge.set_light(1, {"bri": 10})
    began = time.monotonic()
    other = asyncio.create_task(bridge.set_light(2, {"bri": 11}))  # another light: not fenced
    with pytest.raises(DeviceError, match=r"has not ended within 0\.25 s"):
        await bridge.set_light(1, {"bri": 12})
    assert 0.2 < time.monotonic() - began < 0.4
    await other
    await until(lambda: 1 in slow.returned_at_s)
    await bridge.set_light(1, {"bri": 13})
    assert (sim.light_state(1)["bri"], sim.light_state(2)["bri"]) == (13, 11)
    assert [light for light, _ in light_puts(sim)] == ["1", "2", "1"]


# -- shared reads ---------------------------------------------------------------------------------


async def test_concurrent_reads_share_one_request_and_a_cancelled_reader_leaves_it_to_the_others(
    sim: HueBridgeSim, calls: BlockingCalls
) -> None:
    sim.latency_ms = 200
    bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)
    readers = [asyncio.create_task(bridge.lights()) for _ in range(5)]
    await until(lambda: lights_reads(sim) == 1)
    readers[0].cancel()
    results = await asyncio.gather(*readers[1:])
    assert readers[0].cancelled() and lights_reads(sim) == 1
    assert all(r is results[0] for r in results) and len(results[0]) == 15


async def test_a_read_already_on_its_way_is_not_shared_with_later_callers(
    sim: HueBridgeSim, calls: BlockingCalls
) -> None:
    # Its answer may predate a later caller's last command (a light switched on would look switched off).
    sim.latency_ms = 200
    bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)
    first = asyncio.create_task(bridge.lights())
    await until(lambda: lights_reads(sim) == 1)
    second = asyncio.create_task(bridge.lights())
    third = asyncio.create_task(bridge.lights())
    await asyncio.gather(first, second, third)
    assert lights_reads(sim) == 2


async def test_a_read_whose_callers_all_left_is_not_sent(sim: HueBridgeSim, calls: BlockingCalls) -> None:
    sim.latency_ms = 200
    bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)
    busy = [asyncio.create_task(bridge.check()) for _ in range(3)]
    await until(lambda: bridge.in_flight == 3)
    waiting = asyncio.create_task(bridge.groups())
    await asyncio.sleep(0.05)
    waiting.cancel()
    await asyncio.gather(*busy)
    await asyncio.sleep(0.1)
    assert not any(e.path.rstrip("/").endswith("/groups") for e in sim.request_log())
    assert bridge.in_flight == 0


# -- group membership -----------------------------------------------------------------------------


async def test_a_light_added_to_the_group_between_sessions_joins_the_next_one(
    sim: HueBridgeSim, calls: BlockingCalls
) -> None:
    bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)
    room = HueLights(bridge, group="Massage Room")
    first = await room.snapshot()
    await room.restore(first)
    new = sim.add_light(DIMMABLE, "New lamp", on=True, bri=33)
    sim.add_group("Other", [])  # unrelated groups do not matter
    add_to_group(sim, "1", new)
    second = await room.snapshot()
    assert new not in first["lights"] and new in second["lights"]
    await room.apply(DIM)
    assert sim.light_state(new)["bri"] == 20 and len(group_puts(sim)) == 1  # the group is exactly the room
    await room.restore(second)
    assert sim.light_state(new)["bri"] == 33
    assert_restored(sim, second)


async def test_a_light_added_to_the_group_mid_session_is_never_changed_by_it(
    sim: HueBridgeSim, calls: BlockingCalls
) -> None:
    bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)
    room = HueLights(bridge, group="Massage Room")
    snapshot = await room.snapshot()
    await room.apply(WARM)
    assert len(group_puts(sim)) == 1
    add_to_group(sim, "1", "5")
    before = sim.light_state(5)
    sim.clear_request_log()
    await room.apply(DIM)
    assert group_puts(sim) == []  # the group is no longer exactly the session's lights
    assert sorted(light for light, _ in light_puts(sim)) == ["1", "2", "3", "4"]
    await room.restore(snapshot)
    assert all(light != "5" for light, _ in light_puts(sim))
    assert sim.light_state(5) == before
    assert_restored(sim, snapshot)


def add_to_group(sim: HueBridgeSim, group_id: str, light_id: str) -> None:
    """As the Hue app would."""
    sim.set_group_lights(group_id, [*sim.group_json(group_id)["lights"], light_id])
    assert sim.group_json(group_id)["lights"][-1] == light_id

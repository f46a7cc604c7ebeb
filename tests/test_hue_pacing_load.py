"""One bridge under load: pacing at the bridge's arrival log, first come first served, 3 in flight, 50 rooms."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.adapters.hue.pacing import Gate, Pacing
from relaxd.core.ports import DeviceError, LightScene
from relaxd.sim.hue_bridge import HueBridgeSim, RateLimits
from relaxd.sim.hue_model import COLOR_TEMPERATURE, DIMMABLE, EXTENDED_COLOR
from tests.hue_rig import assert_restored, lights_reads, max_in_window

SCENE = LightScene(bri_254=70, ct_mired=450, transition_s=0)


def puts(sim: HueBridgeSim, kind: str) -> list[tuple[float, str]]:
    """(arrival, path) of the commands of kind ("lights" or "groups") the bridge received."""
    return [(e.at_s, e.path) for e in sim.request_log() if e.method == "PUT" and f"/{kind}/" in e.path]


async def test_commands_queued_behind_busy_connections_never_burst_into_a_429(calls: BlockingCalls) -> None:
    sim = HueBridgeSim(lights=12, latency_ms=80)
    with sim:
        bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=10)
        stop = asyncio.Event()

        async def reader() -> None:  # other rooms reading their lights, keeping the connections busy
            while not stop.is_set():
                await bridge.lights()
                await asyncio.sleep(0.02)  # a room reads per phase, not in a tight loop

        async def writer(first: int) -> None:
            for i in range(15):
                await bridge.set_light(first + i % 6, {"on": True, "bri": 10 + i})

        readers = [asyncio.create_task(reader()) for _ in range(4)]
        await asyncio.wait_for(asyncio.gather(writer(1), writer(7)), 60)  # a 429 after the retry raises here
        stop.set()
        await asyncio.gather(*readers)
        assert sim.rate_limited_count == 0 and sim.max_in_flight <= 3
        times = [t for t, _ in puts(sim, "lights")]
        assert len(times) == 30
        # No sliding second holds more than 10 light commands as the bridge saw them.
        assert max_in_window(times, 1.0) <= 10


async def test_a_paced_command_gets_the_next_free_connection_before_waiting_reads() -> None:
    gate = Gate(Pacing(connections=1), lambda what, budget_s: DeviceError("lights", what))
    busy = await gate.enter("read", [], "a read in flight", 1)
    order: list[str] = []

    async def take(name: str, kind: Any) -> None:
        admitted = await gate.enter(kind, [1] if kind == "light" else [], name, 1)
        order.append(name)
        admitted.leave()

    reads = [asyncio.create_task(take(f"read{i}", "read")) for i in range(3)]
    await asyncio.sleep(0)
    command = asyncio.create_task(take("command", "light"))
    await asyncio.sleep(0)
    assert gate.waiting == 4 and order == []
    busy.leave()
    await asyncio.gather(*reads, command)
    assert order == ["command", "read0", "read1", "read2"]


async def test_a_waiter_cancelled_just_before_its_turn_takes_nothing() -> None:
    gate = Gate(Pacing(connections=1), lambda what, budget_s: DeviceError("lights", what))
    busy = await gate.enter("read", [], "a read in flight", 1)
    waiting = asyncio.create_task(gate.enter("light", [1], "cancelled", 1))
    await asyncio.sleep(0)
    waiting.cancel()
    busy.leave()  # the gate admits the next one before the cancelled task has even run again
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (gate.in_flight, gate.waiting) == (0, 0)
    after = await gate.enter("light", [1], "next", 1)
    assert gate.in_flight == 1
    after.leave()


async def test_a_burst_of_200_commands_from_20_rooms_keeps_to_the_bridge_limits(calls: BlockingCalls) -> None:
    sim = HueBridgeSim(lights=200, latency_ms=5)
    with sim:
        groups = [sim.add_group(f"Room {r}", [str(r * 10 + k + 1) for k in range(10)]) for r in range(10)]
        bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=5)
        sim.clear_request_log()

        async def room(r: int) -> None:
            # Rooms 0-9: nine light commands and one group command; rooms 10-19: ten light commands.
            first = r * 10 + 1
            commands = [bridge.set_light(first + k, {"on": True, "bri": 10 + r}) for k in range(9 if r < 10 else 10)]
            if r < 10:
                commands.append(bridge.set_group(int(groups[r]), range(first, first + 10), {"on": True}))
            await asyncio.gather(*commands)

        began = time.monotonic()
        await asyncio.gather(*(room(r) for r in range(20)))
        light_times = [t for t, _ in puts(sim, "lights")]
        group_times = [t for t, _ in puts(sim, "groups")]
        assert (len(light_times), len(group_times)) == (190, 10)
        assert sim.rate_limited_count == 0 and sim.max_in_flight <= 3
        assert max_in_window(light_times, 1.0) <= 10 and max_in_window(group_times, 1.0) <= 1
        # Paced, not starved: 19 windows of light commands, about 1.1 s each.
        assert time.monotonic() - began < 19 * 1.1 + 2


async def test_commands_reach_the_bridge_first_come_first_served(calls: BlockingCalls) -> None:
    sim = HueBridgeSim(lights=30)
    with sim:
        bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=5)
        sim.clear_request_log()

        def room(first: int) -> asyncio.Future[list[None]]:
            return asyncio.gather(*(bridge.set_light(first + k, {"on": True, "bri": first}) for k in range(10)))

        filler = room(1)  # fills the pacing window
        await asyncio.sleep(0.05)
        room_a = room(11)
        await asyncio.sleep(0)
        room_b = room(21)
        await asyncio.gather(filler, room_a, room_b)
        arrivals = [int(path.split("/")[4]) for _, path in puts(sim, "lights")]
        assert [(i - 1) // 10 for i in arrivals] == [0] * 10 + [1] * 10 + [2] * 10
        assert sim.rate_limited_count == 0


# -- 50 rooms on one bridge -----------------------------------------------------------------------

STATES: list[tuple[Any, dict[str, Any]]] = [
    (EXTENDED_COLOR, {"on": True, "bri": 254, "ct": 181, "colormode": "ct"}),
    (EXTENDED_COLOR, {"on": True, "bri": 140, "xy": [0.2182, 0.1352], "colormode": "xy"}),
    (COLOR_TEMPERATURE, {"on": False, "bri": 150, "ct": 400}),
    (DIMMABLE, {"on": True, "bri": 90}),
]
# The bridge's rate-limit windows shortened to 20 ms and relaxd's to 80 ms: the same pacing, many
# times faster (the real limits would make this test last over a minute); the 60 ms margin still
# absorbs the delay between relaxd's send and the bridge's count on 127.0.0.1.
SIM_WINDOW_S = 0.02
MARGIN_S = 0.06


@pytest.mark.parametrize("by_group", [False, True], ids=["rooms-by-names", "rooms-that-are-groups"])
async def test_fifty_rooms_snapshot_apply_and_restore_at_once(calls: BlockingCalls, by_group: bool) -> None:
    sim = HueBridgeSim(lights=0, latency_ms=5, rate_limits=RateLimits(window_s=SIM_WINDOW_S))
    with sim:
        rooms_lights = []
        for r in range(50):
            ids = [sim.add_light(model, f"Room {r} light {k}", **state) for k, (model, state) in enumerate(STATES)]
            rooms_lights.append(ids)
            if by_group:
                sim.add_group(f"Room {r}", ids)
        before = {i: sim.light_state(i) for ids in rooms_lights for i in ids}
        pacing = Pacing(window_s=SIM_WINDOW_S + MARGIN_S)
        bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=5, pacing=pacing)
        rooms = [
            HueLights(bridge, group=f"Room {r}")
            if by_group
            else HueLights(bridge, names=[f"Room {r} light {k}" for k in range(4)])
            for r in range(50)
        ]
        sim.clear_request_log()
        snapshots = await asyncio.gather(*(room.snapshot() for room in rooms))
        reads_for_snapshots = lights_reads(sim)
        began = time.monotonic()
        await asyncio.gather(*(room.apply(SCENE) for room in rooms))
        assert all(sim.light_state(i)["bri"] == 70 for i in before)
        reports = await asyncio.gather(*(room.restore(s) for room, s in zip(rooms, snapshots, strict=True)))
        took_s = time.monotonic() - began

        assert reads_for_snapshots <= 5
        assert sim.rate_limited_count == 0 and sim.max_in_flight <= 3 and bridge.in_flight == 0
        assert all(len(report.restored) == 4 for report in reports)
        for snapshot in snapshots:
            assert_restored(sim, snapshot)
        assert {i: sim.light_state(i)["on"] for i in before} == {i: s["on"] for i, s in before.items()}
        group_commands = len(puts(sim, "groups"))
        assert group_commands == (50 if by_group else 0)
        print(f"50 rooms: {reads_for_snapshots} GET /lights, in flight <= {sim.max_in_flight}, {took_s:.1f} s")

"""Breathing on the simulated Hue bridge through the real phue: edges against the daemon's own plan.

Every edge is timed where it counts, at the bridge: the simulator's arrival stamp of its group
`PUT`, against the instant the room's engine planned for it (the `at` of the edge it published on
its breath topic), both on this host's monotonic clock. The clock runs faster than real time so that
many breaths fit in a few seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.clock import SystemClock
from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.adapters.hue.pacing import Pacing
from relaxd.app.demo_view import light_states
from relaxd.core.breath_budget import BreathBudget
from relaxd.core.engine import RoomEngine
from relaxd.core.events import Command
from relaxd.core.room import Room
from relaxd.core.routines import Routine
from relaxd.core.units import percent_to_bri_254
from relaxd.sim.hue_bridge import HueBridgeSim, LogEntry, RateLimits
from relaxd.sim.hue_model import EXTENDED_COLOR
from tests.fakes import MemoryStore, RecordingBus
from tests.hue_rig import until

ON_TIME_S = 0.050
LOW, HIGH = percent_to_bri_254(20), percent_to_bri_254(40)
# Limits far above the real bridge's (and relaxd's pacing told so): for the timing of one room, where
# the real limits would only make the test slower, not different.
ROOMY = RateLimits(light_commands=200, group_commands=100, window_s=1.0)
ROOMY_PACING = Pacing(light_commands=200, group_commands=100, window_s=1.0)


def breathing(inhale: str, exhale: str, duration: str = "1h") -> Routine:
    return Routine.model_validate(
        {
            "phases": [
                {
                    "name": "breathe",
                    "duration": duration,
                    "lights": {"brightness": "30%", "color_temp": "2200K"},
                    "breathing": {"inhale": inhale, "exhale": exhale, "brightness": ["20%", "40%"]},
                }
            ]
        }
    )


class Rooms:
    """Rooms of two lights, each in a group of its own on one simulated bridge, one engine each."""

    def __init__(
        self, sim: HueBridgeSim, calls: BlockingCalls, count: int, speed: float, pacing: Pacing | None
    ) -> None:
        self.sim = sim
        self.clock = SystemClock(speed)
        self.bus = RecordingBus()
        budget = BreathBudget(self.clock)
        bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2, pacing=pacing)
        self.engines: dict[str, RoomEngine] = {}
        self.groups: dict[str, str] = {}  # group id -> room
        for i in range(count):
            room_id = f"room{i}"
            a = sim.add_light(EXTENDED_COLOR, f"{room_id} ceiling", on=True, bri=254, ct=181, colormode="ct")
            b = sim.add_light(EXTENDED_COLOR, f"{room_id} lamp", on=True, bri=90, xy=[0.3, 0.3], colormode="xy")
            self.groups[sim.add_group(f"Group {room_id}", [a, b])] = room_id
            room = Room(room_id, MemoryStore(), lights=HueLights(bridge, group=f"Group {room_id}"), speed=speed)
            routines = {"slow": breathing("4s", "6s"), "quick": breathing("2s", "3s")}
            self.engines[room_id] = RoomEngine(
                room, self.bus, self.clock, routines, default_routine="quick", breath_budget=budget,
                breath_topic=f"relaxd/{room_id}/breath",
            )  # fmt: skip
        self.before = light_states(sim)
        self.tasks = [asyncio.create_task(e.run()) for e in self.engines.values()]

    def send(self, room: str, action: str, **kw: Any) -> None:
        self.engines[room].submit(Command(action=action, **kw))  # type: ignore[arg-type]

    def edges(self, room: str) -> list[dict[str, Any]]:
        """The room's published light edges, each with its plan on this host's monotonic clock."""
        now_s, wall_now = time.monotonic(), self.clock.now()
        found = []
        for topic, payload, retain in self.bus.messages:
            data = json.loads(payload)
            if topic == f"relaxd/{room}/breath" and data["breath"] in ("inhale", "exhale"):
                assert retain is False
                planned = datetime.fromisoformat(data["at"]) - wall_now
                found.append({**data, "planned_s": now_s + planned / timedelta(seconds=1) / self.clock.speed})
        return found

    def puts(self, room: str) -> list[LogEntry]:
        """The group commands of the room's group, as the bridge received them."""
        return [
            e
            for e in self.sim.request_log()
            if e.method == "PUT" and e.path.endswith("/action") and self.groups.get(e.path.split("/")[4]) == room
        ]

    def lateness(self, room: str) -> list[float]:
        """Arrival at the bridge minus plan, for every edge the lights followed (all of them sent)."""
        followed = [e for e in self.edges(room) if e["lights"]]
        puts = self.puts(room)
        assert len(puts) == len(followed), (room, len(puts), len(followed))
        for edge, put in zip(followed, puts, strict=True):
            assert put.body["bri"] == (HIGH if edge["breath"] == "inhale" else LOW)
            assert put.body["transitiontime"] == round(edge["duration_s"] / self.clock.speed * 10)
        return [put.at_s - edge["planned_s"] for edge, put in zip(followed, puts, strict=True)]

    def events(self, name: str, room: str) -> list[dict[str, Any]]:
        return [e for e in self.bus.events if e["event"] == name and e["room"] == room]

    async def stop_all(self) -> None:
        for room in self.engines:
            if self.engines[room].public_state in ("running", "paused"):
                self.send(room, "stop")
        await until(lambda: all(self.events("room_restored", r) for r in self.engines), 15)

    def assert_restored(self) -> None:
        assert light_states(self.sim) == self.before  # on, bri and the colour of each light's colormode

    async def close(self) -> None:
        for engine in self.engines.values():
            await engine.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def make_rooms(calls: BlockingCalls) -> AsyncIterator[Callable[..., Rooms]]:
    made: list[tuple[Rooms, HueBridgeSim]] = []

    def make(count: int, speed: float, *, roomy: bool) -> Rooms:
        sim = HueBridgeSim(lights=0, rate_limits=ROOMY if roomy else RateLimits())
        sim.start()
        rooms = Rooms(sim, calls, count, speed, ROOMY_PACING if roomy else None)
        made.append((rooms, sim))
        return rooms

    yield make
    for rooms, sim in made:
        await rooms.close()
        sim.stop()


async def test_one_room_breathes_twenty_times_every_edge_within_50ms_of_its_plan(
    make_rooms: Callable[..., Rooms],
) -> None:
    rooms = make_rooms(1, 10.0, roomy=True)  # a breath of 2 s in, 3 s out: half a real second
    rooms.send("room0", "start", routine="quick")
    await until(lambda: len(rooms.puts("room0")) >= 40, 20)
    late = rooms.lateness("room0")[:40]
    assert len(late) == 40 and all(e["lights"] for e in rooms.edges("room0")[:40])  # 20 breaths, all followed
    assert max(late) < ON_TIME_S and min(late) > -0.005, [round(x * 1000, 1) for x in late]
    # the lights really are where the breath took them (the sim sets the target at once)
    last = rooms.puts("room0")[-1].body["bri"]
    assert {rooms.sim.light_state(i)["bri"] for i in ("1", "2")} == {last}
    await rooms.stop_all()
    rooms.assert_restored()
    assert rooms.sim.rate_limited_count == 0


async def test_ten_rooms_on_one_bridge_stay_within_its_limits_and_every_edge_sent_is_on_time(
    make_rooms: Callable[..., Rooms], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "relaxd.core.breath_budget")
    # The real bridge's limits (one group command a second) and relaxd's own pacing: ten rooms
    # breathing 4 s in and 6 s out at twice real speed want 4 group commands a second.
    rooms = make_rooms(10, 2.0, roomy=False)
    for i in range(10):
        rooms.send(f"room{i}", "start", routine="slow")
        await asyncio.sleep(0.25)  # one button after the other
    await asyncio.sleep(12.0)
    await rooms.stop_all()
    assert rooms.sim.rate_limited_count == 0
    late = [x for room in rooms.engines for x in rooms.lateness(room)]
    assert len(late) >= 4  # the bridge took breath edges in those seconds (some 6), not none
    assert max(late) < ON_TIME_S and min(late) > -0.005, [round(x * 1000, 1) for x in late]
    followed = [sum(e["lights"] for e in rooms.edges(room)) for room in rooms.engines]
    assert sum(1 for n in followed if n) >= 2, followed  # shared out, not one room taking it all
    arrivals = sorted(p.at_s for room in rooms.engines for p in rooms.puts(room))
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(arrivals))  # never bunched
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "hue bridge 127.0.0.1" in warnings[0], warnings
    rooms.assert_restored()


async def test_pause_holds_the_breath_resume_goes_on_on_time_stop_restores_mid_breath(
    make_rooms: Callable[..., Rooms],
) -> None:
    rooms = make_rooms(1, 10.0, roomy=True)
    rooms.send("room0", "start", routine="quick")
    await until(lambda: len(rooms.puts("room0")) >= 4, 10)
    await asyncio.sleep(0.1)  # mid-breath
    rooms.send("room0", "pause")
    await until(lambda: rooms.events("session_paused", "room0"), 5)
    held = len(rooms.puts("room0"))
    bri = rooms.sim.light_state("1")["bri"]
    await asyncio.sleep(1.0)  # two breaths' time
    assert len(rooms.puts("room0")) == held and rooms.sim.light_state("1")["bri"] == bri  # held
    rooms.send("room0", "resume")
    await until(lambda: len(rooms.puts("room0")) >= held + 4, 10)
    late = rooms.lateness("room0")
    assert max(late) < ON_TIME_S and min(late) > -0.005, [round(x * 1000, 1) for x in late]
    resumed = rooms.events("session_resumed", "room0")[0]
    assert resumed  # and the edges after it were planned later by the time held:
    gap = rooms.edges("room0")[held]["planned_s"] - rooms.edges("room0")[held - 1]["planned_s"]
    assert gap > 0.9
    await asyncio.sleep(0.1)
    rooms.send("room0", "stop")  # mid-breath again
    await until(lambda: rooms.events("room_restored", "room0"), 10)
    sent = len(rooms.puts("room0"))
    await asyncio.sleep(0.6)
    assert len(rooms.puts("room0")) == sent  # nothing after the restore
    rooms.assert_restored()


def test_a_hue_room_is_charged_one_group_command_per_edge_whichever_way_it_is_sent(calls: BlockingCalls) -> None:
    pacing = Pacing(light_commands=10, group_commands=1, window_s=1.1)
    bridge = HueBridge("127.0.0.1:9", "user", calls=calls, https=False, pacing=pacing)  # no I/O
    assert HueLights(bridge, group="Massage Room").edge_cost() == [("hue bridge 127.0.0.1:9", 1, 1, 1.1)]
    # more lights than the bridge takes light commands in a window: the charge covers both windows' worth
    many = HueLights(bridge, names=[f"Lamp {i}" for i in range(15)])
    assert many.edge_cost() == [("hue bridge 127.0.0.1:9", 1, 1, 2.2)]

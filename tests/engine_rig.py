"""The engine rig: one room with fake devices, a recording bus, a memory store and a fake clock."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from relaxd.core.breath_budget import BreathBudget
from relaxd.core.engine import RoomEngine
from relaxd.core.events import Command
from relaxd.core.ports import MusicSource
from relaxd.core.room import Room
from relaxd.core.routines import Routine, builtin_routines
from tests.fakes import FakeClock, FakeLights, FakeSpeaker, MemoryStore, RecordingBus, settle

ROUTINE = Routine.model_validate(
    {
        "check_in_every": "50s",
        "phases": [
            {
                "name": "one",
                "duration": "60s",
                "intensity": 0.2,
                "cues": {"table_heat": "warm"},
                "lights": {"brightness": "40%", "color_temp": "2500K", "transition": "10s"},
                "music": {"volume": 12, "ramp": "20s"},
            },
            {
                "name": "two",
                "technique": "petrissage",
                "duration": "2m",
                "intensity": 0.6,
                "lights": {"brightness": "30%", "color_temp": "2200K"},
                "music": {"volume": 50},
            },
            {"name": "three", "duration": "30s", "lights": {"brightness": "10%"}, "music": {"volume": 8}},
        ],
    }
)


class Rig:
    def __init__(
        self,
        *,
        lights: bool = True,
        speaker: bool = True,
        max_volume: int = 30,
        clock: FakeClock | None = None,
        budget: BreathBudget | None = None,
        room_id: str = "bedroom",
        routines: dict[str, Routine] | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.bus = RecordingBus()
        self.store = MemoryStore()
        self.lights = FakeLights()
        self.speaker = FakeSpeaker()
        self.original_lights = copy.deepcopy(self.lights.state)
        self.original_speaker = copy.deepcopy(self.speaker.state)
        self.room = Room(
            room_id,
            self.store,
            lights=self.lights if lights else None,
            speaker=self.speaker if speaker else None,
            music=MusicSource(favorite="Spa Radio"),
            max_volume=max_volume,
            restore_fade_s=5.0,
        )
        self.engine = RoomEngine(
            self.room,
            self.bus,
            self.clock,
            {**builtin_routines(), "test": ROUTINE, **(routines or {})},
            default_routine="test",
            retry_every_s=10.0,
            breath_budget=budget,
            breath_topic=f"relaxd/{room_id}/breath",
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Rig:
        self.task = asyncio.create_task(self.engine.run())
        return self

    async def close(self) -> None:
        await self.engine.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def send(self, action: str, **kw: Any) -> None:
        self.engine.submit(Command(action=action, **kw))  # type: ignore[arg-type]
        await settle()

    async def at(self, seconds_after_start: float, start: float = 1000.0) -> None:
        await self.clock.advance_to(start + seconds_after_start)

    @property
    def state(self) -> str:
        return self.engine.status()["state"]  # type: ignore[no-any-return]


MakeRig = Callable[..., Rig]


def phase_names(bus: RecordingBus) -> list[str]:
    return [e["phase"] for e in bus.of("phase_started")]

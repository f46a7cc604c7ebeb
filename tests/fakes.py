"""Fakes for the core's ports: a fake clock, recording devices and bus, an in-memory store."""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from relaxd.core.ports import DeviceError, EdgeCost, LightScene, MusicSource, RestoreReport, SnapshotData


async def settle(rounds: int = 30) -> None:
    """Let every task on the loop run until it waits on something else than the loop."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class _Timer:
    def __init__(self, clock: FakeClock, at: float, callback: Callable[[], None]) -> None:
        self.at = at
        self.callback = callback
        self.cancelled = False
        self._clock = clock

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time moves only when a test calls advance(); timers and sleeps fire in order then."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self.mono = 1000.0
        self.wall0 = datetime(2026, 11, 23, 20, 0, 0, tzinfo=UTC)
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall0 + timedelta(seconds=self.mono - 1000.0)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self, self.mono + max(0.0, delay_s), callback)
        heapq.heappush(self._timers, (timer.at, next(self._order), timer))
        return timer

    async def sleep(self, delay_s: float) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        timer = self.call_later(delay_s, wake)
        try:
            await done
        finally:
            timer.cancel()

    async def advance(self, seconds: float) -> None:
        """Move time on, firing every timer that falls due on the way, each at its own moment."""
        await self.advance_to(self.mono + seconds)

    async def advance_to(self, mono: float) -> None:
        await settle()
        while self._timers and self._timers[0][0] <= mono:
            at, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.mono = max(self.mono, at)
            timer.callback()
            await settle()
        self.mono = max(self.mono, mono)
        await settle()


class FakeDevice:
    """Records calls; `fail` makes every call raise DeviceError (an unreachable device); `hold` makes
    calls wait until released (a slow device), so cancellation can be tested."""

    name = "device"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = False
        self.fail_restore_times = 0
        self.hold: asyncio.Event | None = None
        self.cancelled: list[str] = []
        self.crash_with: Exception | None = None

    async def _call(self, what: str, arg: Any = None) -> None:
        self.calls.append((what, arg))
        if self.crash_with is not None:
            raise self.crash_with
        if self.hold is not None and what != "check":
            try:
                await self.hold.wait()
            except asyncio.CancelledError:
                self.cancelled.append(what)
                raise
        if self.fail:
            raise DeviceError(self.name, "unreachable (connection refused)")

    async def check(self) -> None:
        await self._call("check")

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class FakeLights(FakeDevice):
    name = "lights"

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, Any] = {"1": {"on": True, "bri": 254, "ct": 250}, "2": {"on": False, "bri": 10}}
        # One light command a light a breath edge, on a bridge of its own that takes 10 a second.
        self.costs: list[EdgeCost] = [EdgeCost("fake bridge lights", 2, 10, 1.0)]

    async def snapshot(self) -> SnapshotData:
        await self._call("snapshot")
        return copy.deepcopy(self.state)

    async def apply(self, scene: LightScene) -> None:
        await self._call("apply", scene)
        for light in self.state.values():
            light.update(on=True, bri=scene.bri_254, ct=scene.ct_mired)

    def edge_cost(self) -> list[tuple[str, int, int, float]]:
        return list(self.costs)

    async def restore(self, snapshot: SnapshotData) -> RestoreReport:
        await self._call("restore", snapshot)
        if self.fail_restore_times > 0:
            self.fail_restore_times -= 1
            raise DeviceError(self.name, "bridge busy")
        self.state = copy.deepcopy(snapshot)
        return RestoreReport(restored=sorted(snapshot))


class FakeSpeaker(FakeDevice):
    name = "speaker"

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, Any] = {"uri": "x-rincon-queue:1#0", "volume": 25, "playing": True}

    async def snapshot(self) -> SnapshotData:
        await self._call("snapshot")
        return copy.deepcopy(self.state)

    async def start_music(self, source: MusicSource, volume: int, ramp_s: float) -> None:
        await self._call("start_music", (source, volume, ramp_s))
        self.state.update(uri=source.uri or source.favorite, volume=volume)

    async def set_volume(self, volume: int, ramp_s: float) -> None:
        await self._call("set_volume", (volume, ramp_s))
        self.state["volume"] = volume

    async def restore(self, snapshot: SnapshotData, fade_s: float) -> RestoreReport:
        await self._call("restore", (snapshot, fade_s))
        if self.fail_restore_times > 0:
            self.fail_restore_times -= 1
            raise DeviceError(self.name, "speaker busy")
        self.state = copy.deepcopy(snapshot)
        return RestoreReport(restored=["source", "volume"], unrestorable={})


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.phases: list[str] = []
        self.messages: list[tuple[str, str | bytes, bool]] = []

    def publish_state(self, room: str, state: dict[str, Any], phase: str) -> None:
        self.states.append(state)
        self.phases.append(phase)

    def publish_event(self, room: str, event: dict[str, Any]) -> None:
        self.events.append(event)

    def publish(self, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1) -> None:
        self.messages.append((topic, payload, retain))

    def names(self) -> list[str]:
        return [e["event"] for e in self.events]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, SnapshotData] = {}
        self.saves = 0
        self.fail_save = False
        self.fail_delete = False
        self.crash_save: Exception | None = None
        self.problems: dict[str, str] = {}
        self.aside: dict[str, tuple[SnapshotData, str]] = {}

    async def save(self, room: str, data: SnapshotData) -> None:
        if self.crash_save is not None:
            raise self.crash_save
        if self.fail_save:
            raise OSError(30, "Read-only file system")
        self.saves += 1
        self.data[room] = copy.deepcopy(data)

    async def load(self, room: str) -> SnapshotData | None:
        return copy.deepcopy(self.data.get(room))

    async def delete(self, room: str) -> None:
        if self.fail_delete:
            raise OSError(30, "Read-only file system")
        self.data.pop(room, None)

    def problem(self, room: str) -> str | None:
        return self.problems.get(room)

    async def set_aside(self, room: str, why: str) -> str | None:
        data = self.data.pop(room, None)
        if data is None:
            return None
        self.aside[room] = (data, why)
        return f"memory:{room}.corrupt"

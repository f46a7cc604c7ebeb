"""Fakes for the core's ports: a fake clock, recording devices and bus, an in-memory store."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from relaxd.core.ports import DeviceError, LightScene, MusicSource, RestoreReport, SnapshotData


class FakeClock:
    """Time moves only when a test calls advance(); wait() never sleeps."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self.mono = 1000.0
        self.wall0 = datetime(2026, 11, 23, 20, 0, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall0 + timedelta(seconds=self.mono - 1000.0)

    def wait(self, event: threading.Event, timeout_s: float | None) -> bool:
        return event.is_set()

    def advance(self, seconds: float) -> None:
        self.mono += seconds


class FakeDevice:
    """Records calls; `fail` makes every call raise DeviceError (an unreachable device)."""

    name = "device"

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = False
        self.fail_restore_times = 0

    def _call(self, what: str, arg: Any = None) -> None:
        self.calls.append((what, arg))
        if self.fail:
            raise DeviceError(self.name, "unreachable (connection refused)")

    def check(self) -> None:
        self._call("check")

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class FakeLights(FakeDevice):
    name = "lights"

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, Any] = {"1": {"on": True, "bri": 254, "ct": 250}, "2": {"on": False, "bri": 10}}

    def snapshot(self) -> SnapshotData:
        self._call("snapshot")
        return copy.deepcopy(self.state)

    def apply(self, scene: LightScene) -> None:
        self._call("apply", scene)
        for light in self.state.values():
            light.update(on=True, bri=scene.bri_254, ct=scene.ct_mired)

    def restore(self, snapshot: SnapshotData) -> RestoreReport:
        self._call("restore", snapshot)
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

    def snapshot(self) -> SnapshotData:
        self._call("snapshot")
        return copy.deepcopy(self.state)

    def start_music(self, source: MusicSource, volume: int, ramp_s: float) -> None:
        self._call("start_music", (source, volume, ramp_s))
        self.state.update(uri=source.uri or source.favorite, volume=volume)

    def set_volume(self, volume: int, ramp_s: float) -> None:
        self._call("set_volume", (volume, ramp_s))
        self.state["volume"] = volume

    def restore(self, snapshot: SnapshotData, fade_s: float) -> RestoreReport:
        self._call("restore", (snapshot, fade_s))
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

    def publish_state(self, room: str, state: dict[str, Any], phase: str) -> None:
        self.states.append(state)
        self.phases.append(phase)

    def publish_event(self, room: str, event: dict[str, Any]) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e["event"] for e in self.events]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, SnapshotData] = {}
        self.saves = 0
        self.fail_save = False
        self.problems: dict[str, str] = {}

    def save(self, room: str, data: SnapshotData) -> None:
        if self.fail_save:
            raise OSError(30, "Read-only file system")
        self.saves += 1
        self.data[room] = copy.deepcopy(data)

    def load(self, room: str) -> SnapshotData | None:
        return copy.deepcopy(self.data.get(room))

    def delete(self, room: str) -> None:
        self.data.pop(room, None)

    def rooms(self) -> list[str]:
        return sorted(self.data)

    def problem(self, room: str) -> str | None:
        return self.problems.get(room)

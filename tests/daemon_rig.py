"""A whole Daemon on fake devices, a recording bus and a fake clock: messages in, events and replies out."""

from __future__ import annotations

import asyncio
from typing import Any

from relaxd.app.daemon import Daemon, Devices
from relaxd.core.config import Settings
from tests.fakes import FakeClock, RecordingBus, settle


class FakeBus(RecordingBus):
    """The daemon's bus: every publish recorded, per room too; start/stop do nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[tuple[str, str, bool]] = []
        self.by_room: dict[str, list[dict[str, Any]]] = {}
        self.room_states: dict[str, dict[str, Any]] = {}

    def publish_event(self, room: str, event: dict[str, Any]) -> None:
        super().publish_event(room, event)
        self.by_room.setdefault(room, []).append(event)

    def publish_state(self, room: str, state: dict[str, Any], phase: str) -> None:
        super().publish_state(room, state, phase)
        self.room_states[room] = state

    def publish(self, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1) -> None:
        self.raw.append((topic, payload if isinstance(payload, str) else payload.decode(), retain))

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


async def start_daemon(settings: Settings, devices: Devices, clock: FakeClock, bus: FakeBus) -> Daemon:
    daemon = Daemon(settings, clock=clock, devices=devices, bus_factory=lambda _: bus)
    await daemon.start()
    await quiet(daemon)
    return daemon


async def quiet(daemon: Daemon, timeout_s: float = 5.0) -> None:
    """Until every room's work has ended (the state files are written by real pool threads)."""
    for _ in range(100):
        await settle()
        busy = [t for e in daemon.engines.values() for t in e.pending_work()]
        if not busy:
            return
        await asyncio.wait(busy, timeout=timeout_s)
    raise AssertionError("the rooms never came to rest")


async def deliver(daemon: Daemon, topic: str, payload: bytes, retained: bool = False) -> None:
    """A message as paho would hand it over, then everything it causes."""
    assert daemon.router is not None
    daemon.router.receive(topic, payload, retained)
    await quiet(daemon)

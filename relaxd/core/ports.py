"""Port interfaces between the core and the device, bus, clock and storage adapters (all async)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol

# JSON-able data as the adapters capture it; persisted in the room snapshot file.
SnapshotData = dict[str, Any]


class DeviceError(Exception):
    """One error type for every device failure (library exception, bridge error, timeout)."""

    def __init__(self, device: str, message: str, *, code: int | None = None) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device
        self.message = message
        self.code = code  # Hue error type, UPnP errorCode or HTTP status where known


class SnapshotUnusable(DeviceError):
    """A device's part of a snapshot cannot be used (damaged, or values out of range): no retry can
    help, so the room says so and gives up on that device instead of trying for ever."""


@dataclass(frozen=True)
class LightScene:
    """What a phase asks of a room's lights; the adapter fits it to each light's capabilities."""

    bri_254: int
    ct_mired: int | None = None
    xy: tuple[float, float] | None = None
    transition_s: float = 0.4


@dataclass(frozen=True)
class MusicSource:
    """The room's music: exactly one of a Sonos favorite title, a URI, a Sonos playlist title."""

    favorite: str | None = None
    uri: str | None = None
    playlist: str | None = None


@dataclass
class RestoreReport:
    """What a device restore did. Errors that should make restore be retried raise DeviceError instead."""

    restored: list[str] = field(default_factory=list)
    # Left as the user set them during the session (do not fight the user).
    left_alone: list[str] = field(default_factory=list)
    # Could not be brought back by anyone (e.g. a Spotify Connect cloud queue); with a reason each.
    unrestorable: dict[str, str] = field(default_factory=dict)


class EdgeCost(NamedTuple):
    """What one breath edge costs a room's lights under one rate limit: `commands` counted against at
    most `limit` commands in any `window_s` (real seconds), shared by every room with the same `key`
    (a bridge and a kind of command)."""

    key: str
    commands: int
    limit: int
    window_s: float


class Lights(Protocol):
    """A room's lights. Every method raises DeviceError on any failure and may be cancelled at any await:
    a cancelled call sends nothing more, and nothing it sent can reach the bridge after a later call."""

    async def snapshot(self) -> SnapshotData:
        """Capture every light of the room, per light, as JSON-able data (group membership read now)."""
        ...

    async def apply(self, scene: LightScene) -> None:
        """Set the room's lights to scene, leaving alone lights the user changed during the session."""
        ...

    async def restore(self, snapshot: SnapshotData) -> RestoreReport:
        """Bring every light back to snapshot (a value snapshot() returned, maybe in another process)."""
        ...

    async def check(self) -> None:
        """Cheap reachability probe; raises DeviceError when the lights cannot be reached."""
        ...

    def edge_cost(self) -> list[tuple[str, int, int, float]]:
        """What one apply() of a breath edge costs (commands, not reads), as EdgeCost
        tuples, one per rate limit it counts against; no I/O, known once snapshot() has run."""
        ...


class Speaker(Protocol):
    """A room's speaker. Every method raises DeviceError and may be cancelled at any await (as Lights)."""

    async def snapshot(self) -> SnapshotData:
        """Capture source, queue and position, volume, mute and play state as JSON-able data."""
        ...

    async def start_music(self, source: MusicSource, volume: int, ramp_s: float) -> None:
        """Play source, bringing the volume up to volume over ramp_s (never a jump up); returns when the
        ramp is done."""
        ...

    async def set_volume(self, volume: int, ramp_s: float) -> None:
        """Ramp to volume, unless the user changed the volume by hand during the session; returns when done."""
        ...

    async def restore(self, snapshot: SnapshotData, fade_s: float) -> RestoreReport:
        """Bring the speaker back to snapshot, fading the volume in over fade_s; returns when done."""
        ...

    async def check(self) -> None:
        """Cheap reachability probe; raises DeviceError when the speaker cannot be reached."""
        ...


class EventBus(Protocol):
    """Where a room's state and events go (MQTT in production). Never blocks, never raises."""

    def publish_state(self, room: str, state: dict[str, Any], phase: str) -> None:
        """Publish the retained room state (JSON object) and the retained plain phase name."""
        ...

    def publish_event(self, room: str, event: dict[str, Any]) -> None:
        """Publish one non-retained event (JSON object)."""
        ...

    def publish(self, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1) -> None:
        """Any other message (responses, discovery)."""
        ...


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time for the core, on the event loop. speed > 1 runs routines faster (demo, benchmarks)."""

    speed: float

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (scaled by speed)."""
        ...

    def now(self) -> datetime:
        """The current time, timezone-aware UTC (scaled by speed from the clock's start)."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        """Run callback on the event loop after delay_s clock seconds; cancellable."""
        ...

    async def sleep(self, delay_s: float) -> None:
        """Wait delay_s clock seconds (cancellable)."""
        ...


class SnapshotStore(Protocol):
    """Persistent room snapshots: written atomically before the first change, removed after restore."""

    async def save(self, room: str, data: SnapshotData) -> None:
        """Write atomically and durably (fsync); raises OSError when that is impossible."""
        ...

    async def load(self, room: str) -> SnapshotData | None:
        """The room's snapshot, or None when there is none (or it is unreadable: see problem())."""
        ...

    async def delete(self, room: str) -> None:
        """Remove the room's snapshot (after a successful restore); raises OSError."""
        ...

    def problem(self, room: str) -> str | None:
        """Why the last load() of room found a snapshot it could not use (None: there was none)."""
        ...

    async def set_aside(self, room: str, why: str) -> str | None:
        """Keep the room's snapshot file for a person to look at (moved to a .corrupt file), and say
        where; None when there was no file."""
        ...


class SeqStore(Protocol):
    """Where each room's event numbers are kept, so that `seq` keeps increasing across restarts, and
    the routine chosen for its next start, so that the choice survives a restart."""

    async def load(self, room: str) -> int | None:
        """The highest seq the room may have used (0 when the room never had one), or None when
        the record exists but cannot be read; raises OSError when the state dir cannot be read."""
        ...

    async def save(self, room: str, seq: int) -> None:
        """Write atomically and durably; raises OSError."""
        ...

    async def load_choice(self, room: str) -> str | None:
        """The routine chosen for the room's next start, or None; raises OSError."""
        ...

    async def save_choice(self, room: str, routine: str) -> None:
        """Write atomically and durably; raises OSError."""
        ...


DeviceKind = Literal["lights", "speaker"]

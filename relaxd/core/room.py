"""One room's devices: snapshot, phase scenes as cancellable work, restore; crash-safe, per device."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from relaxd.core.ports import (
    DeviceError,
    Lights,
    MusicSource,
    RestoreReport,
    SnapshotStore,
    SnapshotUnusable,
    Speaker,
)
from relaxd.core.routines import Phase

log = logging.getLogger(__name__)
_FILE = "snapshot file"  # the scene work's key for a write of the snapshot file (not a device)
T = TypeVar("T")
# emit(event_name, fields) -> None: how the room reports device events to its engine (on the loop).
Emit = Callable[[str, dict[str, Any]], None]
Work = Callable[[], Awaitable[None]]  # one call on a device, e.g. a breath edge


class SnapshotNotSaved(Exception):
    """The room's snapshot could not be written, so nothing in the room was changed."""


@dataclass
class RestoreOutcome:
    """The result of one restore attempt of the whole room."""

    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # Devices whose part of the snapshot cannot be used: given up (not retried), the file set aside.
    unusable: dict[str, str] = field(default_factory=dict)
    set_aside: str | None = None


class Room:
    """Holds the room's devices, which of them are online, what runs on them, and what must be restored."""

    def __init__(
        self,
        room_id: str,
        store: SnapshotStore,
        *,
        lights: Lights | None = None,
        speaker: Speaker | None = None,
        music: MusicSource | None = None,
        max_volume: int = 100,
        restore_fade_s: float = 5.0,
        speed: float = 1.0,
    ) -> None:
        self.room_id = room_id
        self.store = store
        self.on_event: Emit = lambda name, fields: None  # set by the engine
        self.lights = lights
        self.speaker = speaker
        self.device_names = [n for n, d in (("lights", lights), ("speaker", speaker)) if d is not None]
        self.music = music
        self.max_volume = max_volume
        self.restore_fade_s = restore_fade_s
        self.speed = speed
        self.online: dict[str, bool] = dict.fromkeys(self.device_names, True)
        self.meta: dict[str, Any] = {}
        self._pending: dict[str, Any] = {}  # device -> snapshot data still to restore
        self._phase: Phase | None = None
        self._music_started = False
        self._needs_apply: set[str] = set()
        self._work: dict[str, asyncio.Task[None]] = {}
        self._edges: set[str] = set()  # devices whose current work is a breath edge, not the phase's scene
        self.leftover_problem: str | None = None  # a leftover snapshot that could not be used

    @property
    def session_id(self) -> str | None:
        value = self.meta.get("session_id")
        return value if isinstance(value, str) else None

    @property
    def has_pending_restore(self) -> bool:
        return bool(self._pending)

    @property
    def needs_retry(self) -> bool:
        return any(not up for up in self.online.values()) or bool(self._needs_apply)

    # --- device calls -------------------------------------------------------------------------

    async def _guarded(self, name: str, call: Callable[[], Awaitable[T]]) -> T | DeviceError:
        try:
            return await call()
        except DeviceError as exc:
            return exc
        except Exception as exc:  # an adapter bug must not take the room down
            log.exception("room %s: unexpected error from %s", self.room_id, name)
            return DeviceError(name, f"unexpected {exc.__class__.__name__}: {exc}")

    async def _each(self, names: list[str], call: Callable[[str], Awaitable[T]]) -> dict[str, T | DeviceError]:
        """call(name) for every device at once; DeviceErrors are returned, not raised."""
        results = await asyncio.gather(*(self._guarded(n, lambda n=n: call(n)) for n in names))  # type: ignore[misc]
        return dict(zip(names, results, strict=True))

    def _mark(self, name: str, error: DeviceError | None) -> None:
        if error is None:
            if not self.online[name]:
                self.online[name] = True
                log.info("room %s: %s is back", self.room_id, name)
                self.on_event("device_available", {"device": name})
            return
        log.warning("room %s: %s", self.room_id, error)
        if self.online[name]:
            self.online[name] = False
            self.on_event("device_unavailable", {"device": name, "reason": error.message})

    def _device(self, name: str) -> Lights | Speaker:
        device = self.lights if name == "lights" else self.speaker
        assert device is not None
        return device

    # --- session ------------------------------------------------------------------------------

    async def begin(self, meta: dict[str, Any]) -> None:
        """Snapshot every reachable device and persist it before any change (SnapshotNotSaved)."""
        results = await self._each(self.device_names, lambda n: self._device(n).snapshot())
        pending: dict[str, Any] = {}
        for name, result in results.items():
            if isinstance(result, DeviceError):
                self._mark(name, result)  # without a snapshot this device stays untouched
            else:
                self._mark(name, None)
                pending[name] = result
        self.meta = dict(meta)
        self._pending = pending
        try:
            await self.store.save(self.room_id, self._record())
        except OSError as exc:
            self._pending = {}
            raise SnapshotNotSaved(f"cannot save the room's snapshot in the state directory: {exc}") from exc
        except asyncio.CancelledError:
            await asyncio.shield(self.discard())  # nothing changed: no snapshot may outlive this start
            raise
        self._phase = None
        self._music_started = False
        self._needs_apply = set()

    def _record(self) -> dict[str, Any]:
        return {**self.meta, "devices": self._pending}

    def apply(self, phase: Phase, index: int) -> None:
        """Start the phase's scene on every snapshotted device, replacing what still runs there; the
        snapshot file learns the phase, so that a crash can be reported with it."""
        self._phase = phase
        self._needs_apply = set(self._pending)
        self._start_work(sorted(n for n in self._needs_apply if self.online[n]))
        if (self.meta.get("phase"), self.meta.get("phase_index")) == (phase.name, index):
            return  # the file says so already (the first phase is in it from the start)
        self.meta.update(phase=phase.name, phase_index=index)
        previous = self._work.get(_FILE)
        self._work[_FILE] = asyncio.create_task(self._note_phase(previous), name=f"{self.room_id} snapshot file")

    async def _note_phase(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)  # one write at a time, the latest last
        try:
            await self.store.save(self.room_id, self._record())
        except OSError as exc:  # the file still holds the snapshot itself: only the phase is older
            log.warning("room %s: cannot note the phase in the snapshot file: %s", self.room_id, exc)
        except Exception:  # a bug in the store: said, and the session goes on
            log.exception("room %s: noting the phase in the snapshot file failed", self.room_id)

    def _start_work(self, names: list[str]) -> None:
        for name in names:
            self._edges.discard(name)
            previous = self._work.get(name)
            if previous is not None:
                previous.cancel()
            self._work[name] = asyncio.create_task(self._work_on(name, previous), name=f"{self.room_id} {name}")

    async def _work_on(self, name: str, previous: asyncio.Task[None] | None, edge: Work | None = None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)  # cancelled: ends at its next await
        phase = self._phase
        if phase is None:
            return
        result = await self._guarded(name, edge or (lambda: self._apply_one(name, phase)))
        error = result if isinstance(result, DeviceError) else None
        self._mark(name, error)
        if error is None and edge is None:
            self._needs_apply.discard(name)

    async def _apply_one(self, name: str, phase: Phase) -> None:
        if name == "lights" and phase.lights is not None and phase.breathing is None and self.lights is not None:
            await self.lights.apply(phase.lights.scene(self.speed))
        elif name == "speaker" and phase.music is not None and self.speaker is not None:
            volume = min(phase.music.volume, self.max_volume)
            ramp_s = phase.music.ramp / self.speed
            if self.music is not None and not self._music_started:
                self._music_started = True  # a failed start is not retried as a second source switch
                await self.speaker.start_music(self.music, volume, ramp_s)
            else:
                await self.speaker.set_volume(volume, ramp_s)

    def takes_part(self, name: str) -> bool:
        """Whether the device is in the session (snapshotted) and online."""
        return name in self._pending and self.online[name]

    def breath_edge(self, name: str, call: Work, *, is_scene: bool = False) -> bool:
        """One breath edge on a device in place of its last one (a late edge is worth nothing once the
        next is due); is_scene: the edge is the breathing phase's scene there (the lights). False, nothing
        sent, while the device is away, or (not is_scene) still busy with the phase's own work."""
        current = self._work.get(name)
        busy = current is not None and not current.done() and name not in self._edges
        if not self.takes_part(name) or (busy and not is_scene):
            return False
        if current is not None:
            current.cancel()
        if is_scene:
            self._needs_apply.discard(name)
        self._edges.add(name)
        self._work[name] = asyncio.create_task(self._work_on(name, current, call), name=f"{self.room_id} {name} breath")
        return True

    async def stop_work(self) -> None:
        """Cancel the scene work; returns once none of it can send anything more."""
        tasks = list(self._work.values())
        self._work.clear()
        self._edges.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._phase = None
        self._needs_apply = set()

    async def retry(self) -> None:
        """Probe offline devices; re-apply the current scene on those that came back."""
        offline = [n for n, up in self.online.items() if not up]
        for name, result in (await self._each(offline, lambda n: self._device(n).check())).items():
            if not isinstance(result, DeviceError):
                self._mark(name, None)
                if name in self._pending and self._phase is not None:
                    self._needs_apply.add(name)
        if self._needs_apply and self._phase is not None:
            self._start_work(sorted(n for n in self._needs_apply if self.online[n] and n not in self._running()))

    def work_tasks(self) -> list[asyncio.Task[None]]:
        return list(self._work.values())

    def _running(self) -> set[str]:
        return {n for n, t in self._work.items() if not t.done() and n != _FILE}

    async def check(self) -> None:
        """Probe every device (health check), so `online` and its events stay true."""
        for name, result in (await self._each(self.device_names, lambda n: self._device(n).check())).items():
            self._mark(name, result if isinstance(result, DeviceError) else None)

    # --- restore ------------------------------------------------------------------------------

    async def load_leftover(self) -> bool:
        """Take a snapshot left by a daemon that died mid-session; True when there is one."""
        record = await self.store.load(self.room_id)
        self.leftover_problem = self.store.problem(self.room_id) if record is None else None
        if record is None:
            return False
        devices = record.get("devices")
        self.meta = {k: v for k, v in record.items() if k != "devices"}
        devices = devices if isinstance(devices, dict) else {}
        self._pending = {k: v for k, v in devices.items() if k in self.device_names}
        if not self._pending:
            await self.discard()
        return bool(self._pending)

    async def discard(self) -> None:
        """Forget the snapshot of a start that changed nothing."""
        self._pending = {}
        with contextlib.suppress(OSError):
            await self.store.delete(self.room_id)
        self.meta = {}

    async def restore(self) -> RestoreOutcome:
        """Stop the scene work, then restore every device still pending; errors collected per device."""
        await self.stop_work()
        results = await self._each(sorted(self._pending), self._restore_one)
        outcome = RestoreOutcome(ok=True)
        for name, result in results.items():
            if isinstance(result, SnapshotUnusable):
                # Trying again would send the same damaged values: give this device up, say so.
                outcome.unusable[name] = result.message
                del self._pending[name]
            elif isinstance(result, DeviceError):
                outcome.ok = False
                outcome.errors[name] = result.message
                self._mark(name, result)
            else:
                self._mark(name, None)
                outcome.details[name] = {
                    "restored": result.restored,
                    "left_alone": result.left_alone,
                    "unrestorable": result.unrestorable,
                }
                del self._pending[name]
        if outcome.unusable:
            why = "; ".join(f"{n}: {m}" for n, m in sorted(outcome.unusable.items()))
            with contextlib.suppress(OSError):
                outcome.set_aside = await self.store.set_aside(self.room_id, f"unusable ({why})")
        await self._settle_file()
        return outcome

    async def _restore_one(self, name: str) -> RestoreReport:
        data = self._pending[name]
        if name == "speaker" and self.speaker is not None:
            return await self.speaker.restore(data, self.restore_fade_s / self.speed)
        assert self.lights is not None
        return await self.lights.restore(data)

    async def _settle_file(self) -> None:
        if self._pending:
            try:
                await self.store.save(self.room_id, self._record())
            except OSError as exc:  # the old file still lists these devices: nothing is lost
                log.error("room %s: cannot update the snapshot file: %s", self.room_id, exc)
            return
        try:
            await self.store.delete(self.room_id)
        except OSError as exc:
            # The room is restored all the same; only the file could not go.
            log.error(
                "room %s: restored, but cannot remove the snapshot file (%s); remove it by hand, "
                "or the next start of relaxd restores this snapshot again",
                self.room_id,
                exc,
            )
        self.meta = {}

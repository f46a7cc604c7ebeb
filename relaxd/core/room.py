"""One room's devices: snapshot, apply phase scenes, restore; crash-safe and per-device tolerant."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from relaxd.core.ports import DeviceError, Lights, MusicSource, RestoreReport, SnapshotStore, Speaker
from relaxd.core.routines import Phase

log = logging.getLogger(__name__)
T = TypeVar("T")
# emit(event_name, fields) -> None: how the room reports device events to its session engine.
Emit = Callable[[str, dict[str, Any]], None]


class SnapshotNotSaved(Exception):
    """The room's snapshot could not be written, so nothing in the room was changed."""


@dataclass
class RestoreOutcome:
    """The result of one restore attempt of the whole room."""

    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class Room:
    """Holds the room's devices, which of them are online, and what must be restored."""

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
        self.on_event: Emit = lambda name, fields: None  # set by the session engine
        self._devices: dict[str, Lights | Speaker] = {}
        if lights is not None:
            self._devices["lights"] = lights
        if speaker is not None:
            self._devices["speaker"] = speaker
        self.music = music
        self.max_volume = max_volume
        self.restore_fade_s = restore_fade_s
        self.speed = speed
        self.online: dict[str, bool] = dict.fromkeys(self._devices, True)
        self._meta: dict[str, Any] = {}
        self._pending: dict[str, Any] = {}  # device -> snapshot data still to restore
        self._phase: Phase | None = None
        self._music_started = False
        self._needs_apply: set[str] = set()
        self.leftover_problem: str | None = None  # a leftover snapshot that could not be used

    @property
    def device_names(self) -> list[str]:
        return list(self._devices)

    @property
    def session_id(self) -> str | None:
        value = self._meta.get("session_id")
        return value if isinstance(value, str) else None

    @property
    def has_pending_restore(self) -> bool:
        return bool(self._pending)

    # --- device calls -------------------------------------------------------------------------

    def _each(self, names: list[str], call: Callable[[str], T]) -> dict[str, T | DeviceError]:
        """Run call for each device concurrently; DeviceErrors are returned, not raised."""

        def guarded(name: str) -> T | DeviceError:
            try:
                return call(name)
            except DeviceError as exc:
                return exc
            except Exception as exc:  # an adapter bug must not take the room down
                log.exception("room %s: unexpected error from %s", self.room_id, name)
                return DeviceError(name, f"unexpected {exc.__class__.__name__}: {exc}")

        if len(names) <= 1:
            return {name: guarded(name) for name in names}
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix=f"room-{self.room_id}") as pool:
            futures = {name: pool.submit(guarded, name) for name in names}
            return {name: fut.result() for name, fut in futures.items()}

    def _mark(self, name: str, error: DeviceError | None) -> None:
        if error is None:
            if not self.online[name]:
                self.online[name] = True
                self.on_event("device_available", {"device": name})
            return
        log.warning("room %s: %s", self.room_id, error)
        if self.online[name]:
            self.online[name] = False
            self.on_event("device_unavailable", {"device": name, "reason": error.message})

    # --- session ------------------------------------------------------------------------------

    def begin(self, meta: dict[str, Any]) -> None:
        """Snapshot every reachable device and persist it before any change (SnapshotNotSaved)."""
        results = self._each(self.device_names, lambda n: self._devices[n].snapshot())
        pending: dict[str, Any] = {}
        for name, result in results.items():
            if isinstance(result, DeviceError):
                self._mark(name, result)  # without a snapshot this device stays untouched
            else:
                self._mark(name, None)
                pending[name] = result
        self._meta = dict(meta)
        self._pending = pending
        try:
            self.store.save(self.room_id, self._record())
        except OSError as exc:
            self._pending = {}
            raise SnapshotNotSaved(f"cannot save the room's snapshot in the state directory: {exc}") from exc
        self._phase = None
        self._music_started = False
        self._needs_apply = set()

    def _record(self) -> dict[str, Any]:
        return {**self._meta, "devices": self._pending}

    def apply(self, phase: Phase) -> None:
        """Set the phase's scene on every snapshotted device; failures mark the device offline."""
        self._phase = phase
        self._needs_apply = set(self._pending)
        self._apply_pending()

    def _apply_pending(self) -> None:
        names = sorted(n for n in self._needs_apply if self.online[n])
        results = self._each(names, self._apply_one)
        for name, result in results.items():
            error = result if isinstance(result, DeviceError) else None
            self._mark(name, error)
            if error is None:
                self._needs_apply.discard(name)

    def _apply_one(self, name: str) -> None:
        phase = self._phase
        if phase is None:
            return
        if name == "lights" and phase.lights is not None:
            lights: Lights = self._devices[name]  # type: ignore[assignment]
            lights.apply(phase.lights.scene(self.speed))
        elif name == "speaker":
            speaker: Speaker = self._devices[name]  # type: ignore[assignment]
            if phase.music is not None:
                volume = min(phase.music.volume, self.max_volume)
                ramp_s = phase.music.ramp / self.speed
                if self.music is not None and not self._music_started:
                    speaker.start_music(self.music, volume, ramp_s)
                    self._music_started = True
                else:
                    speaker.set_volume(volume, ramp_s)

    def retry(self) -> None:
        """Probe offline devices; re-apply the current scene on those that came back."""
        offline = [n for n, up in self.online.items() if not up]
        for name, result in self._each(offline, lambda n: self._devices[n].check()).items():
            if not isinstance(result, DeviceError):
                self._mark(name, None)
                if name in self._pending and self._phase is not None:
                    self._needs_apply.add(name)
        if self._needs_apply:
            self._apply_pending()

    @property
    def needs_retry(self) -> bool:
        return any(not up for up in self.online.values()) or bool(self._needs_apply)

    def end_session(self) -> None:
        self._phase = None
        self._needs_apply = set()

    # --- restore ------------------------------------------------------------------------------

    def load_leftover(self) -> bool:
        """Take a snapshot left by a daemon that died mid-session; True when there is one."""
        record = self.store.load(self.room_id)
        self.leftover_problem = self.store.problem(self.room_id) if record is None else None
        if record is None:
            return False
        devices = record.get("devices")
        self._meta = {k: v for k, v in record.items() if k != "devices"}
        devices = devices if isinstance(devices, dict) else {}
        self._pending = {k: v for k, v in devices.items() if k in self._devices}
        if not self._pending:
            self.store.delete(self.room_id)
        return bool(self._pending)

    def restore(self) -> RestoreOutcome:
        """Restore every device still pending; each device independently, errors collected."""
        self.end_session()
        results = self._each(sorted(self._pending), self._restore_one)
        outcome = RestoreOutcome(ok=True)
        for name, result in results.items():
            if isinstance(result, DeviceError):
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
        if self._pending:
            try:
                self.store.save(self.room_id, self._record())
            except OSError as exc:  # the old file still lists these devices: nothing is lost
                log.error("room %s: cannot update the snapshot file: %s", self.room_id, exc)
        else:
            try:
                self.store.delete(self.room_id)
            except OSError as exc:
                # The room is restored all the same; only the file could not go. Raising here
                # would end the room's thread with the restore done but never reported.
                log.error(
                    "room %s: restored, but cannot remove the snapshot file (%s); remove it by hand, "
                    "or the next start of relaxd restores this snapshot again",
                    self.room_id,
                    exc,
                )
            self._meta = {}
        return outcome

    def _restore_one(self, name: str) -> RestoreReport:
        device = self._devices[name]
        data = self._pending[name]
        if name == "speaker":
            return device.restore(data, self.restore_fade_s / self.speed)  # type: ignore[call-arg]
        return device.restore(data)  # type: ignore[call-arg]

    def probe(self) -> None:
        """Check every device once (start-up) so the state shows what is reachable."""
        for name, result in self._each(self.device_names, lambda n: self._devices[n].check()).items():
            self._mark(name, result if isinstance(result, DeviceError) else None)

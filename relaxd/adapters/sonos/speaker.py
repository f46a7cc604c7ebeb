"""Sonos speaker adapter on soco: snapshot, calm music with ramped volume, restore, not fighting the user."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import soco
import soco.discovery

from relaxd.adapters.sonos import snapshot as sonos_snapshot
from relaxd.adapters.sonos.calls import DEVICE, DeadlineCaller
from relaxd.adapters.sonos.music import prepare_source
from relaxd.core.ports import DeviceError, MusicSource, RestoreReport, SnapshotData

log = logging.getLogger(__name__)

MIN_STEP_S = 0.1  # a ramp sends at most ten volume steps a second
FAVORITES_TTL_S = 60.0
# Restoring cannot succeed on a retry after these: the saved source itself cannot be started.
UNRESTORABLE_CODES = {
    402: "a cloud queue (Spotify Connect, Alexa) that only its app can restart",
    714: "the speaker no longer accepts the saved source URI",
}


def ramp_steps(start: int, target: int, ramp_s: float) -> list[tuple[float, int]]:
    """(seconds after the start, volume) for a linear ramp; empty when there is nothing to do."""
    delta = target - start
    if delta == 0:
        return []
    count = min(abs(delta), max(1, int(ramp_s / MIN_STEP_S + 1e-9)))  # 0.3/0.1 is 2.999…
    return [(ramp_s * k / count, round(start + delta * k / count)) for k in range(1, count + 1)]


class SonosSpeaker:
    """A room's Sonos speaker, driven through its group coordinator (relaxd.core.ports.Speaker).

    set_volume and start_music return at once; their ramp runs in a background thread that the
    next call to the adapter cancels. restore blocks until its fade is done.
    """

    def __init__(
        self,
        host: str | None = None,
        name: str | None = None,
        max_volume: int = 100,
        timeout_s: float = 5.0,
        *,
        find_by_name: Callable[[str], Any] | None = None,
    ) -> None:
        if not host and not name:
            raise ValueError("a Sonos speaker needs a host or a room name")
        self.host = host
        self.name = name
        self.max_volume = max(0, min(100, max_volume))
        self.timeout_s = timeout_s
        # Multicast discovery, only for a speaker configured by room name; replaceable for tests.
        self._find_by_name = find_by_name or soco.discovery.by_name
        self._call = DeadlineCaller(timeout_s, self._where())
        self._soco: Any = None
        self._lock = threading.RLock()  # session memory, shared with the ramp thread
        self._op_lock = threading.RLock()  # one operation at a time
        self._ramp_stop: threading.Event | None = None
        self._ramp_thread: threading.Thread | None = None
        self._favorites_cache: tuple[float, list[Any]] | None = None
        self._reset_session()

    def _reset_session(self) -> None:
        with self._lock:
            self._last_volume: int | None = None  # what relaxd last set
            self._our_uri: str | None = None  # the source relaxd started
            self._hand_volume = False
            self._hand_source = False
            self._restore_plan: tuple[bool, bool] | None = None
            self._muted_at_snapshot: bool | None = None  # None: unknown, so unmute to be sure

    def _favorites(self, device: Any) -> list[Any]:
        """The Sonos favorites, read at most once a minute: a session start should not wait for
        a browse that almost never changes (a favorite added in the app shows up a minute later)."""
        now_s = time.monotonic()
        with self._lock:
            cached = self._favorites_cache
        if cached is not None and now_s - cached[0] < FAVORITES_TTL_S:
            return cached[1]
        favorites: list[Any] = self._call(
            "list the Sonos favorites",
            lambda: list(device.music_library.get_sonos_favorites(complete_result=True)),
            requests_n=2,
        )
        with self._lock:
            self._favorites_cache = (now_s, favorites)
        return favorites

    def _where(self) -> str:
        return self.host or repr(self.name)

    def _speaker(self) -> Any:
        """The configured speaker (a soco.SoCo), found on first use."""
        if self._soco is not None:
            return self._soco
        if self.host:
            address, _, port = self.host.rpartition(":") if ":" in self.host else (self.host, "", "")
            device = self._call("resolve the host", lambda: soco.SoCo(socket.gethostbyname(address), int(port or 1400)))
        else:
            # discovery (multicast) only ever happens for a speaker configured by room name
            name = self.name or ""
            device = self._call(f"discover {name!r}", lambda: self._find_by_name(name), budget_s=self.timeout_s + 5)
            if device is None:
                raise DeviceError(DEVICE, f"no Sonos speaker named {self.name!r} was found")
        self._soco = device
        return device

    def _coordinator(self) -> Any:
        device = self._speaker()

        def find() -> Any:
            if device.is_coordinator:
                return device
            group = device.group
            if group is None or group.coordinator is None:
                raise DeviceError(DEVICE, f"{self._where()} has no group coordinator")
            return group.coordinator

        return self._call("find the group coordinator", find, requests_n=4)

    # --- ramps -----------------------------------------------------------------------------
    def _cancel_ramp(self) -> None:
        stop, thread = self._ramp_stop, self._ramp_thread
        self._ramp_stop = self._ramp_thread = None
        if stop is not None:
            stop.set()
        if thread is not None:
            thread.join(self.timeout_s * 2 + 1)

    def _start_ramp(self, device: Any, start: int, target: int, ramp_s: float) -> None:
        if start == target:
            return
        stop = threading.Event()

        def ramp() -> None:
            try:
                self._run_ramp(device, start, target, ramp_s, stop)
            except DeviceError as exc:
                # the next call to the adapter meets the failure again and raises it
                log.warning("speaker %s: volume ramp stopped: %s", self._where(), exc.message)

        thread = threading.Thread(target=ramp, name=f"sonos ramp {self._where()}", daemon=True)
        self._ramp_stop, self._ramp_thread = stop, thread
        thread.start()

    def _run_ramp(self, device: Any, start: int, target: int, ramp_s: float, stop: threading.Event) -> bool:
        """Step the volume; False when cancelled or the user took the volume over."""
        began = time.monotonic()
        for offset_s, volume in ramp_steps(start, target, ramp_s):
            if stop.wait(max(0.0, began + offset_s - time.monotonic())):
                return False
            if not self._step(device, volume):
                return False
        return True

    def _step(self, device: Any, volume: int) -> bool:
        current = self._call("read the volume", lambda: device.volume)
        with self._lock:
            if self._last_volume is not None and current != self._last_volume:
                self._note_hand_volume(current)
                return False
        self._set(device, volume)
        return True

    def _set(self, device: Any, volume: int) -> None:
        self._call("set the volume", lambda: setattr(device, "volume", volume))
        with self._lock:
            self._last_volume = volume

    def _note_hand_volume(self, current: int) -> None:
        if not self._hand_volume:
            log.info(
                "speaker %s: volume changed by hand to %s (relaxd set %s); leaving it alone",
                self._where(),
                current,
                self._last_volume,
            )
        self._hand_volume = True

    def _capped(self, volume: int) -> int:
        return max(0, min(volume, self.max_volume))

    # --- the Speaker port ------------------------------------------------------------------
    def check(self) -> None:
        device = self._speaker()
        self._call("check", lambda: device.volume)

    def close(self) -> None:
        """Stop a running ramp (at shutdown)."""
        with self._op_lock:
            self._cancel_ramp()

    def snapshot(self) -> SnapshotData:
        with self._op_lock:
            self._cancel_ramp()
            self._reset_session()
            device = self._coordinator()
            snap = sonos_snapshot.RelaxdSnapshot(device, snapshot_queue=True)
            # about a dozen requests plus one per 400 queue items
            self._call("take a snapshot", snap.snapshot, requests_n=16)
            with self._lock:
                self._muted_at_snapshot = bool(snap.mute)
            return sonos_snapshot.to_data(snap, self._call("read the uid", lambda: device.uid))

    def start_music(self, source: MusicSource, volume: int, ramp_s: float) -> None:
        chosen = [v for v in (source.favorite, source.uri, source.playlist) if v]
        if len(chosen) != 1:
            raise DeviceError(DEVICE, f"music needs exactly one of favorite, uri, playlist: {source}")
        with self._op_lock:
            self._cancel_ramp()
            if self._hand_source:
                log.info("speaker %s: the user chose other music; not starting ours", self._where())
                return
            device = self._coordinator()
            try:
                play = prepare_source(self._call, device, source, self._favorites)
            except DeviceError:
                with self._lock:
                    self._favorites_cache = None  # a broken or outdated list is read again next time
                raise
            target = self._capped(volume)
            start = 0 if ramp_s > 0 else target
            if not self._hand_volume:
                # silence first, so that switching source never blares at the previous volume
                self._set(device, start)
                if self._muted_at_snapshot is not False:
                    self._call("unmute", lambda: setattr(device, "mute", False))
            play()
            uri = self._call("read the source", lambda: device.get_current_media_info()["uri"])
            with self._lock:
                self._our_uri = uri
            if not self._hand_volume:
                self._start_ramp(device, start, target, ramp_s)

    def set_volume(self, volume: int, ramp_s: float) -> None:
        with self._op_lock:
            self._cancel_ramp()
            device = self._coordinator()
            if self._hand_changed(device):
                return
            current = self._call("read the volume", lambda: device.volume)
            target = self._capped(volume)
            if ramp_s <= 0:
                if current != target:
                    self._set(device, target)
                return
            with self._lock:
                self._last_volume = current
            self._start_ramp(device, current, target, ramp_s)

    def _hand_changed(self, device: Any) -> bool:
        """True once the user changed volume or source during the session (it then stays True)."""
        with self._lock:
            if self._hand_volume or self._hand_source:
                return True
            last_volume, our_uri = self._last_volume, self._our_uri
        current = self._call("read the volume", lambda: device.volume)
        uri = self._call("read the source", lambda: device.get_current_media_info()["uri"])
        with self._lock:
            if our_uri is not None and uri != our_uri:
                log.info("speaker %s: source changed by hand to %s; leaving it alone", self._where(), uri)
                self._hand_source = True
            if last_volume is not None and current != last_volume:
                self._note_hand_volume(current)
            return self._hand_volume or self._hand_source

    def restore(self, snapshot: SnapshotData, fade_s: float) -> RestoreReport:
        with self._op_lock:
            self._cancel_ramp()
            device = self._coordinator()
            if self._restore_plan is None:
                # decided once, so that a retry after a partial restore is not mistaken for a hand
                self._hand_changed(device)
                self._restore_plan = (self._hand_source, self._hand_volume)
            hand_source, hand_volume = self._restore_plan
            report = RestoreReport()
            if hand_source:
                report.left_alone += ["source", "volume"]
                self._reset_session()
                return report
            try:
                snap = sonos_snapshot.from_data(device, snapshot)
            except (ValueError, TypeError, KeyError) as exc:
                raise DeviceError(DEVICE, f"unusable snapshot: {exc}") from exc
            snap.restore_volume = not hand_volume
            if snap.is_playing_cloud_queue:
                report.unrestorable["source"] = UNRESTORABLE_CODES[402]
                # Snapshot would press Play on what is loaded: relaxd's music, not the cloud queue
                snap.transport_state = None
            fade = fade_s > 0 and snap.transport_state == "PLAYING" and not hand_volume
            self._restore_snapshot(snap, fade, report)
            if hand_volume:
                report.left_alone += ["volume", "mute"]
            elif "source" in report.unrestorable and fade:
                self._set(device, int(snap.volume))  # Play never came: nothing to fade in
            elif fade:
                with self._lock:
                    self._last_volume = 0
                if not self._run_ramp(device, 0, int(snap.volume), fade_s, threading.Event()):
                    report.left_alone.append("volume")
            if not hand_volume:
                report.restored += [n for n in ("volume", "mute", "eq") if n not in report.left_alone]
            self._reset_session()
            return report

    def _restore_snapshot(self, snap: sonos_snapshot.RelaxdSnapshot, fade: bool, report: RestoreReport) -> None:
        """soco's Snapshot.restore; a source nobody can restart is reported, not retried."""
        requests_n = 16 + sum(len(batch) for batch in snap.queue or [])
        try:
            self._call("restore", lambda: snap.restore(fade=fade), requests_n=requests_n)
        except DeviceError as exc:
            if exc.code not in UNRESTORABLE_CODES:
                raise
            log.warning("speaker %s: cannot restart %s: %s", self._where(), snap.media_uri, exc.message)
            report.unrestorable["source"] = f"{UNRESTORABLE_CODES[exc.code]} ({exc.message})"
            # Snapshot.restore stopped at the failed source; its volume part ran (in a finally)
        if "source" not in report.unrestorable:
            report.restored += ["source", "play_state"]
            if snap.queue is not None:
                report.restored.append("queue")

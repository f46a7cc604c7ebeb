"""Sonos speaker adapter on soco: snapshot, calm music with ramped volume, restore, not fighting the user."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from xml.etree.ElementTree import ParseError

import soco
import soco.discovery
from soco.exceptions import SoCoException

from relaxd.adapters.blocking import BlockingCalls, Op
from relaxd.adapters.sonos import snapshot as sonos_snapshot
from relaxd.adapters.sonos.calls import DEVICE, SpeakerCalls, device_error, read_all
from relaxd.adapters.sonos.music import prepare_source
from relaxd.adapters.sonos.ramp import run_ramp
from relaxd.adapters.sonos.session import Session
from relaxd.core.ports import DeviceError, MusicSource, RestoreReport, SnapshotData, SnapshotUnusable

log = logging.getLogger(__name__)

FAVORITES_TTL_S = 60.0
DISCOVERY_S = 5.0  # soco's multicast search for a room name, on top of the usual budget
# Restoring cannot succeed on a retry after these: the saved source itself cannot be started.
UNRESTORABLE_CODES = {
    402: "a cloud queue (Spotify Connect, Alexa) that only its app can restart",
    714: "the speaker no longer accepts the saved source URI",
}


class SonosSpeaker:
    """A room's Sonos speaker, driven through its group coordinator (relaxd.core.ports.Speaker).

    Every soco call runs in the process's blocking pool through this speaker's one fence. One
    operation at a time: a ramp of start_music or set_volume still running when the next operation
    comes ends at its next step (that call then returns), and the next operation goes on.
    """

    def __init__(
        self,
        host: str | None = None,
        name: str | None = None,
        max_volume: int = 100,
        timeout_s: float = 5.0,
        *,
        calls: BlockingCalls,
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
        self._call = SpeakerCalls(calls, self._where(), timeout_s)
        self._soco: Any = None
        self._busy = asyncio.Lock()
        self._waiting = 0  # operations waiting for their turn
        self._ramp_stop = asyncio.Event()  # set: the ramp under way gives way to the next operation
        self._favorites_cache: tuple[float, list[Any]] | None = None
        self._session = Session(self._where())

    def _where(self) -> str:
        return self.host or repr(self.name)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One operation at a time. A ramp under way ends at its next step rather than keep the next
        phase (or the restore) waiting for it; while others still wait, this turn's ramp gives way too."""
        self._waiting += 1
        self._ramp_stop.set()
        try:
            await self._busy.acquire()
        finally:
            self._waiting -= 1
        try:
            if not self._waiting:
                self._ramp_stop = asyncio.Event()
            yield
        finally:
            self._busy.release()

    async def _speaker(self) -> Any:
        """The configured speaker (a soco.SoCo), found on first use."""
        if self._soco is not None:
            return self._soco
        if self.host:
            address, _, port = self.host.rpartition(":") if ":" in self.host else (self.host, "", "")
            device = await self._call(
                "resolve the host", lambda: soco.SoCo(socket.gethostbyname(address), int(port or 1400))
            )
        else:
            # discovery (multicast) only ever happens for a speaker configured by room name
            name = self.name or ""
            device = await self._call(
                f"discover {name!r}", lambda: self._find_by_name(name), budget_s=self.timeout_s + DISCOVERY_S
            )
            if device is None:
                raise DeviceError(DEVICE, f"no Sonos speaker named {self.name!r} was found")
        self._soco = device
        return device

    async def _coordinator(self) -> Any:
        device = await self._speaker()

        def find() -> Any:
            if device.is_coordinator:
                return device
            group = device.group
            if group is None or group.coordinator is None:
                raise DeviceError(DEVICE, f"{self._where()} has no group coordinator")
            return group.coordinator

        return await self._call("find the group coordinator", find, requests_n=4)

    async def _favorites(self, device: Any) -> list[Any]:
        """The Sonos favorites, read at most once a minute: a session start should not wait for
        a browse that almost never changes (a favorite added in the app shows up a minute later)."""
        now_s = time.monotonic()
        cached = self._favorites_cache
        if cached is not None and now_s - cached[0] < FAVORITES_TTL_S:
            return cached[1]
        favorites: list[Any] = await self._call(
            "list the Sonos favorites",
            lambda: list(device.music_library.get_sonos_favorites(complete_result=True)),
            requests_n=2,
        )
        self._favorites_cache = (now_s, favorites)
        return favorites

    # --- volume ----------------------------------------------------------------------------
    async def _send_volume(self, op: Op, device: Any, volume: int) -> None:
        self._session.sending_volume(volume)
        await op.run(lambda: setattr(device, "volume", volume))
        self._session.sent_volume(volume)

    async def _set(self, device: Any, volume: int) -> None:
        async with self._call.op("set the volume") as op:
            await self._send_volume(op, device, volume)

    async def _step(self, device: Any, volume: int) -> bool:
        """One ramp step, unless the user took the volume over (then False, and nothing is sent)."""
        async with self._call.op("step the volume", requests_n=2) as op:
            current = await op.run(lambda: device.volume)
            if self._session.saw_volume(current):
                return False
            await self._send_volume(op, device, volume)
        return True

    async def _look(self, device: Any) -> int:
        """Read volume and source, noting a change by hand; returns the volume."""
        async with self._call.op("read volume and source", requests_n=2) as op:
            got = await read_all(
                op, {"volume": lambda: device.volume, "uri": lambda: device.get_current_media_info()["uri"]}
            )
        self._session.saw_source(got["uri"])
        self._session.saw_volume(got["volume"])
        return int(got["volume"])

    def _capped(self, volume: int) -> int:
        return max(0, min(volume, self.max_volume))

    # --- the Speaker port ------------------------------------------------------------------
    async def check(self) -> None:
        device = await self._speaker()
        await self._call("check", lambda: device.volume)

    async def snapshot(self) -> SnapshotData:
        async with self._turn():
            self._session = Session(self._where())
            device = await self._coordinator()
            snap = sonos_snapshot.RelaxdSnapshot(device, snapshot_queue=True)
            async with self._call.op("take a snapshot", sonos_snapshot.SNAPSHOT_REQUESTS) as op:
                try:
                    uid = await snap.capture(op)
                except DeviceError:
                    raise
                except Exception as exc:  # an answer of an unexpected shape, met while reading it
                    raise device_error("take a snapshot", exc) from exc
            self._session.muted_at_snapshot = bool(snap.mute)
            try:
                return sonos_snapshot.to_data(snap, uid)
            except TypeError as exc:
                raise device_error("take a snapshot", exc) from exc

    async def start_music(self, source: MusicSource, volume: int, ramp_s: float) -> None:
        chosen = [v for v in (source.favorite, source.uri, source.playlist) if v]
        if len(chosen) != 1:
            raise DeviceError(DEVICE, f"music needs exactly one of favorite, uri, playlist: {source}")
        async with self._turn():
            session = self._session
            if session.hand_source:
                log.info("speaker %s: the user chose other music; not starting ours", self._where())
                return
            device = await self._coordinator()
            try:
                play = await prepare_source(self._call, device, source, lambda: self._favorites(device))
            except DeviceError:
                self._favorites_cache = None  # a broken or outdated list is read again next time
                raise
            target = self._capped(volume)
            start = 0 if ramp_s > 0 else target
            if not session.hand_volume:
                # silence first, so that switching source never blares at the previous volume
                async with self._call.op("silence the speaker", requests_n=2) as op:
                    await self._send_volume(op, device, start)
                    if session.muted_at_snapshot is not False:
                        await op.run(lambda: setattr(device, "mute", False))
            # Unknown until read back: a play given up on may have landed or not.
            session.our_uri = None
            async with self._call.op(play.what, requests_n=play.requests_n + 1) as op:
                await op.run(play.run)
                session.our_uri = await op.run(lambda: device.get_current_media_info()["uri"])
            if not session.hand_volume:
                await run_ramp(start, target, ramp_s, lambda v: self._step(device, v), self._ramp_stop)

    async def set_volume(self, volume: int, ramp_s: float) -> None:
        async with self._turn():
            device = await self._coordinator()
            current = await self._look(device)
            if self._session.by_hand:
                return
            target = self._capped(volume)
            if ramp_s <= 0:
                if current != target:
                    await self._set(device, target)
                return
            self._session.sent_volume(current)
            await run_ramp(current, target, ramp_s, lambda v: self._step(device, v), self._ramp_stop)

    async def restore(self, snapshot: SnapshotData, fade_s: float) -> RestoreReport:
        async with self._turn():
            device = await self._coordinator()
            session = self._session
            if session.restore_plan is None:
                # decided once, so that a retry after a partial restore is not mistaken for a hand
                await self._look(device)
                session.restore_plan = (session.hand_source, session.hand_volume)
            hand_source, hand_volume = session.restore_plan
            report = RestoreReport()
            if hand_source:
                report.left_alone += ["source", "volume"]
                self._session = Session(self._where())
                return report
            try:
                snap = sonos_snapshot.from_data(device, snapshot)
                saved_volume = int(snap.volume)
            except (ValueError, TypeError, KeyError, AttributeError, ParseError, SoCoException) as exc:
                raise SnapshotUnusable(DEVICE, f"unusable snapshot: {exc}") from exc
            snap.restore_volume = not hand_volume
            if snap.is_playing_cloud_queue:
                report.unrestorable["source"] = UNRESTORABLE_CODES[402]
                # Snapshot would press Play on what is loaded: relaxd's music, not the cloud queue
                snap.transport_state = None
            fade = fade_s > 0 and snap.transport_state == "PLAYING" and not hand_volume
            await self._restore_snapshot(snap, fade, report)
            if hand_volume:
                report.left_alone += ["volume", "mute"]
            elif "source" in report.unrestorable and fade:
                await self._set(device, saved_volume)  # Play never came: nothing to fade in
            elif fade:
                session.sent_volume(0)  # where the restore left it
                if not await run_ramp(0, saved_volume, fade_s, lambda v: self._step(device, v)):
                    report.left_alone.append("volume")
            if not hand_volume:
                report.restored += [n for n in ("volume", "mute", "eq") if n not in report.left_alone]
            self._session = Session(self._where())
            return report

    async def _restore_snapshot(self, snap: sonos_snapshot.RelaxdSnapshot, fade: bool, report: RestoreReport) -> None:
        """soco's Snapshot.restore, one call in the pool; a source nobody can restart is reported, not retried."""
        try:
            await self._call("restore", lambda: snap.restore(fade=fade), requests_n=snap.restore_requests())
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

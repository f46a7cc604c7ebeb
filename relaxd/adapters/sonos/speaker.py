"""The Speaker port on soco for a room's Sonos speakers: snapshot, calm music with ramped volume, restore."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relaxd.adapters.blocking import BlockingCalls, Op
from relaxd.adapters.sonos import snapshot as sonos_snapshot
from relaxd.adapters.sonos import topology
from relaxd.adapters.sonos.calls import DEVICE, device_error, read_all
from relaxd.adapters.sonos.device import SonosDevice
from relaxd.adapters.sonos.music import prepare_source
from relaxd.adapters.sonos.ramp import run_ramp
from relaxd.adapters.sonos.restore import RoomRestore
from relaxd.adapters.sonos.session import Session
from relaxd.adapters.sonos.state import RoomSnapshot, SpeakerState
from relaxd.core.ports import DeviceError, MusicSource, RestoreReport, SnapshotData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeakerRef:
    """One more speaker of the room, by host or by Sonos room name."""

    host: str | None = None
    name: str | None = None


class SonosSpeaker:
    """A room's Sonos speakers as one Speaker (relaxd.core.ports.Speaker).

    For a session the room's speakers leave the groups they are in (the other members play on,
    untouched; a group the room's speaker coordinates is handed to another member first) and are
    grouped under the first one; restore puts every speaker back in its group with its own volume
    and mute. Every soco call runs in the process's blocking pool through its speaker's fence. One
    operation at a time: a ramp still running when the next operation comes ends at its next step.
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
        also: Sequence[SpeakerRef] = (),
        music: MusicSource | None = None,
        snapshot_queue: bool | None = True,
    ) -> None:
        self.devices = [SonosDevice(calls, host, name, timeout_s, find_by_name)] + [
            SonosDevice(calls, ref.host, ref.name, timeout_s, find_by_name) for ref in also
        ]
        self.host, self.name = host, name
        self.max_volume = max(0, min(100, max_volume))
        self.timeout_s = timeout_s
        self._calls = calls
        # The queue is saved when the session's music replaces it; None: decided from music.
        self._music = music
        self._snapshot_queue = snapshot_queue
        self._foreign: dict[str, SonosDevice] = {}
        self._busy = asyncio.Lock()
        self._waiting = 0
        self._ramp_stop = asyncio.Event()
        self._grouped = False  # the room's speakers were taken out of their groups for this session
        self._missing: set[str] = set()  # speakers of the room not yet in its group (unreachable then)
        self._restore = RoomRestore(self)

    @property
    def lead(self) -> SonosDevice:
        return self.devices[0]

    def foreign(self, uid: str, soco_device: Any) -> SonosDevice:
        """Another room's speaker met in the layout, with a fence of its own."""
        if uid not in self._foreign:
            self._foreign[uid] = SonosDevice.of(self._calls, soco_device, self.timeout_s)
            self._foreign[uid].uid = uid
        return self._foreign[uid]

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

    def new_session(self) -> None:
        for device in self.devices:
            device.session = Session(device.where)
        self._grouped = False
        self._missing = set()

    # --- volume ----------------------------------------------------------------------------
    async def send_volume(self, op: Op, device: SonosDevice, volume: int) -> None:
        speaker = await device.soco()
        device.session.sending_volume(volume)
        await op.run(lambda: setattr(speaker, "volume", volume))
        device.session.sent_volume(volume)

    async def set_one(self, device: SonosDevice, volume: int) -> None:
        async with device.call.op("set the volume") as op:
            await self.send_volume(op, device, volume)

    async def step(self, device: SonosDevice, volume: int) -> bool:
        """One ramp step, unless the user took the volume over (then False, and nothing is sent)."""
        speaker = await device.soco()
        async with device.call.op("step the volume", requests_n=2) as op:
            current = await op.run(lambda: speaker.volume)
            if device.session.saw_volume(current):
                return False
            await self.send_volume(op, device, volume)
        return True

    async def look(self, device: SonosDevice, source: bool) -> int:
        """Read the volume (and the source), noting a change by hand; returns the volume."""
        speaker = await device.soco()
        reads: dict[str, Callable[[], Any]] = {"volume": lambda: speaker.volume}
        if source:
            reads["uri"] = lambda: speaker.get_current_media_info()["uri"]
        async with device.call.op("read volume and source", requests_n=2) as op:
            got = await read_all(op, reads)
        if source:
            device.session.saw_source(got["uri"])
        device.session.saw_volume(got["volume"])
        return int(got["volume"])

    async def ramp_all(self, plan: dict[SonosDevice, tuple[int, int]], ramp_s: float, stop: bool) -> dict[str, bool]:
        """Every speaker from start to target over ramp_s at once; per uid, whether it got there."""
        event = self._ramp_stop if stop else None

        async def one(device: SonosDevice, start: int, target: int) -> bool:
            return await run_ramp(start, target, ramp_s, lambda v: self.step(device, v), event)

        done = await asyncio.gather(*(one(d, s, t) for d, (s, t) in plan.items()))
        return {d.uid or d.where: ok for d, ok in zip(plan, done, strict=True)}

    def capped(self, volume: int) -> int:
        return max(0, min(volume, self.max_volume))

    # --- the Speaker port ------------------------------------------------------------------
    async def check(self) -> None:
        for device in self.devices:
            speaker = await device.soco()
            await device.call("check", lambda speaker=speaker: speaker.volume)  # type: ignore[misc]

    async def _queue_needed(self) -> bool:
        """Whether the session's music replaces the queue (a playlist, or a favorite that is one)."""
        if self._snapshot_queue is not None:
            return self._snapshot_queue
        music = self._music
        if music is None or music.uri:
            return False
        if music.playlist:
            return True
        try:
            play = await prepare_source(self.lead.call, await self.lead.soco(), music, self.lead.favorites)
        except DeviceError:
            return True  # unknown: better a queue saved for nothing than a queue lost
        return play.uri is None

    async def snapshot(self) -> SnapshotData:
        async with self._turn():
            self.new_session()
            self._restore = RoomRestore(self)  # nothing of an earlier restore carries over
            layout = await topology.read_layout(self.lead)
            for device in self.devices:
                await device.soco_uid()  # from the zone group state just read: no request
            with_queue = await self._queue_needed()
            states = await asyncio.gather(*(self._capture(d, layout, with_queue) for d in self.devices))
            groups = []
            for device in self.devices:
                group = layout.group(device.uid or "")
                if group not in groups:
                    groups.append(group)
            return RoomSnapshot(speakers=list(states), groups=groups).to_data()

    async def _capture(self, device: SonosDevice, layout: topology.Layout, with_queue: bool) -> SpeakerState:
        speaker = await device.soco()
        snap = sonos_snapshot.RelaxdSnapshot(speaker, snapshot_queue=with_queue)
        async with device.call.op("take a snapshot", sonos_snapshot.SNAPSHOT_REQUESTS) as op:
            try:
                uid = await snap.capture(op)
            except DeviceError:
                raise
            except Exception as exc:  # an answer of an unexpected shape, met while reading it
                raise device_error("take a snapshot", exc) from exc
        device.session.muted_at_snapshot = bool(snap.mute)
        try:
            return sonos_snapshot.to_state(snap, uid, layout.names.get(uid, ""))
        except ValueError as exc:  # pydantic: a value the speaker should never have answered
            raise device_error("take a snapshot", exc) from exc

    async def start_music(self, source: MusicSource, volume: int, ramp_s: float) -> None:
        chosen = [v for v in (source.favorite, source.uri, source.playlist) if v]
        if len(chosen) != 1:
            raise DeviceError(DEVICE, f"music needs exactly one of favorite, uri, playlist: {source}")
        async with self._turn():
            lead = self.lead
            if lead.session.hand_source:
                log.info("speaker %s: the user chose other music; not starting ours", lead.where)
                return
            speaker = await lead.soco()
            try:
                play = await prepare_source(lead.call, speaker, source, lead.favorites)
            except DeviceError:
                lead.forget_favorites()
                raise
            target = self.capped(volume)
            start = 0 if ramp_s > 0 else target
            failures: dict[str, DeviceError] = {}
            # silence first, so that leaving a group or switching source never blares
            mine = [d for d in self.devices if not d.session.hand_volume]
            await self._each(mine, lambda d: self._silence(d, start), failures)
            if not self._grouped:
                await self._group_for_session(failures)
            # Unknown until read back: a play given up on may have landed or not.
            lead.session.our_uri = None
            async with lead.call.op(play.what, requests_n=play.requests_n + 1) as op:
                await op.run(play.run)
                lead.session.our_uri = await op.run(lambda: speaker.get_current_media_info()["uri"])
            await self.ramp_all({d: (start, target) for d in mine if _key(d) not in failures}, ramp_s, stop=True)
            _raise_first(failures)

    async def _each(
        self,
        devices: list[SonosDevice],
        change: Callable[[SonosDevice], Awaitable[Any]],
        failures: dict[str, DeviceError],
    ) -> dict[SonosDevice, Any]:
        """change(device) for each at once; a speaker of the room other than the first that fails is
        noted in failures (the session goes on with the others), the first one's error is raised."""
        results = await asyncio.gather(*(change(d) for d in devices), return_exceptions=True)
        out: dict[SonosDevice, Any] = {}
        for device, result in zip(devices, results, strict=True):
            if isinstance(result, DeviceError) and device is not self.lead:
                failures[_key(device)] = topology.where(device, result)
            elif isinstance(result, BaseException):
                raise result
            else:
                out[device] = result
        return out

    async def _silence(self, device: SonosDevice, volume: int) -> None:
        speaker = await device.soco()
        async with device.call.op("silence the speaker", requests_n=2) as op:
            await self.send_volume(op, device, volume)
            if device.session.muted_at_snapshot is not False:
                await op.run(lambda: setattr(speaker, "mute", False))

    async def _group_for_session(self, failures: dict[str, DeviceError]) -> None:
        """The room's speakers out of their groups (the others untouched), then grouped under the first;
        one that cannot be reached joins when it is back (set_volume)."""
        layout = await topology.read_layout(self.lead)
        reachable = [d for d in self.devices if _key(d) not in failures]
        await topology.isolate(reachable, layout, failures)
        _raise_first({k: e for k, e in failures.items() if k == _key(self.lead)})
        self._grouped = True
        await self._join_lead([d for d in self.devices[1:] if _key(d) not in failures], failures)
        self._missing = {_key(d) for d in self.devices[1:] if _key(d) in failures}

    async def _join_lead(self, devices: list[SonosDevice], failures: dict[str, DeviceError]) -> None:
        lead_soco = await self.lead.soco()
        await self._each(devices, lambda d: topology.join(d, lead_soco), failures)
        joined = {d.uid for d in devices if _key(d) not in failures} | {self.lead.uid}
        if len(joined) > 1:
            await topology.settle(self.lead, lambda now: joined <= set(now.members(self.lead.uid or "")))

    async def _join_missing(self, volume: int, failures: dict[str, DeviceError]) -> None:
        """A speaker of the room that could not be grouped for the session joins it now, at volume."""
        missing = [d for d in self.devices if _key(d) in self._missing and _key(d) not in failures]
        if not missing:
            return
        layout = await topology.read_layout(self.lead)
        await topology.isolate(missing, layout, failures)
        ready = [d for d in missing if _key(d) not in failures]
        await self._each(ready, lambda d: self.set_one(d, volume), failures)
        await self._join_lead([d for d in ready if _key(d) not in failures], failures)
        self._missing -= {_key(d) for d in ready if _key(d) not in failures}

    async def set_volume(self, volume: int, ramp_s: float) -> None:
        async with self._turn():
            failures: dict[str, DeviceError] = {}
            currents = await self._each(self.devices, lambda d: self.look(d, source=d is self.lead), failures)
            if self.lead.session.hand_source:
                return
            target = self.capped(volume)
            if self._grouped:
                await self._join_missing(target, failures)
            plan = {
                d: (c, target) for d, c in currents.items() if not d.session.hand_volume and _key(d) not in failures
            }
            if ramp_s <= 0:
                await self._each(
                    [d for d, (c, _) in plan.items() if c != target], lambda d: self.set_one(d, target), failures
                )
            else:
                for device, (current, _) in plan.items():
                    device.session.sent_volume(current)
                await self.ramp_all(plan, ramp_s, stop=True)
            _raise_first(failures)

    async def restore(self, snapshot: SnapshotData, fade_s: float) -> RestoreReport:
        async with self._turn():
            return await self._restore.run(snapshot, fade_s)


def _key(device: SonosDevice) -> str:
    return device.uid or device.where


def _raise_first(failures: dict[str, DeviceError]) -> None:
    if failures:
        raise next(iter(failures.values()))

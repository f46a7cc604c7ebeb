"""Restoring a room's Sonos speakers: out of the session's group, each back in its own group, faded in."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from relaxd.adapters.sonos import snapshot as sonos_snapshot
from relaxd.adapters.sonos import state as sonos_state
from relaxd.adapters.sonos import topology
from relaxd.adapters.sonos.calls import DEVICE
from relaxd.adapters.sonos.device import SonosDevice
from relaxd.adapters.sonos.state import Group, RoomSnapshot, SpeakerState
from relaxd.core.ports import DeviceError, RestoreReport, SnapshotData, SnapshotUnusable

if TYPE_CHECKING:
    from relaxd.adapters.sonos.speaker import SonosSpeaker

log = logging.getLogger(__name__)
T = TypeVar("T")
# Restoring cannot succeed on a retry after these: the saved source itself cannot be started.
UNRESTORABLE_CODES = {
    402: "a cloud queue (Spotify Connect, Alexa) that only its app can restart",
    714: "the speaker no longer accepts the saved source URI",
}


@dataclass
class _Pass:
    """One attempt: what it did, what to fade in, what failed."""

    report: RestoreReport = field(default_factory=RestoreReport)
    fades: dict[SonosDevice, int] = field(default_factory=dict)  # device -> saved volume
    errors: list[DeviceError] = field(default_factory=list)
    several: bool = False

    def item(self, name: str, device: SonosDevice, state: SpeakerState) -> str:
        return f"{name} of {state.name or device.where}" if self.several else name


class RoomRestore:
    """Restore of one room's speakers; remembers, within a session, what a retry must not redo."""

    def __init__(self, room: SonosSpeaker) -> None:
        self.room = room
        self._done: set[str] = set()  # uids placed back (a retry leaves them as they are)
        self._hand_source: bool | None = None  # decided once per session, as each hand_volume
        self._hand_volume: dict[str, bool] = {}

    async def run(self, data: SnapshotData, fade_s: float) -> RestoreReport:
        try:
            saved = sonos_state.from_data(data)
            sonos_snapshot.check_queues(saved)
        except ValueError as exc:
            raise SnapshotUnusable(DEVICE, f"unusable snapshot: {exc}") from exc
        attempt = _Pass(several=len(saved.speakers) > 1)
        pairs = await self._pair(saved, attempt)
        if not pairs:
            raise attempt.errors[0]
        hand_source, hand_volume = await self._decide_hands(pairs, attempt)
        if not pairs:
            raise attempt.errors[0]
        if hand_source:
            attempt.report.left_alone += ["source", "volume"] + (["group"] if saved.grouped else [])
            self._finish()
            return attempt.report
        reachable = [d for d in pairs.values() if d.uid not in self._done]
        layout = await self._layout(list(pairs.values()), attempt)
        room_uids = {s.uid for s in saved.speakers}
        # No music was started (or the session never got that far): the groups are as they were.
        in_place = all(topology.same(layout, g) for g in saved.all_groups() if room_uids & set(g.members))
        if reachable and not in_place:
            failures: dict[str, DeviceError] = {}
            layout = await topology.isolate(reachable, layout, failures)
            attempt.errors += failures.values()
            pairs = {uid: d for uid, d in pairs.items() if uid not in failures}
        for group in saved.all_groups():
            if in_place:
                await self._in_place(group, saved, pairs, room_uids, hand_volume, fade_s > 0, attempt)
            else:
                await self._place(group, saved, pairs, layout, room_uids, hand_volume, fade_s > 0, attempt)
        await self._fade_in(fade_s, saved, pairs, attempt)
        if attempt.errors:
            raise attempt.errors[0]
        self._finish()
        return attempt.report

    async def _layout(self, devices: list[SonosDevice], attempt: _Pass) -> topology.Layout:
        """The layout, as the first of the room's speakers that answers sees it."""
        for device in devices:
            try:
                return await topology.read_layout(device)
            except DeviceError as exc:
                attempt.errors.append(topology.where(device, exc))
        raise attempt.errors[0]

    def _finish(self) -> None:
        self._done.clear()
        self._hand_source = None
        self._hand_volume = {}
        self.room.new_session()

    async def _pair(self, saved: RoomSnapshot, attempt: _Pass) -> dict[str, SonosDevice]:
        """saved uid -> the reachable device it belongs to (by uid; a file of the previous version,
        or a speaker never reached in this process, by its place in the config)."""
        devices = self.room.devices
        for device in devices:
            try:
                await device.soco_uid()
            except DeviceError as exc:
                attempt.errors.append(topology.where(device, exc))
        pairs: dict[str, SonosDevice] = {}
        for index, state in enumerate(saved.speakers):
            found = next((d for d in devices if d.uid == state.uid), None)
            if found is None and index < len(devices) and devices[index].uid not in {s.uid for s in saved.speakers}:
                found = devices[index]
            if found is not None and found.uid is not None:
                pairs[state.uid] = found
        return pairs

    async def _decide_hands(self, pairs: dict[str, SonosDevice], attempt: _Pass) -> tuple[bool, dict[str, bool]]:
        """Whether the user changed the source, and each speaker's volume, by hand: decided once per
        speaker, so that a retry after a partial restore is not mistaken for a hand. A speaker that
        does not answer leaves pairs (this attempt goes on without it)."""
        lead = self.room.lead
        for uid, device in list(pairs.items()):
            if uid in self._hand_volume:
                continue
            try:
                await self.room.look(device, source=device is lead)
            except DeviceError as exc:
                attempt.errors.append(topology.where(device, exc))
                del pairs[uid]
                continue
            self._hand_volume[uid] = device.session.hand_volume
            if device is lead and self._hand_source is None:
                self._hand_source = lead.session.hand_source
        return bool(self._hand_source), self._hand_volume

    async def _place(
        self,
        group: Group,
        saved: RoomSnapshot,
        pairs: dict[str, SonosDevice],
        layout: topology.Layout,
        room_uids: set[str],
        hand_volume: dict[str, bool],
        fade: bool,
        attempt: _Pass,
    ) -> None:
        """The room's speakers of one saved group back where they belong."""
        states = {s.uid: s for s in saved.speakers}
        mine = [u for u in group.members if u in room_uids and u in pairs and pairs[u].uid not in self._done]
        target = topology.plan_return(group, room_uids, layout)
        try:
            if target.kind == "host" and target.host is not None:
                await self._into_host(group, target.host, mine, states, pairs, layout, hand_volume, fade, attempt)
                return
            coordinator = group.coordinator if target.kind == "own" else None
            playing = False
            if coordinator is not None and coordinator in mine:
                device = pairs[coordinator]
                playing = await self._at(device, self._own(device, states[coordinator], hand_volume, fade, attempt))
            lead = pairs.get(coordinator or "")
            for uid in mine:
                if uid == coordinator:
                    continue
                device = pairs[uid]
                await self._at(device, self._sound(device, states[uid], hand_volume, fade and playing, attempt))
                if lead is None:
                    attempt.report.unrestorable["group"] = f"{group.described()} are not there to rejoin"
                    continue
                await self._at(device, topology.join(device, await lead.soco()))
                self._done.add(uid)
            if lead is not None and len(group.members) > 1 and "group" not in attempt.report.restored:
                attempt.report.restored.append("group")
        except DeviceError as exc:
            attempt.errors.append(exc)

    async def _at(self, device: SonosDevice, change: Awaitable[T]) -> T:
        try:
            return await change
        except DeviceError as exc:
            raise topology.where(device, exc) from exc

    async def _in_place(
        self,
        group: Group,
        saved: RoomSnapshot,
        pairs: dict[str, SonosDevice],
        room_uids: set[str],
        hand_volume: dict[str, bool],
        fade: bool,
        attempt: _Pass,
    ) -> None:
        """A group the session left as it was: each room speaker's sound, and the coordinator's music
        when the group is the room's own (another room's music is never rewound)."""
        states = {s.uid: s for s in saved.speakers}
        theirs = any(u not in room_uids for u in group.members)
        try:
            for uid in (u for u in group.members if u in room_uids and u in pairs):
                device = pairs[uid]
                if uid == group.coordinator and not theirs:
                    await self._at(device, self._own(device, states[uid], hand_volume, fade, attempt))
                else:
                    await self._at(device, self._sound(device, states[uid], hand_volume, False, attempt))
        except DeviceError as exc:
            attempt.errors.append(exc)

    async def _into_host(
        self,
        group: Group,
        host: str,
        mine: list[str],
        states: dict[str, SpeakerState],
        pairs: dict[str, SonosDevice],
        layout: topology.Layout,
        hand_volume: dict[str, bool],
        fade: bool,
        attempt: _Pass,
    ) -> None:
        """Into the group that went on without the room: with its current music, untouched; a speaker
        that coordinated it takes coordination back (delegated, so the others hear no gap)."""
        host_soco = layout.devices[host]
        host_device = self.room.foreign(host, host_soco)
        info = await host_device.call("read the group's play state", host_soco.get_current_transport_info)
        playing = info.get("current_transport_state") == "PLAYING"
        for uid in mine:
            device = pairs[uid]
            await self._at(device, self._sound(device, states[uid], hand_volume, fade and playing, attempt))
            await self._at(device, topology.join(device, host_soco))
        if group.coordinator in mine:
            # a real household shows a join a moment later; delegating to a speaker not yet in is refused
            await topology.settle(host_device, lambda now: group.coordinator in now.members(host))
            await topology.delegate(host_device, group.coordinator, rejoin=True)
        self._done.update(mine)
        if "group" not in attempt.report.restored:
            attempt.report.restored.append("group")

    def _snap(self, device_soco: Any, state: SpeakerState, hand: bool, transport: bool) -> Any:
        snap = sonos_snapshot.to_snap(device_soco, state, transport=transport)
        snap.restore_volume = not hand
        return snap

    async def _sound(
        self, device: SonosDevice, state: SpeakerState, hands: dict[str, bool], fade: bool, attempt: _Pass
    ) -> None:
        """The speaker's own volume, mute and EQ (at 0 for a fade-in)."""
        hand = hands.get(state.uid, False)
        snap = self._snap(await device.soco(), state, hand, transport=False)
        await device.call("restore the volume", lambda: snap.restore(fade=fade and not hand), requests_n=6)
        self._sound_report(device, state, hand, fade, attempt)

    def _sound_report(self, device: SonosDevice, state: SpeakerState, hand: bool, fade: bool, attempt: _Pass) -> None:
        report = attempt.report
        if hand:
            report.left_alone += [attempt.item(n, device, state) for n in ("volume", "mute")]
            return
        if fade:
            attempt.fades[device] = state.volume
        report.restored += [attempt.item(n, device, state) for n in ("volume", "mute", "eq")]

    async def _own(
        self, device: SonosDevice, state: SpeakerState, hands: dict[str, bool], fade: bool, attempt: _Pass
    ) -> bool:
        """The speaker plays what it played, alone; returns whether that is playing."""
        hand = hands.get(state.uid, False)
        if state.playback is None:
            await self._sound(device, state, hands, False, attempt)
            self._done.add(state.uid)
            return False
        snap = self._snap(await device.soco(), state, hand, transport=True)
        report = attempt.report
        if snap.is_playing_cloud_queue:
            report.unrestorable["source"] = UNRESTORABLE_CODES[402]
            snap.transport_state = None  # Play would start relaxd's music, not the cloud queue
        fade = fade and snap.transport_state == "PLAYING" and not hand
        try:
            await device.call("restore", lambda: snap.restore(fade=fade), requests_n=snap.restore_requests())
        except DeviceError as exc:
            if exc.code not in UNRESTORABLE_CODES:
                raise
            log.warning("speaker %s: cannot restart %s: %s", device.where, snap.media_uri, exc.message)
            report.unrestorable["source"] = f"{UNRESTORABLE_CODES[exc.code]} ({exc.message})"
        if "source" not in report.unrestorable:
            report.restored += ["source", "play_state"]
            saved_queue = state.playback.queue
            if saved_queue is not None and len(saved_queue) < state.playback.queue_total:
                first = state.playback.queue_start + 1
                report.unrestorable["queue"] = (
                    f"a queue that long is saved in part: {len(saved_queue)} of its "
                    f"{state.playback.queue_total} tracks, from track {first}"
                )
            elif saved_queue is not None:
                report.restored.append("queue")
        elif fade:
            await self.room.set_one(device, state.volume)  # Play never came: nothing to fade in
            fade = False
        self._sound_report(device, state, hand, fade, attempt)
        self._done.add(state.uid)
        return snap.transport_state == "PLAYING" and "source" not in report.unrestorable

    async def _fade_in(self, fade_s: float, saved: RoomSnapshot, pairs: dict[str, SonosDevice], attempt: _Pass) -> None:
        if not attempt.fades:
            return
        for device in attempt.fades:
            device.session.sent_volume(0)  # where the restore left it
        reached = await self.room.ramp_all({d: (0, v) for d, v in attempt.fades.items()}, fade_s, stop=False)
        states = {s.uid: s for s in saved.speakers}
        for device in attempt.fades:
            if not reached[device.uid or device.where]:
                state = states[next(u for u, d in pairs.items() if d is device)]
                attempt.report.left_alone.append(attempt.item("volume", device, state))
                name = attempt.item("volume", device, state)
                if name in attempt.report.restored:
                    attempt.report.restored.remove(name)

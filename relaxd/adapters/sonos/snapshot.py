"""soco's Snapshot of one speaker, read in parallel, its queue read and restored in batches; relaxd's model of it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import ParseError

from soco.data_structures import to_didl_string
from soco.data_structures_entry import from_didl_string
from soco.exceptions import SoCoException, SoCoUPnPException
from soco.snapshot import Snapshot

from relaxd.adapters.blocking import Op
from relaxd.adapters.sonos.calls import read_all
from relaxd.adapters.sonos.state import Playback, RoomSnapshot, SpeakerState

log = logging.getLogger(__name__)
# Requests of a snapshot, for its deadline: about a dozen, plus one per 400 queue items.
SNAPSHOT_REQUESTS = 16

# A longer queue is saved as a window of this many tracks around the one playing: its restore
# (16 tracks a request) stays within 63 requests.
MAX_QUEUE_TRACKS = 1000
QUEUE_BATCH = 400  # tracks of one Browse, as soco reads them
ADD_BATCH = 16  # tracks of one AddMultipleURIsToQueue, as soco sends them


class RelaxdSnapshot(Snapshot):  # type: ignore[misc]
    """soco's Snapshot, with the volume part told what relaxd may touch.

    restore_volume=False leaves volume, mute and EQ as the user set them. With fade, the volume
    is left at 0 for relaxd to ramp over its own fade_s (soco's fade uses the speaker's fixed
    ramp rate, 1.25 steps per second, whatever time was asked for).
    """

    queue: list[list[Any]] | None

    def __init__(self, device: Any, snapshot_queue: bool = True) -> None:
        super().__init__(device, snapshot_queue=snapshot_queue)
        self.restore_volume = True
        self.queue_start = 0  # index of the first saved track in the speaker's queue
        self.queue_total = 0  # tracks in the speaker's queue

    async def capture(self, op: Op) -> str:
        """soco's Snapshot.snapshot(): the same attributes, read in two parallel rounds under op;
        returns the device's uid.

        soco reads about a dozen values one after the other, and the room waits for them before
        the lights or the music may change: the reads do not depend on each other, so they are
        asked at once, cutting the start of every session by ~10 round trips. Restore is soco's own.
        """
        device = self.device
        got = await read_all(
            op,
            {
                "is_coordinator": lambda: device.is_coordinator,
                "uid": lambda: device.uid,
                "media_info": lambda: device.avTransport.GetMediaInfo([("InstanceID", 0)]),
                "volume": lambda: device.volume,
                "mute": lambda: device.mute,
                "bass": lambda: device.bass,
                "treble": lambda: device.treble,
                "loudness": lambda: device.loudness,
                "transport_info": device.get_current_transport_info,
            },
        )
        self.is_coordinator = got["is_coordinator"]
        self.media_uri = got["media_info"]["CurrentURI"]
        if self.media_uri.split(":")[0] == "x-rincon-queue":
            if self.media_uri.split("#")[1] == "0":
                self.is_playing_queue = True
            else:
                self.is_playing_cloud_queue = True
        for name in ("volume", "mute", "bass", "treble", "loudness"):
            setattr(self, name, got[name])
        second: dict[str, Callable[[], Any]] = {}
        if self.is_playing_queue:
            second["play_mode"] = lambda: device.play_mode
            second["track_info"] = device.get_current_track_info
            if self.is_coordinator:
                second["cross_fade"] = lambda: device.cross_fade
        else:
            self.media_metadata = got["media_info"]["CurrentURIMetaData"]
        if self.queue is not None and self.is_coordinator:
            second["queue"] = lambda: device.get_queue(0, QUEUE_BATCH)
        results = await read_all(op, second) if second else {}
        if self.is_playing_queue:
            self.play_mode = results["play_mode"]
            if "cross_fade" in results:
                self.cross_fade = results["cross_fade"]
            track_info = results["track_info"]
            if track_info is not None:
                if track_info["playlist_position"] != "":
                    self.playlist_position = int(track_info["playlist_position"])
                self.track_position = track_info["position"]
        if self.is_coordinator and got["transport_info"] is not None:
            self.transport_state = got["transport_info"]["current_transport_state"]
        if "queue" in results:
            await self._rest_of_queue(op, results["queue"])
        elif self.queue is not None:
            self.queue = None  # a group member: its coordinator's queue is the group's
        return str(got["uid"])

    async def _rest_of_queue(self, op: Op, first: Any) -> None:
        """The queue, or a window of MAX_QUEUE_TRACKS of it from the track playing (read 400 at a time)."""
        total = int(getattr(first, "total_matches", None) or len(first))
        self.queue_total = total
        if total <= len(first):
            self.queue = [list(first)] if len(first) else []
            return
        playing = max(0, (self.playlist_position or 1) - 1)
        start = min(playing, max(0, total - MAX_QUEUE_TRACKS))
        end = min(total, start + MAX_QUEUE_TRACKS)
        self.queue_start = start
        items: list[Any] = list(first)[start:] if start < len(first) else []
        while start + len(items) < end:
            offset = start + len(items)
            batch: Any = await op.run(lambda offset=offset: self.device.get_queue(offset, QUEUE_BATCH))  # type: ignore[misc]
            if not len(batch):
                break
            items += list(batch)
        self.queue = [items[: end - start]]

    def restore_requests(self) -> int:
        """How many requests restore() makes at most, for its deadline."""
        queued = sum(len(batch) for batch in self.queue or [])
        settle = 7 if self.transport_state == "PAUSED_PLAYBACK" else 0
        return 16 + -(-queued // ADD_BATCH) + settle

    def _restore_queue(self) -> None:
        """soco adds the tracks back one request each; 16 a request (AddMultipleURIsToQueue) is 16 times faster."""
        if self.queue is None:
            return
        self.device.clear_queue()
        items = [item for batch in self.queue for item in batch]
        if items:
            self.device.add_multiple_to_queue(items)

    def _restore_volume(self, fade: bool) -> None:
        if not self.restore_volume:
            return
        if not fade:
            super()._restore_volume(False)
            return
        self.device.mute = self.mute
        # a speaker with fixed output answers every volume change with an error (soco's own check)
        if self.volume == 100 and self.device.fixed_volume:
            return
        self.device.bass = self.bass
        self.device.treble = self.treble
        self.device.loudness = self.loudness
        self.device.volume = 0

    def _restore_coordinator(self) -> None:
        super()._restore_coordinator()
        if self.transport_state == "PAUSED_PLAYBACK":
            self._settle_paused()

    def _settle_paused(self) -> None:
        """Loading a source leaves a speaker STOPPED; PAUSED_PLAYBACK needs a (muted) Play+Pause."""
        state = self.device.get_current_transport_info()["current_transport_state"]
        if state == "PAUSED_PLAYBACK" or not (self.media_uri or self.is_playing_queue):
            return
        was_muted = self.device.mute
        self.device.mute = True
        try:
            self.device.play()
            self.device.pause()
            if self.is_playing_queue and self.track_position:
                self.device.seek(self.track_position)
        except SoCoUPnPException as exc:
            # 701: nothing playable is loaded (an empty queue); stopped is as near as it gets
            if exc.error_code != "701":
                raise
        finally:
            self.device.mute = was_muted


def to_state(snap: RelaxdSnapshot, uid: str, name: str) -> SpeakerState:
    """relaxd's model of what snap captured of one speaker."""
    playback = None
    if snap.is_coordinator:
        queue = None
        if snap.queue is not None:
            queue = [to_didl_string(item) for batch in snap.queue for item in batch]
        playback = Playback(
            uri=snap.media_uri or "",
            metadata=snap.media_metadata,
            plays_queue=snap.is_playing_queue,
            plays_cloud_queue=snap.is_playing_cloud_queue,
            track=snap.playlist_position or 0,
            position=snap.track_position,
            play_mode=snap.play_mode,
            crossfade=snap.cross_fade,
            transport_state=snap.transport_state,
            queue=queue,
            queue_start=snap.queue_start,
            queue_total=snap.queue_total,
        )
    return SpeakerState(
        uid=uid,
        name=name,
        volume=snap.volume,
        mute=snap.mute,
        bass=snap.bass,
        treble=snap.treble,
        loudness=snap.loudness,
        playback=playback,
    )


def to_snap(device: Any, state: SpeakerState, *, transport: bool) -> RelaxdSnapshot:
    """A soco Snapshot for device holding state; transport=False restores only its own sound."""
    playback = state.playback
    snap = RelaxdSnapshot(device, snapshot_queue=playback is not None and playback.queue is not None)
    snap.volume, snap.mute, snap.bass, snap.treble, snap.loudness = (
        state.volume,
        state.mute,
        state.bass,
        state.treble,
        state.loudness,
    )
    snap.is_coordinator = transport and playback is not None
    if playback is None:
        return snap
    snap.media_uri, snap.media_metadata = playback.uri, playback.metadata
    snap.is_playing_queue, snap.is_playing_cloud_queue = playback.plays_queue, playback.plays_cloud_queue
    # the saved queue may be a window of a longer one: positions count from its start
    snap.playlist_position = max(0, playback.track - playback.queue_start)
    snap.track_position, snap.play_mode, snap.cross_fade = playback.position, playback.play_mode, playback.crossfade
    snap.transport_state = playback.transport_state
    if playback.queue is not None:
        items = [obj for didl in playback.queue for obj in from_didl_string(didl)]
        snap.queue = [items] if items else []
    return snap


def check_queues(saved: RoomSnapshot) -> None:
    """Every saved queue item parses (ValueError when one does not): found before anything is sent."""
    for speaker in saved.speakers:
        for didl in (speaker.playback.queue or []) if speaker.playback is not None else []:
            try:
                from_didl_string(didl)
            except (ValueError, TypeError, KeyError, AttributeError, ParseError, SoCoException) as exc:
                raise ValueError(f"a queue item of {speaker.name or speaker.uid} does not parse: {exc}") from None

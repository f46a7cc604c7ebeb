"""soco's Snapshot as JSON-able data, so that another process can rebuild it and restore."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from soco.data_structures import to_didl_string
from soco.data_structures_entry import from_didl_string
from soco.exceptions import SoCoUPnPException
from soco.snapshot import Snapshot

from relaxd.adapters.blocking import Op
from relaxd.adapters.sonos.calls import read_all
from relaxd.core.ports import SnapshotData

log = logging.getLogger(__name__)
# Requests of a snapshot, for its deadline: about a dozen, plus one per 400 queue items.
SNAPSHOT_REQUESTS = 16

FORMAT = "soco-snapshot/1"
_SCALARS = (str, int, float, bool, type(None))
# The device, the queue (stored as DIDL) and our own switch: not scalar captured state.
_NOT_STATE = ("device", "queue", "restore_volume")


class RelaxdSnapshot(Snapshot):  # type: ignore[misc]
    """soco's Snapshot, with the volume part told what relaxd may touch.

    restore_volume=False leaves volume, mute and EQ as the user set them. With fade, the volume
    is left at 0 for relaxd to ramp over its own fade_s (soco's fade uses the speaker's fixed
    ramp rate, 1.25 steps per second, whatever time was asked for).
    """

    def __init__(self, device: Any, snapshot_queue: bool = True) -> None:
        super().__init__(device, snapshot_queue=snapshot_queue)
        self.restore_volume = True

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
        if self.queue is not None:
            second["queue"] = self._save_queue  # appends to self.queue, in its worker
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
        return str(got["uid"])

    def restore_requests(self) -> int:
        """How many requests restore() makes at most, for its deadline."""
        queued = sum(len(batch) for batch in self.queue or [])
        settle = 7 if self.transport_state == "PAUSED_PLAYBACK" else 0
        return 16 + queued + settle

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


def to_data(snap: Snapshot, coordinator_uid: str) -> SnapshotData:
    """Every attribute the Snapshot captured, plus the queue items as DIDL-Lite."""
    state: dict[str, Any] = {}
    for key, value in vars(snap).items():
        if key in _NOT_STATE or key.startswith("_"):
            continue
        if not isinstance(value, _SCALARS):
            raise TypeError(f"Snapshot.{key} is a {type(value).__name__}, not JSON-able")
        state[key] = value
    queue = None
    if snap.queue is not None:
        queue = [to_didl_string(item) for batch in snap.queue for item in batch]
    return {"format": FORMAT, "coordinator_uid": coordinator_uid, "state": state, "queue": queue}


def from_data(device: Any, data: SnapshotData) -> RelaxdSnapshot:
    """A Snapshot for device with the state to_data() wrote (maybe in another process)."""
    if data.get("format") != FORMAT:
        raise ValueError(f"not a Sonos snapshot of format {FORMAT}: {data.get('format')!r}")
    problem = values_problem(data.get("state"))
    if problem is not None:
        raise ValueError(problem)
    snap = RelaxdSnapshot(device, snapshot_queue=data.get("queue") is not None)
    for key, value in data["state"].items():
        if key in _NOT_STATE or not hasattr(snap, key):
            # written by another soco version: restore what this one knows rather than nothing
            log.warning("ignoring Snapshot attribute %r this soco does not have", key)
            continue
        setattr(snap, key, value)
    if data.get("queue") is not None:
        items = [obj for didl in data["queue"] for obj in from_didl_string(didl)]
        snap.queue = [items] if items else []
    return snap


# What the values soco's Snapshot holds may be, as the speaker takes them.
_RANGES = {"volume": (0, 100), "bass": (-10, 10), "treble": (-10, 10)}


def values_problem(state: Any) -> str | None:
    """Why the saved speaker values cannot be sent back (types and ranges), or None."""
    if not isinstance(state, dict):
        return "the saved state is not an object"
    for key, (low, high) in _RANGES.items():
        value = state.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"{key} is {str(value)[:20]!r}, not a whole number in {low}..{high}"
    for key in ("mute", "loudness"):
        if state.get(key) is not None and not isinstance(state[key], bool):
            return f"{key} is {str(state[key])[:20]!r}, not true or false"
    return None


def queue_length(data: SnapshotData) -> int:
    queue = data.get("queue")
    return len(queue) if isinstance(queue, list) else 0

"""soco's Snapshot as JSON-able data, so that another process can rebuild it and restore."""

from __future__ import annotations

import logging
from typing import Any

from soco.data_structures import to_didl_string
from soco.data_structures_entry import from_didl_string
from soco.exceptions import SoCoUPnPException
from soco.snapshot import Snapshot

from relaxd.ports import SnapshotData

log = logging.getLogger(__name__)

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


def queue_length(data: SnapshotData) -> int:
    queue = data.get("queue")
    return len(queue) if isinstance(queue, list) else 0

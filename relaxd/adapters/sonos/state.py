"""relaxd's own Sonos snapshot format: a versioned, typed model of each speaker and the group layout."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from relaxd.core.ports import SnapshotData

FORMAT: Literal["relaxd-sonos/2"] = "relaxd-sonos/2"
OLD_FORMAT = "soco-snapshot/1"  # soco's Snapshot attributes as written up to this version; read, never written
TRANSPORT_STATES = ("PLAYING", "PAUSED_PLAYBACK", "STOPPED", "TRANSITIONING")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Playback(_Model):
    """What a speaker that coordinated its group (or played alone) was playing."""

    uri: str = Field(max_length=4096)
    metadata: str | None = None
    plays_queue: bool = False
    plays_cloud_queue: bool = False
    track: int = Field(default=0, ge=0)  # 1-based queue position, 0: none
    position: str | None = Field(default=None, max_length=16)  # H:MM:SS into the track
    play_mode: str | None = Field(default=None, max_length=32)
    crossfade: bool | None = None
    transport_state: Literal["PLAYING", "PAUSED_PLAYBACK", "STOPPED", "TRANSITIONING"] | None = None
    # The queue's items as DIDL-Lite (None: not saved, the session left the queue alone); at most
    # MAX_QUEUE_TRACKS of them, starting at queue_start (0-based) of queue_total.
    queue: list[str] | None = None
    queue_start: int = Field(default=0, ge=0)
    queue_total: int = Field(default=0, ge=0)


class SpeakerState(_Model):
    """One speaker of the room: its own volume and sound, and its playback when it coordinated."""

    uid: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=256)
    volume: int = Field(ge=0, le=100)
    mute: bool
    bass: int = Field(default=0, ge=-10, le=10)
    treble: int = Field(default=0, ge=-10, le=10)
    loudness: bool = True
    playback: Playback | None = None  # None: it was a member of a group another speaker coordinated


class Group(_Model):
    """A group as the zone group topology had it: its coordinator and every member (coordinator first)."""

    coordinator: str = Field(min_length=1, max_length=64)
    members: list[str] = Field(min_length=1)
    names: dict[str, str] = Field(default_factory=dict)  # uid -> zone name, for what relaxd reports

    def described(self) -> str:
        return ", ".join(self.names.get(u, u) for u in self.members)

    @model_validator(mode="after")
    def _coordinator_first(self) -> Group:
        if self.members[0] != self.coordinator:
            raise ValueError("the coordinator is the first member of its group")
        return self


class RoomSnapshot(_Model):
    """The room's speakers (in the order the config names them) and the groups they were in."""

    format: Literal["relaxd-sonos/2"] = FORMAT
    speakers: list[SpeakerState] = Field(min_length=1)
    groups: list[Group] = Field(default_factory=list)

    def group_of(self, uid: str) -> Group | None:
        return next((g for g in self.groups if uid in g.members), None)

    def all_groups(self) -> list[Group]:
        """The saved groups, and a group of its own for a speaker the layout did not show."""
        groups = list(self.groups)
        for state in self.speakers:
            if self.group_of(state.uid) is None:
                groups.append(Group(coordinator=state.uid, members=[state.uid]))
        return groups

    @property
    def grouped(self) -> bool:
        return len(self.speakers) > 1 or any(len(g.members) > 1 for g in self.groups)

    def to_data(self) -> SnapshotData:
        data: SnapshotData = self.model_dump(mode="json")
        return data


def from_data(data: Any) -> RoomSnapshot:
    """The snapshot a previous start wrote (this format, or the old one); ValueError when unusable."""
    if not isinstance(data, dict):
        raise ValueError("the saved speaker state is not an object")
    try:
        if data.get("format") == OLD_FORMAT:
            return _from_old(data)
        if data.get("format") != FORMAT:
            raise ValueError(f"not a Sonos snapshot of format {FORMAT}: {str(data.get('format'))[:40]!r}")
        return RoomSnapshot.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None


def _from_old(data: dict[str, Any]) -> RoomSnapshot:
    """A file of the previous version (soco's Snapshot attributes of the room's one speaker)."""
    state = data.get("state")
    uid = data.get("coordinator_uid")
    if not isinstance(state, dict) or not isinstance(uid, str):
        raise ValueError("the saved state is not an object")
    playback = None
    if state.get("is_coordinator", True):
        playback = Playback(
            uri=state.get("media_uri") or "",
            metadata=state.get("media_metadata"),
            plays_queue=bool(state.get("is_playing_queue")),
            plays_cloud_queue=bool(state.get("is_playing_cloud_queue")),
            track=state.get("playlist_position") or 0,
            position=state.get("track_position"),
            play_mode=state.get("play_mode"),
            crossfade=state.get("cross_fade"),
            transport_state=state.get("transport_state"),
            queue=data.get("queue"),
            queue_total=len(data.get("queue") or []),
        )
    speaker = SpeakerState(
        uid=uid,
        volume=state.get("volume"),  # type: ignore[arg-type]  # validated: a bad value is a ValidationError
        mute=state.get("mute"),  # type: ignore[arg-type]
        bass=state.get("bass") or 0,
        treble=state.get("treble") or 0,
        loudness=state.get("loudness", True),
        playback=playback,
    )
    # The old version drove the group's coordinator and never changed the layout: none to restore.
    return RoomSnapshot(speakers=[speaker])

"""State of a simulated Sonos speaker: transport and volume that move with time, groups, inspection."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from relaxd.sim.sonos_didl import BROADCAST_CLASS, Library, Track, seeded_library

PLAY_MODES = ("NORMAL", "REPEAT_ALL", "REPEAT_ONE", "SHUFFLE_NOREPEAT", "SHUFFLE", "SHUFFLE_REPEAT_ONE")
# steps per second and whether the ramp starts from 0, as soco documents the Sonos ramp types
RAMP_TYPES = {
    "SLEEP_TIMER_RAMP_TYPE": (1.25, False),
    "ALARM_RAMP_TYPE": (2.5, True),
    "AUTOPLAY_RAMP_TYPE": (50.0, True),
}


@dataclass(frozen=True)
class SimState:
    """Everything a test may want to know about the speaker, read at one instant."""

    uri: str
    uri_metadata: str
    transport_state: str
    queue: tuple[str, ...]  # track URIs
    track: int  # 1-based queue position (1 for a single stream), 0 when nothing is loaded
    track_uri: str
    position_s: float
    volume: int
    ramping: bool
    mute: bool
    bass: int
    treble: int
    loudness: bool
    play_mode: str
    crossfade: bool
    coordinator_uid: str  # own uid when not grouped under another speaker


@dataclass
class _Ramp:
    start: int
    target: int
    started_at: float
    steps_per_s: float


@dataclass
class Household:
    """Speakers that share a household id, and so one zone group state."""

    household_id: str
    members: list[SpeakerModel] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)


class SpeakerModel:
    """One speaker's state; every read first brings it up to the current time."""

    def __init__(
        self, room_name: str, *, library: Library | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lock = threading.RLock()
        self.room_name = room_name
        hexid = uuid.uuid4().hex[:12].upper()
        self.mac = ":".join(hexid[i : i + 2] for i in range(0, 12, 2))
        self.uid = f"RINCON_{hexid}01400"
        self.library = library if library is not None else seeded_library()
        self.location = ""  # set by the server once it knows its port
        self.household = Household(f"Sonos_{uuid.uuid4().hex[:24]}", [self])
        self.coordinator: SpeakerModel | None = None
        self.vanished = False  # powered off: gone from the household's zone group state
        self._clock = clock
        self.volume = 20
        self._ramp: _Ramp | None = None
        self.pre_ramp_volume = 20
        self.mute = False
        self.bass = 0
        self.treble = 0
        self.loudness = True
        self.uri = ""
        self.uri_metadata = ""
        self.single: Track | None = None  # what a non-queue URI plays
        self.queue: list[Track] = []
        self.queue_update_id = 1
        self.track_nr = 0
        self.transport_state = "STOPPED"
        self._position_base_s = 0.0
        self._playing_since: float | None = None
        self.play_mode = "NORMAL"
        self.crossfade = False

    # --- time -------------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    def tick(self) -> None:
        """Bring ramp and playback up to now (the caller holds the lock)."""
        now = self.now()
        if self._ramp is not None:
            ramp = self._ramp
            steps = int((now - ramp.started_at) * ramp.steps_per_s)
            distance = abs(ramp.target - ramp.start)
            if steps >= distance:
                self.volume, self._ramp = ramp.target, None
            else:
                self.volume = ramp.start + (steps if ramp.target > ramp.start else -steps)
        while self.transport_state == "PLAYING":
            track = self.current_track()
            if track is None or track.duration_s <= 0:
                return
            over_s = self.position_s() - track.duration_s
            if over_s < 0:
                return
            self._advance_after_end(now - over_s)

    def _advance_after_end(self, ended_at: float) -> None:
        self._position_base_s, self._playing_since = 0.0, ended_at
        if self.source_kind() == "cloud" or self.play_mode in ("REPEAT_ONE", "SHUFFLE_REPEAT_ONE"):
            return
        if self.source_kind() == "queue" and self.track_nr < len(self.queue):
            self.track_nr += 1
        elif self.source_kind() == "queue" and self.play_mode in ("REPEAT_ALL", "SHUFFLE"):
            self.track_nr = 1
        else:
            # the end of the queue (or of a single track): back to the start, stopped
            self.track_nr = 1 if self.track_nr else 0
            self.transport_state, self._playing_since = "STOPPED", None

    def position_s(self) -> float:
        if self.transport_state == "PLAYING" and self._playing_since is not None:
            return self._position_base_s + (self.now() - self._playing_since)
        return self._position_base_s

    def set_position(self, position_s: float) -> None:
        self._position_base_s = position_s
        self._playing_since = self.now() if self.transport_state == "PLAYING" else None

    def set_transport(self, state: str) -> None:
        position = self.position_s()
        self.transport_state = state
        self.set_position(0.0 if state == "STOPPED" else position)

    # --- volume -----------------------------------------------------------------------------
    def set_volume(self, volume: int) -> None:
        self._ramp = None
        self.volume = max(0, min(100, volume))

    def start_ramp(self, ramp_type: str, target: int) -> int:
        steps_per_s, from_zero = RAMP_TYPES[ramp_type]
        self.tick()
        start = 0 if from_zero else self.volume
        target = max(0, min(100, target))
        self.volume = start
        self._ramp = _Ramp(start, target, self.now(), steps_per_s)
        return int(abs(target - start) / steps_per_s)

    # --- sources ----------------------------------------------------------------------------
    def queue_uri(self) -> str:
        return f"x-rincon-queue:{self.uid}#0"

    def source_kind(self) -> str:
        uri = self.uri
        if not uri:
            return "none"
        if uri == self.queue_uri():
            return "queue"
        if uri.startswith(("x-rincon-queue:", "x-sonos-vli:")):
            return "cloud"
        if uri.startswith("x-rincon:"):
            return "group"
        if uri.startswith(("x-rincon-stream:", "x-sonos-htastream:")):
            return "input"
        return "stream" if self.single is None or self.single.duration_s == 0 else "track"

    def current_track(self) -> Track | None:
        if self.source_kind() == "queue":
            return self.queue[self.track_nr - 1] if 0 < self.track_nr <= len(self.queue) else None
        return self.single

    def load(self, uri: str, metadata: str, single: Track | None) -> None:
        self.uri, self.uri_metadata, self.single = uri, metadata, single
        self.track_nr = (1 if self.queue else 0) if uri == self.queue_uri() else 1
        self.transport_state = "STOPPED"
        self.set_position(0.0)

    # --- groups -----------------------------------------------------------------------------
    def group_coordinator(self) -> SpeakerModel:
        return self.coordinator if self.coordinator is not None else self

    def zone_group_state_xml(self) -> str:
        groups = []
        for coordinator in self.household.members:
            if coordinator.coordinator is not None or coordinator.vanished:
                continue
            members = [coordinator] + [m for m in self.household.members if m.coordinator is coordinator]
            member_xml = "".join(
                f"<ZoneGroupMember UUID={quoteattr(m.uid)} Location={quoteattr(m.location)} "
                f'ZoneName={quoteattr(m.room_name)} Icon="x-rincon-roomicon:living" '
                'Configuration="1" SoftwareVersion="95.0-77060" SWGen="2" BootSeq="33" '
                'MicEnabled="0" VoiceConfigState="0" IdleState="1" MoreInfo=""/>'
                for m in members
            )
            groups.append(
                f"<ZoneGroup Coordinator={quoteattr(coordinator.uid)} "
                f"ID={quoteattr(coordinator.uid + ':7')}>{member_xml}</ZoneGroup>"
            )
        return (
            f"<ZoneGroupState><ZoneGroups>{''.join(groups)}</ZoneGroups>"
            "<VanishedDevices></VanishedDevices></ZoneGroupState>"
        )

    # --- inspection and the user's hand (the Sonos app) --------------------------------------
    def state(self) -> SimState:
        """The speaker as it is now (a group member reports its coordinator's transport)."""
        leader = self.group_coordinator()
        with self.lock:
            self.tick()
            volume, ramping = self.volume, self._ramp is not None
            mute, bass, treble, loudness = self.mute, self.bass, self.treble, self.loudness
        with leader.lock:
            leader.tick()
            track = leader.current_track()
            return SimState(
                uri=self.uri if leader is self else f"x-rincon:{leader.uid}",
                uri_metadata=leader.uri_metadata,
                transport_state=leader.transport_state,
                queue=tuple(t.uri for t in leader.queue),
                track=leader.track_nr,
                track_uri=track.uri if track else "",
                position_s=leader.position_s(),
                volume=volume,
                ramping=ramping,
                mute=mute,
                bass=bass,
                treble=treble,
                loudness=loudness,
                play_mode=leader.play_mode,
                crossfade=leader.crossfade,
                coordinator_uid=leader.uid,
            )

    def hand_set_volume(self, volume: int) -> None:
        """The user turns the volume in the Sonos app (this also ends a running ramp)."""
        with self.lock:
            self.set_volume(volume)

    def hand_set_mute(self, mute: bool) -> None:
        with self.lock:
            self.mute = mute

    def hand_play_uri(self, uri: str, title: str = "") -> None:
        """The user starts a station or track from the app."""
        with self.lock:
            known = self.library.track(uri)
            self.load(uri, "", known or Track(uri, title or uri, upnp_class=BROADCAST_CLASS))
            self.set_transport("PLAYING")

    def hand_pause(self) -> None:
        with self.lock:
            self.tick()
            if self.transport_state == "PLAYING":
                self.set_transport("PAUSED_PLAYBACK")

    def load_queue(
        self,
        uris: list[str] | None = None,
        *,
        track: int = 1,
        position_s: float = 0.0,
        transport_state: str = "PLAYING",
    ) -> None:
        """Set the speaker up playing (or paused/stopped in) its queue, by library track URIs."""
        with self.lock:
            chosen = uris if uris is not None else [t.uri for t in self.library.tracks if "/Music/Pop/" in t.uri]
            self.queue = [self.library.track(u) or Track(u, u.rpartition("/")[2], duration_s=200) for u in chosen]
            self.queue_update_id += 1
            self.load(self.queue_uri(), "", None)
            self.track_nr = track
            self.transport_state = transport_state
            self.set_position(position_s)

    def start_cloud_queue(self, service: str = "spotify") -> None:
        """Spotify Connect (or an Alexa cloud queue) playing: nobody can restart it by URI."""
        with self.lock:
            uri = (
                f"x-sonos-vli:{self.uid}:2,spotify:5f7d3c1e9a2b4d6f"
                if service == "spotify"
                else f"x-rincon-queue:{self.uid}#8"
            )
            track = Track(
                "x-sonos-spotify:spotify%3atrack%3a4uLU6hMCjMI75M1A2tKUQC?sid=9",
                "Unwind",
                "Cloud Artist",
                "Cloud Album",
                240,
            )
            self.load(uri, "", track)
            self.set_transport("PLAYING")

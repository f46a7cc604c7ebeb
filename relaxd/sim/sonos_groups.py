"""Zone groups of the simulated Sonos household: join, leave, delegate coordination, power off and on."""

from __future__ import annotations

from relaxd.sim.sonos_soap import UPnPError
from relaxd.sim.sonos_state import SpeakerModel

GROUP_URI_PREFIX = "x-rincon:"
# A layout: {coordinator uid: member uids (the coordinator first, then in household order)}.
Layout = dict[str, tuple[str, ...]]


def members_of(coordinator: SpeakerModel) -> list[SpeakerModel]:
    """The coordinator and the speakers grouped under it, in household order."""
    return [coordinator] + [m for m in coordinator.household.members if m.coordinator is coordinator]


def layout(speaker: SpeakerModel) -> Layout:
    """Every group of the speaker's household (what GetZoneGroupState says), vanished speakers left out."""
    return {
        c.uid: tuple(m.uid for m in members_of(c))
        for c in speaker.household.members
        if c.coordinator is None and not c.vanished
    }


def _by_uid(speaker: SpeakerModel, uid: str) -> SpeakerModel | None:
    return next((m for m in speaker.household.members if m.uid == uid and not m.vanished), None)


def _hand_over(old: SpeakerModel, new: SpeakerModel) -> None:
    """new takes old's playback without a gap: a copy of the queue, the source, track, position and
    play state; old's own queue stays as it was (Sonos copies a queue when coordination moves)."""
    old.tick()
    queue_uri = old.uri == old.queue_uri()
    new.queue = list(old.queue)
    new.queue_update_id += 1
    new.uri = new.queue_uri() if queue_uri else old.uri
    new.uri_metadata, new.single = old.uri_metadata, old.single
    new.track_nr, new.play_mode, new.crossfade = old.track_nr, old.play_mode, old.crossfade
    new.transport_state = old.transport_state
    new.set_position(old.position_s())


def _standalone(speaker: SpeakerModel) -> None:
    """The speaker alone again, silent, back on its own queue (or nothing)."""
    speaker.coordinator = None
    speaker.tick()
    if speaker.uri.startswith(GROUP_URI_PREFIX) or not speaker.uri:
        speaker.load(speaker.queue_uri() if speaker.queue else "", "", None)
    speaker.set_transport("STOPPED")


def delegate(old: SpeakerModel, new: SpeakerModel, rejoin: bool) -> None:
    """Coordination of old's group moves to new (a member of it); old stays in as a member or leaves."""
    members = members_of(old)
    if new is old or new not in members:
        raise UPnPError(402, "Invalid Args")
    with old.lock, new.lock:
        _hand_over(old, new)
        new.coordinator = None
        for member in members:
            if member is not new and member is not old:
                member.coordinator = new
        if rejoin:
            old.coordinator = new
            old.uri = GROUP_URI_PREFIX + new.uid
        else:
            _standalone(old)


def leave(speaker: SpeakerModel) -> str:
    """BecomeCoordinatorOfStandaloneGroup: the speaker alone; a coordinator's group plays on under its
    first member, who inherits the playback. Returns the uid coordination was handed to, or ""."""
    others = members_of(speaker)[1:] if speaker.coordinator is None else []
    if others:
        delegate(speaker, others[0], rejoin=False)
        return others[0].uid
    with speaker.lock:
        _standalone(speaker)
    return ""


def join(speaker: SpeakerModel, uid: str) -> None:
    """SetAVTransportURI(x-rincon:<uid>): the speaker joins the group <uid> coordinates."""
    target = _by_uid(speaker, uid)
    if target is None or target is speaker:
        raise UPnPError(402, "Invalid Args")
    if target.coordinator is not None:
        target = target.coordinator  # Sonos joins the group of the member named
    if speaker.coordinator is None and members_of(speaker)[1:]:
        leave(speaker)  # its own group plays on without it
    with speaker.lock:
        speaker.tick()
        if speaker.transport_state == "PLAYING":
            speaker.set_transport("STOPPED")
        speaker.coordinator = target
        speaker.uri = GROUP_URI_PREFIX + target.uid


def power_off(speaker: SpeakerModel) -> None:
    """The speaker vanishes from the household: its group plays on under another member."""
    if speaker.coordinator is None:
        leave(speaker)
    else:
        with speaker.lock:
            _standalone(speaker)
    speaker.vanished = True


def power_on(speaker: SpeakerModel) -> None:
    """Back in the household, on its own (as a speaker that was unplugged comes back)."""
    speaker.vanished = False
    speaker.coordinator = None


def same_household(*speakers: SpeakerModel) -> None:
    """Put every speaker in the first one's household, each in a group of its own."""
    home = speakers[0].household
    for speaker in speakers[1:]:
        if speaker.household is home:
            continue
        speaker.household.members.remove(speaker)
        speaker.household = home
        home.members.append(speaker)
        speaker.coordinator = None

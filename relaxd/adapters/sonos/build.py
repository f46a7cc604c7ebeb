"""The Sonos side of a config: each room's speakers as one Speaker."""

from __future__ import annotations

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos.speaker import SonosSpeaker, SpeakerRef
from relaxd.core.config import RoomConfig, Settings
from relaxd.core.ports import Speaker


def build_speakers(settings: Settings, calls: BlockingCalls) -> dict[str, Speaker | None]:
    """Each room's Speaker (None for a room without one); no I/O."""
    # Sonos has no timeout key of its own: the Hue one (default 5 s) bounds every device request.
    timeout_s = settings.hue.timeout if settings.hue is not None else 5.0
    return {room_id: build_speaker(room, calls, timeout_s) for room_id, room in settings.rooms.items()}


def build_speaker(room: RoomConfig, calls: BlockingCalls, timeout_s: float) -> Speaker | None:
    """The room's speaker, or its several speakers grouped under the first one named."""
    configured = room.speaker_list()
    if not configured:
        return None
    first, *more = configured
    return SonosSpeaker(
        host=first.host,
        name=first.name,
        max_volume=room.max_volume,
        timeout_s=timeout_s,
        calls=calls,
        also=[SpeakerRef(host=s.host, name=s.name) for s in more],
        music=room.music.source() if room.music is not None else None,
        snapshot_queue=None,  # saved only when the room's music replaces it
    )

"""The Sonos side of a config: each room's speaker."""

from __future__ import annotations

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos.speaker import SonosSpeaker
from relaxd.core.config import Settings
from relaxd.core.ports import Speaker


def build_speakers(settings: Settings, calls: BlockingCalls) -> dict[str, Speaker | None]:
    """Each room's Speaker (None for a room without one); no I/O."""
    # Sonos has no timeout key of its own: the Hue one (default 5 s) bounds every device request.
    timeout_s = settings.hue.timeout if settings.hue is not None else 5.0
    speakers: dict[str, Speaker | None] = {}
    for room_id, room in settings.rooms.items():
        speakers[room_id] = None
        if room.speaker is not None:
            speakers[room_id] = SonosSpeaker(
                host=room.speaker.host,
                name=room.speaker.name,
                max_volume=room.max_volume,
                timeout_s=timeout_s,
                calls=calls,
            )
    return speakers

"""The Hue side of a config: one coordinator per bridge, shared by its rooms, and each room's lights."""

from __future__ import annotations

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue.bridge import HueBridge
from relaxd.adapters.hue.lights import HueLights
from relaxd.core.config import Settings
from relaxd.core.ports import Lights


def build_lights(settings: Settings, calls: BlockingCalls) -> dict[str, Lights | None]:
    """Each room's Lights (None for a room without lights or without a bridge); no I/O."""
    bridge = None
    if settings.hue is not None:
        bridge = HueBridge(
            settings.hue.host,
            settings.hue.username.get_secret_value(),
            calls=calls,
            https=settings.hue.https,
            timeout_s=settings.hue.timeout,
        )
    lights: dict[str, Lights | None] = {}
    for room_id, room in settings.rooms.items():
        lights[room_id] = None
        if room.lights is not None and bridge is not None:
            lights[room_id] = HueLights(bridge, group=room.lights.group, names=room.lights.names)
    return lights

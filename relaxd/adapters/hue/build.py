"""The Hue side of a config: one coordinator per bridge, shared by its rooms, and each room's lights."""

from __future__ import annotations

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue.bridge import HueBridge
from relaxd.adapters.hue.identity import Identity
from relaxd.adapters.hue.lights import HueLights
from relaxd.adapters.hue.several import SeveralBridgesLights
from relaxd.core.config import Settings
from relaxd.core.hue_config import BridgeSettings, lights_problems
from relaxd.core.ports import Lights


def build_bridge(bridge: BridgeSettings, calls: BlockingCalls) -> HueBridge:
    """One bridge's coordinator (its own pacing, connections and identity); no I/O."""
    identity = Identity(
        bridge_id=bridge.bridge_id, fingerprint=bridge.fingerprint, verify=bridge.verify, ca_file=bridge.ca_file
    )
    return HueBridge(
        bridge.host,
        bridge.username,
        calls=calls,
        https=bridge.https,
        timeout_s=bridge.timeout,
        identity=identity,
        name=bridge.name,
    )


def build_lights(settings: Settings, calls: BlockingCalls) -> dict[str, Lights | None]:
    """Each room's Lights (None for a room without lights or without a bridge); no I/O.

    ValueError for a room whose lights name a bridge that is not configured (check-config says so too)."""
    hue = settings.hue
    problems = lights_problems(hue, settings.rooms)
    if problems:
        raise ValueError("; ".join(problems))
    bridges = {name: build_bridge(b, calls) for name, b in hue.bridge_settings().items()} if hue else {}
    lights: dict[str, Lights | None] = {}
    for room_id, room in settings.rooms.items():
        lights[room_id] = None
        if room.lights is None or not bridges:
            continue
        parts = {part.bridge or next(iter(bridges)): part for part in room.lights.all_parts()}
        each = {name: HueLights(bridges[name], group=p.group, names=p.names) for name, p in parts.items()}
        lights[room_id] = next(iter(each.values())) if len(each) == 1 else SeveralBridgesLights(each)
    return lights

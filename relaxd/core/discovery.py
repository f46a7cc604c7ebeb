"""Home Assistant MQTT discovery: a daemon device and one device per room, unique per site (base topic)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relaxd import __version__
from relaxd.core.config import ROOM_ID_RE, Settings
from relaxd.core.discovery_entities import EntityConfigs, daemon_entities, room_entities
from relaxd.core.routines import Routine
from relaxd.core.topics import Topics

MANUFACTURER = "relaxd"
ROOM_MODEL = "relaxd massage room"
DAEMON_MODEL = "relaxd daemon"
DEFAULT_BASE = "relaxd"
ORIGIN = {"name": "relaxd", "sw_version": __version__}
# Keys of an entity's config that say how to build its availability; never sent to Home Assistant.
_EXTRA_AVAILABILITY, _ALWAYS_AVAILABLE = "extra_availability", "always_available"
_OLD_NODE = re.compile(r"^relaxd_([a-z0-9_]{1,32})$")  # discovery of older relaxd: no site in the node id


def site_id(base_topic: str) -> str:
    """The base topic as a discovery node id: `relaxd` stays `relaxd`; a base topic with characters a
    node id cannot have (`site1/relaxd`) is slugged and gets a hash, so two sites never share one."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", base_topic).strip("_")
    if slug == base_topic:
        return slug
    return f"{slug or 'site'}_{hashlib.sha1(base_topic.encode()).hexdigest()[:6]}"


@dataclass(frozen=True)
class Identity:
    """The names a site's discovery uses; every one includes the site id (rooms may repeat across sites).

    A room's node is `<site>-<room>`, the daemon's `<site>`: site ids have no `-`, so neither parse
    is ambiguous."""

    topics: Topics

    @property
    def site(self) -> str:
        return site_id(self.topics.base)

    @property
    def daemon_identifier(self) -> str:
        return f"relaxd-{self.site}"

    def room_identifier(self, room: str) -> str:
        return f"relaxd-{self.site}-{room}"

    def node(self, room: str | None) -> str:
        return self.site if room is None else f"{self.site}-{room}"

    def config_topic(self, component: str, room: str | None, object_id: str) -> str | None:
        return self.topics.ha_config(component, self.node(room), object_id)

    def room_of_identifier(self, identifier: str) -> str | None:
        prefix = self.room_identifier("")
        room = identifier[len(prefix) :] if identifier.startswith(prefix) else ""
        return room if ROOM_ID_RE.match(room) else None


def _label(room: str) -> str:
    return room.replace("_", " ")


def room_device(identity: Identity, room: str) -> dict[str, Any]:
    base = identity.topics.base
    name = f"relaxd {_label(room)}" if base == DEFAULT_BASE else f"relaxd {base} {_label(room)}"
    return {
        "identifiers": [identity.room_identifier(room)],
        "name": name,
        "manufacturer": MANUFACTURER,
        "model": ROOM_MODEL,
        "sw_version": __version__,
        "suggested_area": _label(room).title(),
        "via_device": identity.daemon_identifier,
    }


def daemon_device(identity: Identity) -> dict[str, Any]:
    base = identity.topics.base
    return {
        "identifiers": [identity.daemon_identifier],
        "name": "relaxd" if base == DEFAULT_BASE else f"relaxd {base}",
        "manufacturer": MANUFACTURER,
        "model": DAEMON_MODEL,
        "sw_version": __version__,
    }


def _config(identity: Identity, entity: dict[str, Any], object_id: str, unique: str, device: dict[str, Any]) -> str:
    body = {k: v for k, v in entity.items() if k not in (_EXTRA_AVAILABILITY, _ALWAYS_AVAILABLE)}
    body.update(
        unique_id=f"relaxd-{unique}-{object_id}",
        object_id=f"{unique.replace('-', '_')}_{object_id}",  # entity ids like switch.relaxd_bedroom_massage_mode
        device=device,
        origin=ORIGIN,
        qos=1,
    )
    if not entity.get(_ALWAYS_AVAILABLE):
        daemon = {"topic": identity.topics.status, "payload_available": "online", "payload_not_available": "offline"}
        extra = entity.get(_EXTRA_AVAILABILITY)
        body["availability"] = [daemon, extra] if extra else [daemon]
        if extra:
            body["availability_mode"] = "all"  # unavailable while relaxd is offline OR the room cannot act
    return json.dumps(body, sort_keys=True)


def discovery_messages(settings: Settings, topics: Topics, routines: Mapping[str, Routine]) -> list[tuple[str, str]]:
    """(topic, JSON config) for the daemon's and every room's entities, to publish retained; [] when off."""
    if topics.discovery_prefix is None:
        return []
    identity = Identity(topics)
    messages: list[tuple[str, str]] = []

    def add(entities: EntityConfigs, room: str | None, device: dict[str, Any]) -> None:
        for (component, object_id), entity in entities.items():
            topic = identity.config_topic(component, room, object_id)
            if topic is not None:
                messages.append((topic, _config(identity, entity, object_id, identity.node(room), device)))

    add(daemon_entities(topics, list(settings.rooms)), None, daemon_device(identity))
    for room, cfg in settings.rooms.items():
        add(room_entities(topics, room, cfg, routines), room, room_device(identity, room))
    return messages


@dataclass(frozen=True)
class Seen:
    """A retained discovery config this site announced: `room` is its room, None for the daemon's."""

    room: str | None


def _parts(topic: str, topics: Topics) -> list[str] | None:
    parts = topic.split("/")
    prefix = topics.discovery_prefix
    if prefix is None or len(parts) < 4 or parts[-1] != "config" or "/".join(parts[:-4]) != prefix:
        return None
    return parts if all(parts[-4:]) else None


def ours(topic: str, payload: bytes, topics: Topics) -> Seen | None:
    """The owner of a retained discovery config if THIS site announced it (now or as an older relaxd), else None.

    Several daemons (one per site, other base topics) share one broker and prefix: a config counts only
    when its device identifiers are this site's, or (older configs, which had no site) when its
    availability topic is this site's status. Empty payloads (already removed) give None.
    """
    parts = _parts(topic, topics)
    if parts is None or not payload:
        return None
    try:
        config = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(config, dict):
        return None
    identity = Identity(topics)
    device = config.get("device")
    identifiers = device.get("identifiers") if isinstance(device, dict) else None
    if isinstance(identifiers, list):
        for identifier in identifiers:
            if identifier == identity.daemon_identifier:
                return Seen(None)
            if isinstance(identifier, str) and (room := identity.room_of_identifier(identifier)) is not None:
                return Seen(room)
    old = _OLD_NODE.match(parts[-3])
    if old is not None and config.get("availability_topic") == topics.status:
        return Seen(old.group(1))
    return None

"""Home Assistant MQTT discovery: one device per room with its switch, select, sensors and buttons."""

from __future__ import annotations

import json
from typing import Any

from relaxd import __version__
from relaxd.core.config import ROOM_ID_RE, Settings
from relaxd.core.topics import Topics

MANUFACTURER = "relaxd"
MODEL = "relaxd massage room"
ORIGIN = {"name": "relaxd", "sw_version": __version__}

# (component, object_id) of every entity a room announces; removal clears all of them.
ENTITIES: tuple[tuple[str, str], ...] = (
    ("switch", "massage_mode"),
    ("select", "routine"),
    ("sensor", "phase"),
    ("sensor", "session_end"),
    ("sensor", "next_session"),
    ("button", "skip_phase"),
    ("button", "extend"),
)


def _device(room: str) -> dict[str, Any]:
    return {
        "identifiers": [f"relaxd_{room}"],
        "name": f"relaxd {room.replace('_', ' ')}",
        "manufacturer": MANUFACTURER,
        "model": MODEL,
        "sw_version": __version__,
    }


def _timestamp_sensor(name: str, state_topic: str, field: str) -> dict[str, Any]:
    # A JSON null renders as "None", which Home Assistant takes as "unknown".
    return {
        "name": name,
        "device_class": "timestamp",
        "state_topic": state_topic,
        "value_template": f"{{{{ value_json.{field} }}}}",
    }


EntityConfigs = dict[tuple[str, str], dict[str, Any]]


def room_entities(topics: Topics, room: str, routine_names: list[str]) -> EntityConfigs:
    """The entity configs of one room without the shared keys (device, availability, origin)."""
    state, command = topics.state(room), topics.set(room)
    entities: EntityConfigs = {
        ("switch", "massage_mode"): {
            "name": "Massage mode",
            "icon": "mdi:spa",
            "state_topic": state,
            # Massage mode is on for the whole session, restore included; only idle is off.
            "value_template": "{{ 'OFF' if value_json.state == 'idle' else 'ON' }}",
            "state_on": "ON",
            "state_off": "OFF",
            "command_topic": command,
            "payload_on": "start",
            "payload_off": "stop",
        },
        ("sensor", "phase"): {"name": "Phase", "icon": "mdi:hand-back-right", "state_topic": topics.phase(room)},
        ("sensor", "session_end"): _timestamp_sensor("Session end", state, "session_ends_at"),
        ("sensor", "next_session"): _timestamp_sensor("Next session", state, "next_session_at"),
        ("button", "skip_phase"): {
            "name": "Skip phase",
            "icon": "mdi:skip-next",
            "command_topic": command,
            "payload_press": "skip",
        },
        ("button", "extend"): {
            "name": "Extend 5 min",
            "icon": "mdi:timer-plus-outline",
            "command_topic": command,
            "payload_press": "extend",
        },
    }
    if routine_names:  # Home Assistant rejects a select without options
        entities[("select", "routine")] = {
            "name": "Routine",
            "icon": "mdi:format-list-numbered",
            "options": list(routine_names),
            "state_topic": state,
            "value_template": "{{ value_json.routine }}",
            "command_topic": topics.routine_set(room),
        }
    return entities


def discovery_messages(settings: Settings, topics: Topics, routine_names: list[str]) -> list[tuple[str, str]]:
    """(topic, JSON config) for every entity of every room, to publish retained; [] when discovery is off."""
    if topics.discovery_prefix is None:
        return []
    messages: list[tuple[str, str]] = []
    for room in settings.rooms:
        device = _device(room)
        entities = room_entities(topics, room, routine_names)
        for component, object_id in ENTITIES:
            entity = entities.get((component, object_id))
            topic = topics.ha_config(component, room, object_id)
            if entity is None or topic is None:
                continue
            config = {
                **entity,
                "unique_id": f"relaxd_{room}_{object_id}",
                "device": device,
                "origin": ORIGIN,
                "availability_topic": topics.status,
                "payload_available": "online",
                "payload_not_available": "offline",
                "qos": 1,
            }
            messages.append((topic, json.dumps(config, sort_keys=True)))
    return messages


def removal_messages(topics: Topics, room_ids: list[str]) -> list[tuple[str, str]]:
    """Empty retained payloads that make Home Assistant forget every entity of these rooms."""
    messages: list[tuple[str, str]] = []
    for room in room_ids:
        for component, object_id in ENTITIES:
            topic = topics.ha_config(component, room, object_id)
            if topic is not None:
                messages.append((topic, ""))
    return messages


def rooms_in_discovery_topic(topic: str, topics: Topics | None = None) -> str | None:
    """The room of a `<prefix>/<component>/relaxd_<room>/<object_id>/config` topic relaxd announced.

    With topics, the prefix must be its discovery prefix too; messages from the
    `ha_config_wildcard` subscription that belong to other integrations give None.
    """
    parts = topic.split("/")
    if len(parts) < 5 or parts[-1] != "config" or not parts[-2] or not parts[-4]:
        return None
    if topics is not None and "/".join(parts[:-4]) != topics.discovery_prefix:
        return None
    node = parts[-3]
    if not node.startswith("relaxd_"):
        return None
    room = node[len("relaxd_") :]
    return room if ROOM_ID_RE.match(room) else None


def room_of_discovery_message(topic: str, payload: bytes, topics: Topics) -> str | None:
    """The room of a retained discovery config that THIS daemon announced, else None.

    Several daemons (one per site, other base topics) may share one broker and discovery prefix;
    their rooms must not be removed, so a config counts only when its availability topic is ours.
    Empty payloads (already removed) give None.
    """
    room = rooms_in_discovery_topic(topic, topics)
    if room is None or not payload:
        return None
    try:
        config = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(config, dict) or config.get("availability_topic") != topics.status:
        return None
    return room

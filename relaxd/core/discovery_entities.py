"""The Home Assistant entities of a room device and of the daemon device, as discovery config bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from relaxd import __version__
from relaxd.core.config import RoomConfig
from relaxd.core.events import EVENT_NAMES
from relaxd.core.routines import Routine
from relaxd.core.topics import Topics

EntityConfigs = dict[tuple[str, str], dict[str, Any]]
ROOM_STATES = ("idle", "running", "paused", "restoring")
DIAGNOSTIC = "diagnostic"
MAX_EXTEND_MINUTES = 240  # what a JSON extend command accepts (Command.minutes)

# HA's own "no value" payload: MQTT entities show `unknown` for it.
NONE = "None"
# A template that includes a template that cannot exist fails, and an MQTT sensor whose template fails
# leaves its state as it is, without a word. Timestamp sensors need that: HA before 2024.10 logs
# "Invalid state message" for `None` on them, so `None` goes out only when a time becomes null (to
# clear it), and a null that stays null changes nothing (no warning on any HA version).
_UNCHANGED = "{% include 'relaxd: state unchanged' %}"


def _timestamp_template(field: str) -> str:
    return (
        f"{{% if value_json.{field} %}}{{{{ value_json.{field} }}}}"
        f"{{% elif this.state in ['unknown', 'unavailable'] %}}{_UNCHANGED}"
        f"{{% else %}}{NONE}{{% endif %}}"
    )


def _in_states(states: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{s}'" for s in states) + "]"


def _jinja_string(text: str) -> str:
    # Jinja decodes backslash escapes in string literals: double them so from_json gets the text as is.
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def acting_availability(topics: Topics, room: str, states: tuple[str, ...]) -> dict[str, str]:
    """Availability on the state topic: online only in the room states where the command can act."""
    return {
        "topic": topics.state(room),
        "value_template": f"{{{{ 'online' if value_json.state in {_in_states(states)} else 'offline' }}}}",
    }


def phase_options(routines: Mapping[str, Routine]) -> list[str]:
    """Every phase name of every routine (once, in routine order), then `idle` and `restoring`."""
    names: list[str] = []
    for routine in routines.values():
        names.extend(p.name for p in routine.phases if p.name not in names)
    return [*names, *(s for s in ("idle", "restoring") if s not in names)]


def phase_attributes_template(routines: Mapping[str, Routine]) -> str:
    """The phase sensor's attributes from the state payload, with technique, intensity and cues looked up
    in the routines (the state payload names the routine and the phase index, not the phase's details)."""
    table = {
        name: [{"technique": p.technique_name, "intensity": p.intensity, "cues": p.cues} for p in routine.phases]
        for name, routine in routines.items()
    }
    literal = _jinja_string(json.dumps(table, separators=(",", ":"), sort_keys=True))
    return (
        f"{{% set phases = ({literal} | from_json).get(value_json.routine, []) %}}"
        "{% set i = value_json.phase_index %}"
        "{% set p = phases[i] if value_json.phase is not none and i is number and 0 <= i < phases | length "
        "else {} %}"
        "{{ {'routine': value_json.routine, 'phase_index': i, 'phase_count': value_json.phase_count,"
        " 'phase_started_at': value_json.phase_started_at, 'phase_ends_at': value_json.phase_ends_at,"
        " 'technique': p.get('technique'), 'intensity': p.get('intensity'), 'cues': p.get('cues')} | tojson }}"
    )


def routine_template(options: list[str]) -> str:
    """The routine the next start uses: `next_routine` once the state payload has it; until then the
    idle room's `routine` (during a session that is the session's, so the select keeps its state)."""
    return (
        "{% set r = value_json.next_routine if value_json.next_routine is defined else "
        "(value_json.routine if value_json.state == 'idle' else this.state) %}"
        f"{{{{ r if r in {_in_states(tuple(options))} else '{NONE}' }}}}"
    )


def room_entities(topics: Topics, room: str, cfg: RoomConfig, routines: Mapping[str, Routine]) -> EntityConfigs:
    """The entity configs of one room, without the keys every entity shares (device, availability...)."""
    state, command = topics.state(room), topics.set(room)
    session = acting_availability(topics, room, ("running", "paused"))
    running, paused = acting_availability(topics, room, ("running",)), acting_availability(topics, room, ("paused",))
    entities: EntityConfigs = {
        ("switch", "massage_mode"): {
            "name": "Massage mode",
            "icon": "mdi:spa",
            "state_topic": state,
            # On while a session runs or is paused; the restore fade after a stop is already off.
            "value_template": f"{{{{ 'ON' if value_json.state in {_in_states(('running', 'paused'))} else 'OFF' }}}}",
            "command_topic": command,
            "payload_on": "start",
            "payload_off": "stop",
        },
        ("sensor", "phase"): {
            "name": "Phase",
            "icon": "mdi:hand-back-right",
            "device_class": "enum",
            "options": phase_options(routines),
            "state_topic": topics.phase(room),
            "json_attributes_topic": state,
            "json_attributes_template": phase_attributes_template(routines),
        },
        ("sensor", "state"): {
            "name": "State",
            "icon": "mdi:state-machine",
            "device_class": "enum",
            "options": list(ROOM_STATES),
            "state_topic": state,
            "value_template": "{{ value_json.state }}",
        },
        ("sensor", "phase_end"): _timestamp("Phase end", "mdi:timer-sand", state, "phase_ends_at"),
        ("sensor", "session_end"): _timestamp("Session end", "mdi:timer-outline", state, "session_ends_at"),
        ("sensor", "next_session"): _timestamp("Next session", "mdi:calendar-clock", state, "next_session_at"),
        ("button", "pause"): _button("Pause", "mdi:pause", command, "pause", running),
        ("button", "resume"): _button("Resume", "mdi:play", command, "resume", paused),
        ("button", "skip_phase"): _button("Skip phase", "mdi:skip-next", command, "skip", session),
        ("button", "extend"): _button("Extend 5 min", "mdi:timer-plus-outline", command, "extend", session),
        ("number", "extend_by"): {
            "name": "Extend by",
            "icon": "mdi:timer-plus",
            "command_topic": command,
            "command_template": '{"action": "extend", "minutes": {{ value }}}',
            "min": 1,
            "max": MAX_EXTEND_MINUTES,
            "step": 1,
            "mode": "box",
            "unit_of_measurement": "min",
            "extra_availability": session,
        },
        ("event", "event"): {
            "name": "Event",
            "icon": "mdi:bell-ring-outline",
            "state_topic": topics.event(room),
            "event_types": list(EVENT_NAMES),
            # HA reads the type from `event_type`; the payload's other keys become the event's attributes.
            "value_template": "{{ dict(value_json, event_type=value_json.event) | tojson }}",
        },
    }
    if routines:  # Home Assistant rejects a select without options
        options = list(routines)
        entities[("select", "routine")] = {
            "name": "Routine",
            "icon": "mdi:format-list-numbered",
            "options": options,
            "state_topic": state,
            "value_template": routine_template(options),
            "command_topic": topics.routine_set(room),
        }
    for device, present in (("lights", cfg.lights is not None), ("speaker", bool(cfg.speaker_list()))):
        if present:
            entities[("binary_sensor", device)] = {
                "name": device.capitalize(),
                "icon": "mdi:lightbulb-group" if device == "lights" else "mdi:speaker",
                "device_class": "connectivity",
                "entity_category": DIAGNOSTIC,
                "state_topic": state,
                "value_template": f"{{{{ 'ON' if value_json.devices.get('{device}') == 'online' else 'OFF' }}}}",
            }
    return entities


def daemon_entities(topics: Topics, rooms: list[str]) -> EntityConfigs:
    """The daemon device (like Zigbee2MQTT's bridge): whether it runs, its version, its rooms."""
    return {
        ("binary_sensor", "status"): {
            "name": "Status",
            "device_class": "connectivity",
            "entity_category": DIAGNOSTIC,
            "state_topic": topics.status,
            "payload_on": "online",
            "payload_off": "offline",
            "always_available": True,  # `offline` is a state to show, not a reason to hide it
        },
        ("sensor", "version"): {
            "name": "Version",
            "icon": "mdi:information-outline",
            "entity_category": DIAGNOSTIC,
            "state_topic": topics.status,
            "value_template": f"{{{{ '{__version__}' }}}}",
        },
        ("sensor", "rooms"): {
            "name": "Rooms",
            "icon": "mdi:floor-plan",
            "entity_category": DIAGNOSTIC,
            "state_topic": topics.status,
            "value_template": f"{{{{ {len(rooms)} }}}}",
            "json_attributes_topic": topics.status,
            "json_attributes_template": "{{ " + json.dumps({"rooms": rooms}) + " | tojson }}",
        },
    }


def _timestamp(name: str, icon: str, state_topic: str, field: str) -> dict[str, Any]:
    return {
        "name": name,
        "icon": icon,
        "device_class": "timestamp",
        "state_topic": state_topic,
        "value_template": _timestamp_template(field),
    }


def _button(name: str, icon: str, command_topic: str, payload: str, when: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "icon": icon,
        "command_topic": command_topic,
        "payload_press": payload,
        "extra_availability": when,
    }

"""Every discovery payload through Home Assistant's own schemas and template engine (HA venv subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from relaxd.core.config import Settings
from relaxd.core.configfile import all_routines
from relaxd.core.discovery import discovery_messages
from relaxd.core.events import EVENT_NAMES
from relaxd.core.topics import Topics

ROOT = Path(__file__).resolve().parent.parent
HA_VENV = Path(os.environ.get("RELAXD_HA_VENV", ROOT / ".venv-ha"))
HA_PYTHON = HA_VENV / "bin" / "python"
VALIDATOR = Path(__file__).with_name("ha") / "validate.py"

pytestmark = pytest.mark.skipif(
    not HA_PYTHON.exists() and not os.environ.get("CI"),
    reason="no Home Assistant venv; run `bash tests/ha/setup.sh` (CI always does)",
)

# Names and cues that a template has to carry through quoting: quotes, backslashes, non-ASCII, nulls.
TRICKY_ROUTINE = {
    "description": "quotes everywhere",
    "phases": [
        {"name": "Warm 'up'", "duration": "1m", "technique": 'say "hi"', "cues": {"path": "C:\\temp", "x": None}},
        {"name": "Détente \\ calme", "duration": "1m", "intensity": 0.9, "cues": {"heat": 3, "list": [1, "a'b"]}},
    ],
}


def settings(**extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "hue": {"host": "127.0.0.1:9", "username": "u"},
            "rooms": {
                "bedroom": {"lights": {"group": "Bedroom"}, "speaker": {"host": "127.0.0.1:9"}},
                "studio_2": {"speaker": {"name": "Studio"}},
                "attic": {"lights": {"names": ["a"]}},
            },
            "routines": {"tricky": TRICKY_ROUTINE},
            **extra,
        }
    )


def sample_states(cfg: Settings) -> list[dict[str, Any]]:
    """Idle with every null, then every phase of every routine running and paused, restoring, devices lost."""
    idle: dict[str, Any] = {
        "room": "bedroom",
        "state": "idle",
        "session_id": None,
        "routine": "classic",
        "phase": None,
        "phase_index": None,
        "phase_count": None,
        "phase_started_at": None,
        "phase_ends_at": None,
        "session_started_at": None,
        "session_ends_at": None,
        "next_session_at": None,
        "devices": {"lights": "online", "speaker": "online"},
    }
    states = [idle, {**idle, "devices": {}}, {**idle, "next_session_at": "2026-12-01T18:00:00.000Z"}]
    states.append({**idle, "state": "restoring", "devices": {"lights": "offline", "speaker": "offline"}})
    states.append({**idle, "next_routine": "quick"})  # the field the select prefers once the state has it
    for name, routine in all_routines(cfg).items():
        for i, phase in enumerate(routine.phases):
            running = {
                **idle,
                "state": "running",
                "session_id": "s1",
                "routine": name,
                "phase": phase.name,
                "phase_index": i,
                "phase_count": len(routine.phases),
                "phase_started_at": "2026-12-01T10:00:00.000Z",
                "phase_ends_at": "2026-12-01T10:05:00.123Z",
                "session_started_at": "2026-12-01T10:00:00.000Z",
                "session_ends_at": "2026-12-01T11:00:00.000Z",
            }
            states += [running, {**running, "state": "paused", "phase_ends_at": None}]
    return states


def run_validator(payload: dict[str, Any]) -> dict[str, Any]:
    assert HA_PYTHON.exists(), f"{HA_PYTHON} missing: CI must run tests/ha/setup.sh first"
    done = subprocess.run(
        [str(HA_PYTHON), str(VALIDATOR)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def validate(messages: list[tuple[str, str]], cfg: Settings) -> dict[str, Any]:
    events = [{"event": name, "room": "bedroom", "at": "2026-12-01T10:00:00.000Z", "seq": 1} for name in EVENT_NAMES]
    return run_validator({"messages": messages, "states": sample_states(cfg), "events": events})


@pytest.mark.parametrize(
    ("base", "prefix"), [("relaxd", "homeassistant"), ("site1/relaxd", "homeassistant"), ("site2", "homeassistant")]
)
def test_every_payload_passes_home_assistants_discovery_schemas(base: str, prefix: str) -> None:
    cfg = settings()
    messages = discovery_messages(cfg, Topics(base, prefix), all_routines(cfg))
    assert len(messages) == 3 + 3 * 13 + 2 + 1 + 1  # daemon, 13 per room, lights/speaker sensors as configured
    result = validate(messages, cfg)
    assert result["errors"] == []
    assert result["checked"] == len(messages)
    assert result["rendered"] > 20 * len(messages)  # the templates really were rendered, many times each


def test_the_validator_refuses_what_home_assistant_would_refuse() -> None:
    """A validator that passes everything would make the test above worthless."""
    cfg = settings()
    good = dict(discovery_messages(cfg, Topics(), all_routines(cfg)))
    switch = json.loads(good["homeassistant/switch/relaxd-bedroom/massage_mode/config"])
    button = json.loads(good["homeassistant/button/relaxd-bedroom/pause/config"])
    sensor = json.loads(good["homeassistant/sensor/relaxd-bedroom/session_end/config"])
    select = json.loads(good["homeassistant/select/relaxd-bedroom/routine/config"])
    bad = [
        ("homeassistant/switch/relaxd bedroom/x/config", json.dumps(switch)),  # space: HA ignores the topic
        ("homeassistant/button/n/typo/config", json.dumps({**button, "payload_pres": "pause"})),
        ("homeassistant/sensor/n/dc/config", json.dumps({**sensor, "device_class": "timestamps"})),
        ("homeassistant/sensor/n/none/config", json.dumps({**sensor, "value_template": "{{ value_json.nope }}"})),
        ("homeassistant/select/n/opt/config", json.dumps({**select, "options": ["only"]})),
        ("homeassistant/switch/n/both/config", json.dumps({**switch, "availability_topic": "relaxd/status"})),
    ]
    result = validate(bad, cfg)
    flagged = {error.split(":")[0] for error in result["errors"]}
    assert flagged == {topic for topic, _ in bad}, result["errors"]


def test_the_phase_attributes_carry_the_routines_details_through_quoting() -> None:
    """Rendered by HA's engine: technique, intensity and cues of the phase the state names."""
    cfg = settings()
    messages = dict(discovery_messages(cfg, Topics(), all_routines(cfg)))
    phase = json.loads(messages["homeassistant/sensor/relaxd-bedroom/phase/config"])
    state = sample_states(cfg)[0] | {"state": "running", "routine": "tricky", "phase": "Détente \\ calme"}
    state |= {"phase_index": 1, "phase_count": 2, "phase_ends_at": "2026-12-01T10:05:00.000Z"}
    script = (
        "import asyncio, json, sys, tempfile\n"
        "from homeassistant.core import HomeAssistant\n"
        "from homeassistant.helpers.template import Template\n"
        "async def main():\n"
        "    data = json.load(sys.stdin)\n"
        "    hass = HomeAssistant(tempfile.mkdtemp())\n"
        "    out = Template(data['t'], hass).async_render_with_possible_json_value(data['p'])\n"
        "    print(out)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [str(HA_PYTHON), "-c", script],
        input=json.dumps({"t": phase["json_attributes_template"], "p": json.dumps(state)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    attributes = json.loads(done.stdout)
    assert attributes == {
        "routine": "tricky",
        "phase_index": 1,
        "phase_count": 2,
        "phase_started_at": None,
        "phase_ends_at": "2026-12-01T10:05:00.000Z",
        "technique": "Détente \\ calme",
        "intensity": 0.9,
        "cues": {"heat": 3, "list": [1, "a'b"]},
    }


RENDER = """
import asyncio, json, sys, tempfile
from homeassistant.core import HomeAssistant
from homeassistant.helpers.template import Template
async def main():
    hass = HomeAssistant(tempfile.mkdtemp())
    out = []
    for template, payload, this in json.load(sys.stdin):
        tpl = Template(template, hass)
        out.append(tpl.async_render_with_possible_json_value(payload, "<unchanged>", variables={"this": this}))
    print(json.dumps(out))
asyncio.run(main())
"""


def render_all(cases: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[str]:
    """HA's template engine on (template, state payload, this) cases, in one subprocess; a failing template
    gives `<unchanged>`, as MQTT entities keep their state then."""
    done = subprocess.run(
        [str(HA_PYTHON), "-c", RENDER],
        input=json.dumps([(t, json.dumps(p), this) for t, p, this in cases]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rendered: list[str] = json.loads(done.stdout)
    return rendered


def test_what_each_entity_shows_in_each_room_state() -> None:
    cfg = settings()
    found = {t: json.loads(b) for t, b in discovery_messages(cfg, Topics(), all_routines(cfg))}

    def cfg_of(component: str, object_id: str) -> dict[str, Any]:
        config: dict[str, Any] = found[f"homeassistant/{component}/relaxd-bedroom/{object_id}/config"]
        return config

    base = sample_states(cfg)[0]
    states = {s: {**base, "state": s, "routine": "quick"} for s in ("idle", "running", "paused", "restoring")}
    states["running"] |= {"session_ends_at": "2026-12-01T11:00:00.000Z"}
    unknown: dict[str, Any] = {"state": "unknown"}
    expect: list[tuple[str, dict[str, Any], dict[str, Any], str]] = []
    switch = cfg_of("switch", "massage_mode")["value_template"]
    # Massage mode follows the session; the restore fade after `turn_off` is already off.
    expect += [(switch, states[s], unknown, v) for s, v in (("idle", "OFF"), ("running", "ON"), ("paused", "ON"))]
    expect.append((switch, states["restoring"], unknown, "OFF"))
    for object_id, acting in (("pause", {"running"}), ("resume", {"paused"}), ("skip_phase", {"running", "paused"})):
        when = cfg_of("button", object_id)["availability"][1]["value_template"]
        expect += [(when, states[s], unknown, "online" if s in acting else "offline") for s in states]
    number = cfg_of("number", "extend_by")
    assert number["availability_mode"] == "all"
    when = number["availability"][1]["value_template"]
    expect += [(when, states[s], unknown, "online" if s in ("running", "paused") else "offline") for s in states]
    select = cfg_of("select", "routine")["value_template"]
    expect.append((select, states["idle"], unknown, "quick"))  # idle: the routine the next start uses
    expect.append((select, states["running"], {"state": "tricky"}, "tricky"))  # a session keeps the choice shown
    expect.append((select, states["running"] | {"next_routine": "classic"}, unknown, "classic"))
    expect.append((select, states["idle"] | {"routine": "gone"}, unknown, "None"))  # never an invalid option
    session_end = cfg_of("sensor", "session_end")["value_template"]
    shown = {"state": "2026-12-01T11:00:00+00:00"}
    expect += [
        (session_end, states["idle"], shown, "None"),  # a time that became null: unknown
        (session_end, states["idle"], unknown, "<unchanged>"),  # null and unknown already: no `None` again
        (session_end, states["running"], unknown, "2026-12-01T11:00:00.000Z"),
    ]
    lights = found["homeassistant/binary_sensor/relaxd-bedroom/lights/config"]["value_template"]
    expect += [(lights, base, unknown, "ON"), (lights, base | {"devices": {"lights": "offline"}}, unknown, "OFF")]
    expect.append((lights, base | {"devices": {}}, unknown, "OFF"))
    state = cfg_of("sensor", "state")["value_template"]
    expect += [(state, states[s], unknown, s) for s in states]
    rendered = render_all([(t, p, this) for t, p, this, _ in expect])
    assert rendered == [want for *_, want in expect]


def test_session_events_become_home_assistant_events() -> None:
    cfg = settings()
    found = dict(discovery_messages(cfg, Topics(), all_routines(cfg)))
    event = json.loads(found["homeassistant/event/relaxd-bedroom/event/config"])
    assert event["event_types"] == list(EVENT_NAMES)
    payload = {"event": "phase_started", "room": "bedroom", "at": "x", "seq": 3, "phase": "Arrival", "cues": {"a": 1}}
    (out,) = render_all([(event["value_template"], payload, {})])
    assert json.loads(out) == {**payload, "event_type": "phase_started"}

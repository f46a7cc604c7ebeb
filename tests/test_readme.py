"""Every YAML and JSON example in the README parses, and the relaxd ones among them are valid."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from relaxd.core.config import Settings, TriggerConfig
from relaxd.core.configfile import parse_yaml
from relaxd.core.events import EVENT_NAMES, Event, RoomState, parse_command
from relaxd.core.routines import Routine
from relaxd.core.schedule_config import ScheduleConfig

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == language]


def test_the_readme_opens_with_the_demo_and_the_test_command() -> None:
    first = blocks("sh")[0]
    assert "relaxd demo" in first and "python -m pytest" in first


def check_relaxd_yaml(data: dict[str, Any]) -> None:
    if "rooms" in data:
        Settings.model_validate(data)
    for routine in data.get("routines", {}).values():
        Routine.model_validate(routine)
    for trigger in data.get("triggers", []):
        TriggerConfig.model_validate(trigger)
    for schedule in data.get("schedules", []):
        ScheduleConfig.model_validate(schedule)


@pytest.mark.parametrize("text", blocks("yaml"))
def test_yaml_examples(text: str) -> None:
    data = parse_yaml(text)
    assert isinstance(data, dict) and data
    check_relaxd_yaml(data)


@pytest.mark.parametrize("text", blocks("json"))
def test_json_examples(text: str) -> None:
    data = json.loads(text)
    if isinstance(data, list):  # the Node-RED flow: every wire points at a node of the flow
        ids = {node["id"] for node in data}
        assert all(target in ids for node in data for wire in node.get("wires", []) for target in wire)
    elif "event" in data:
        Event.model_validate(data)
    elif "state" in data:
        assert set(data) == set(RoomState.model_fields)
        RoomState.model_validate(data)
    elif "action" in data:
        parse_command(text.encode())
    elif "status" in data:  # the answer to a request
        assert set(data) <= {"status", "data", "error", "transaction"} and data["status"] in ("ok", "error")
        assert ("error" in data) == (data["status"] == "error")
    elif "room" in data:  # a schedule/add request
        ScheduleConfig.model_validate({k: v for k, v in data.items() if k != "transaction"})
    else:
        raise AssertionError(f"an example nobody checks: {text[:80]}")


def test_there_are_examples_of_each_kind() -> None:
    assert len(blocks("yaml")) >= 6 and len(blocks("json")) >= 5


# -- the Node-RED flow: what its function node sends to the diffuser --------------------------------------


def node_red_function() -> str:
    flows = [data for data in map(json.loads, blocks("json")) if isinstance(data, list)]
    assert len(flows) == 1, "one Node-RED flow in the README"
    (node,) = [n for n in flows[0] if n["type"] == "function"]
    diffuser = next(n for n in flows[0] if n["type"] == "mqtt out")
    assert node["wires"] == [[diffuser["id"]]] and diffuser["topic"] == "home/diffuser/set"
    source = next(n for n in flows[0] if n["type"] == "mqtt in")
    assert source["wires"] == [[node["id"]]] and source["datatype"] == "json"
    func: str = node["func"]
    return func


# An event, and what the diffuser must be sent (None: nothing).
DIFFUSER_CASES: list[tuple[dict[str, object], object]] = [
    ({"event": "session_started", "cues": {}}, None),
    ({"event": "phase_started", "phase": "settle", "cues": {"table_heat": "warm", "diffuser": "on"}}, "on"),
    ({"event": "phase_started", "phase": "effleurage", "cues": {"table_heat": "warm", "stroke": "long"}}, None),
    ({"event": "phase_started", "phase": "petrissage", "cues": {}}, None),
    (
        {"event": "phase_started", "phase": "evening", "cues": {"diffuser": "lavender", "table_heat": "warm"}},
        "lavender",
    ),
    ({"event": "check_in", "cues": {"diffuser": "on"}}, None),
    ({"event": "phase_started", "phase": "calming", "cues": {"diffuser": "off"}}, "off"),
    ({"event": "session_finished"}, "off"),
    ({"event": "session_stopped", "reason": "mqtt"}, "off"),
    ({"event": "room_restored"}, "off"),
]


def test_the_node_red_flow_sends_only_the_diffuser_cue_and_turns_it_off_at_the_end() -> None:
    func = node_red_function()
    named = set(re.findall(r"'(\w+)'", func)) & set(EVENT_NAMES)
    assert named == {"phase_started", "session_finished", "session_stopped", "room_restored"}
    node = shutil.which("node")
    if node is None:  # no Node.js here: at least the expressions that matter
        assert "{payload: e.cues.diffuser}" in func and "{payload: 'off'}" in func and "payload.cues}" not in func
        return
    # The function node's body as Node-RED runs it: a function of msg; null sends nothing.
    script = (
        f"const f = new Function('msg', {json.dumps(func)});\n"
        f"const cases = {json.dumps([event for event, _ in DIFFUSER_CASES])};\n"
        "console.log(JSON.stringify(cases.map((e) => f({topic: 'relaxd/bedroom/event', payload: e}))));\n"
    )
    ran = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
    sent = json.loads(ran.stdout)
    expected = [None if want is None else {"payload": want} for _, want in DIFFUSER_CASES]
    assert sent == expected

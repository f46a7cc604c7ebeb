"""Every YAML and JSON example in the README parses, and the relaxd ones among them are valid."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from relaxd.core.config import Settings, TriggerConfig
from relaxd.core.configfile import parse_yaml
from relaxd.core.events import Event, RoomState, parse_command
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

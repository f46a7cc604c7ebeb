"""docs/mqtt.md is the contract the code keeps: every topic, field, event and example checked against it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from relaxd.core.events import EVENT_NAMES, Event, RoomState, parse_command
from relaxd.core.schedule_config import ScheduleConfig
from relaxd.core.topics import Topics

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "mqtt.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def table_after(heading: str) -> list[list[str]]:
    """The first Markdown table after heading, without its header separator, cells unquoted."""
    text = DOC.read_text()
    section = text[text.index(heading) :]
    block = section[section.index("\n|") + 1 :].split("\n\n", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("|") and not line.startswith("| ---")]
    return [[cell.strip().strip("`") for cell in re.split(r"(?<!\\)\|", row.strip("|"))] for row in rows]


def first_column(heading: str) -> list[str]:
    return [row[0] for row in table_after(heading)[1:]]


def test_every_topic_relaxd_uses_is_in_the_topic_table() -> None:
    topics = Topics("relaxd")
    documented = set(first_column("## Topics"))
    used = {
        topics.status,
        topics.state("<room>"),
        topics.phase("<room>"),
        topics.event("<room>"),
        topics.set("<room>"),
        topics.routine_set("<room>"),
        topics.request("<verb>"),
        topics.response("<verb>"),
        topics.breath("<room>"),
    }
    daemon_event = getattr(topics, "daemon_event", None)
    if daemon_event is not None:
        used.add(daemon_event if isinstance(daemon_event, str) else daemon_event())
    assert used <= documented, used - documented


def test_the_state_fields_are_the_code_ones() -> None:
    assert first_column("## The room state") == list(RoomState.model_fields)


def test_the_event_fields_are_the_code_ones() -> None:
    assert set(first_column("## Events")) == set(Event.model_fields)


def test_every_event_is_explained() -> None:
    text = DOC.read_text()
    section = text[text.index("| event | when |") :]
    rows = [line for line in section.split("\n\n", 1)[0].splitlines()[2:]]
    assert [row.strip("|").split("|")[0].strip().strip("`") for row in rows] == list(EVENT_NAMES)


def json_blocks() -> list[str]:
    return [body for lang, body in BLOCK.findall(DOC.read_text()) if lang == "json"]


@pytest.mark.parametrize("text", json_blocks())
def test_every_json_example_is_what_relaxd_sends_or_takes(text: str) -> None:
    data = json.loads(text)
    if "event" in data and "room" in data:
        Event.model_validate(data)
    elif "event" in data:  # a daemon-level event
        assert set(data) <= {"event", "at", "topic", "reason", "transaction"} and data["event"] in EVENT_NAMES
    elif "state" in data:
        assert set(data) == set(RoomState.model_fields)
        RoomState.model_validate(data)
    elif "action" in data:
        command = parse_command(text.encode())
        assert command.transaction == data.get("transaction")  # echoed with its JSON type
    elif "status" in data:
        assert set(data) <= {"status", "data", "error", "transaction"} and data["status"] in ("ok", "error")
        assert ("error" in data) == (data["status"] == "error")
    else:  # a schedule/add request
        ScheduleConfig.model_validate({k: v for k, v in data.items() if k != "transaction"})


def test_there_is_an_example_of_each_kind() -> None:
    kinds = {("event" in d, "room" in d, "state" in d, "action" in d) for d in map(json.loads, json_blocks())}
    assert len(kinds) >= 5


def test_the_project_points_only_inside_itself() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/mqtt.md" in readme
    mine = Path(__file__)
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *ROOT.glob("docs/*.md"), *ROOT.glob("relaxd/**/*.py")]
    for path in [*files, *(p for p in ROOT.glob("tests/*.py") if p != mine), *ROOT.glob("bench/**/*.py")]:
        text = path.read_text()
        assert "DESIGN.md" not in text and "shared folder" not in text, path

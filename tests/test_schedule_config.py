"""Schedules in the config, the CLI and the schedule file: validation (exit 78), arguments, persistence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.fire_times import ApsFireTimes, check_cron
from relaxd.adapters.schedule_store import FileScheduleStore
from relaxd.app.cli import build_parser
from relaxd.app.remote import _schedule_body
from relaxd.core.config import RoomConfig
from relaxd.core.configfile import ConfigError, load_settings
from relaxd.core.discovery_entities import room_entities
from relaxd.core.events import Command, CommandRejected, parse_command
from relaxd.core.schedule_config import ScheduleConfig
from relaxd.core.schedule_set import ScheduleSet
from relaxd.core.schedules import Schedule, ScheduleBook, config_ids, describe
from relaxd.core.topics import Topics
from tests.engine_rig import Rig
from tests.fakes import FakeClock, settle

MINIMAL = """
hue: {host: 127.0.0.1:8080, username: "hue-secret-user"}
rooms:
  bedroom: {lights: {group: Bedroom}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relaxd.yaml"
    path.write_text(text)
    return path


def test_a_bad_cron_line_is_a_config_error_with_its_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL + "schedules:\n  - {room: bedroom, cron: '0 20 * * fri'}\n  - {room: bedroom, cron: '0 25 * * *'}\n",
    )
    load_settings(path)  # without the hook the core cannot know (it does not import APScheduler)
    with pytest.raises(ConfigError) as info:
        load_settings(path, check_cron=check_cron)
    assert len(info.value.lines) == 1
    assert info.value.lines[0].startswith(f"{path}: schedules.1.cron: bad field '25'")


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_check_config_and_run_exit_78_on_a_bad_cron_line(tmp_path: Path, command: str) -> None:
    path = write(
        tmp_path,
        MINIMAL + f"state_dir: {tmp_path / 'state'}\nschedules: [{{room: bedroom, cron: '0 20 * * funday'}}]\n",
    )
    result = subprocess.run(
        [sys.executable, "-m", "relaxd", command, "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 78, result.stderr
    assert result.stderr.strip().splitlines() == [f'{path}: schedules.0.cron: Invalid weekday name "funday"']


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (
            "{room: bedroom, every: 2 weeks, on: [sun, blursday], at: '10:00'}",
            "schedules.0: unknown weekday 'blursday'",
        ),
        ("{room: bedroom, every: 0 weeks, on: sun, at: '10:00'}", "schedules.0.every: must look like"),
        ("{room: bedroom, every: 3 days, on: sun, at: '10:00'}", "schedules.0: on goes with every N weeks"),
        ("{room: bedroom, every: 2 weeks, at: '10:00'}", "schedules.0.on: required with every N weeks"),
        ("{room: bedroom, every: 1 week, on: [], at: '10:00'}", "schedules.0: on needs at least one weekday"),
        ("{room: attic, cron: '0 20 * * fri'}", "schedules.0.room: unknown room 'attic'"),
        ("{room: bedroom, routine: marathon, once: '2026-12-24T18:30'}", "schedules.0.routine: unknown routine"),
        ("{room: bedroom, once: 'Christmas'}", "schedules.0.once: Input should be a valid datetime"),
    ],
)
def test_other_schedule_problems_name_their_key(tmp_path: Path, schedule: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, MINIMAL + f"schedules: [{schedule}]\n"), check_cron=check_cron)
    assert any(expected in line for line in info.value.lines), info.value.lines


def test_every_n_weeks_needs_on_and_every_n_days_does_not(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "schedules: [{room: bedroom, every: 2 weeks, at: '10:00'}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "relaxd", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 78
    assert result.stderr.strip().splitlines() == [f"{path}: schedules.0.on: required with every N weeks"]
    daily = load_settings(write(tmp_path, MINIMAL + "schedules: [{room: bedroom, every: 3 days, at: '10:00'}]\n"))
    assert daily.schedules[0].weekdays() == []


async def test_a_schedule_add_request_without_on_is_refused_naming_on(tmp_path: Path, calls: BlockingCalls) -> None:
    clock = FakeClock()
    schedules = ScheduleSet(
        [],
        {},
        ["classic"],
        fire_times=ApsFireTimes(ZoneInfo("Europe/Berlin")),
        store=FileScheduleStore(tmp_path / "state", calls),
        clock=clock,
        tz=ZoneInfo("Europe/Berlin"),
        grace_s=900,
    )
    with pytest.raises(ValueError) as info:
        await schedules.add({"room": "bedroom", "every": "2 weeks", "at": "10:00"})
    assert str(info.value) == "on: required with every N weeks"


def test_weekdays_accept_names_lists_and_commas() -> None:
    spec = ScheduleConfig(room="r", every="1 week", on="Monday, thu", at="7:05")
    assert spec.weekdays() == ["mon", "thu"] and spec.at_time() == (7, 5) and spec.interval() == (1, "weeks")


def test_config_ids_are_stable_content_hashes_and_repeats_get_a_suffix() -> None:
    a = ScheduleConfig(room="bedroom", cron="0 20 * * fri")
    b = ScheduleConfig(room="bedroom", every="2 weeks", on="sun", at="10:00")
    ids = config_ids([a, b, a])
    assert ids[0] == config_ids([ScheduleConfig(room="bedroom", cron="0 20 * * fri")])[0]
    assert ids == config_ids([a, b, a]) and ids[2] == ids[0] + "-2" and len(set(ids)) == 3
    assert config_ids([b, a])[1] == ids[0]  # moving an entry keeps its id
    assert config_ids([ScheduleConfig(room="bedroom", cron="0 21 * * fri")])[0] != ids[0]


async def test_the_schedule_file_round_trips_and_keeps_what_it_cannot_read(
    tmp_path: Path, calls: BlockingCalls
) -> None:
    store = FileScheduleStore(tmp_path / "state", calls)
    assert await store.load() == ScheduleBook()
    when = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    book = ScheduleBook(
        runtime=[Schedule("rt-1", "runtime", ScheduleConfig(room="b", cron="0 9 * * *"), created_at=when)],
        checked={"rt-1": when},
        anchors={"cfg-x": date(2026, 11, 23)},
        unreadable=[{"id": "rt-future", "spec": {"room": "b", "sunrise": True}}],
    )
    await store.save(book)
    doc = json.loads((tmp_path / "state" / "schedules.json").read_text())
    doc["schedules"].append({"id": "rt-bad", "spec": {"room": "b", "cron": "0 9 * *"}})  # a hand edit
    (tmp_path / "state" / "schedules.json").write_text(json.dumps(doc))
    loaded = await store.load()
    assert [s.id for s in loaded.runtime] == ["rt-1"] and loaded.runtime[0].created_at == when
    assert loaded.checked == {"rt-1": when} and loaded.anchors == {"cfg-x": date(2026, 11, 23)}
    assert [r["id"] for r in loaded.unreadable] == ["rt-future", "rt-bad"]
    await store.save(loaded)
    assert [r["id"] for r in json.loads((tmp_path / "state" / "schedules.json").read_text())["schedules"]] == [
        "rt-1",
        "rt-future",
        "rt-bad",
    ]
    assert not list((tmp_path / "state").glob(".schedules.*.tmp"))


async def test_a_damaged_schedule_file_is_moved_aside(tmp_path: Path, calls: BlockingCalls) -> None:
    (tmp_path / "schedules.json").write_text('{"format": 1, "schedules": [')
    assert await FileScheduleStore(tmp_path, calls).load() == ScheduleBook()
    assert (tmp_path / "schedules.corrupt").exists() and not (tmp_path / "schedules.json").exists()


def test_schedule_fields_cannot_come_from_a_command_payload() -> None:
    with pytest.raises(CommandRejected, match="schedule_id: unknown field"):
        parse_command(b'{"action": "start", "schedule_id": "rt-1", "transaction": "t"}')


async def test_a_scheduled_start_that_fails_is_a_schedule_missed_not_a_rejection(rig: Rig) -> None:
    bus, engine = rig.bus, rig.engine
    engine.submit(
        Command(
            action="start",
            routine="gone",
            source="schedule",
            schedule_id="rt-1",
            schedule_details={"scheduled_for": "2026-11-23T20:00:00.000Z"},
        )
    )
    await settle()
    assert bus.names() == ["schedule_missed"]
    missed = bus.events[0]
    assert missed["reason"] == "start_failed" and missed["schedule_id"] == "rt-1"
    assert "unknown routine 'gone'" in missed["details"]["error"]
    assert missed["details"]["scheduled_for"] == "2026-11-23T20:00:00.000Z"


def test_cli_schedule_arguments_become_the_request_body() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "schedule",
            "add",
            "--room",
            "bedroom",
            "--routine",
            "quick",
            "--every",
            "2 weeks",
            "--on",
            "sun",
            "--at",
            "10:00",
            "--starting",
            "2026-12-06",
        ]
    )
    assert _schedule_body(args) == {
        "room": "bedroom",
        "routine": "quick",
        "every": "2 weeks",
        "on": "sun",
        "at": "10:00",
        "starting": "2026-12-06",
    }
    args = parser.parse_args(["schedule", "add", "--room", "bedroom", "--once", "2026-12-24T18:30"])
    assert _schedule_body(args) == {"room": "bedroom", "once": "2026-12-24T18:30"}
    assert _schedule_body(parser.parse_args(["schedule", "remove", "rt-1"])) == {"id": "rt-1"}
    assert _schedule_body(parser.parse_args(["schedule", "list", "--room", "spa"])) == {"room": "spa"}
    with pytest.raises(SystemExit):  # cron and once at once is a usage error
        parser.parse_args(["schedule", "add", "--room", "b", "--cron", "0 9 * * *", "--once", "2026-12-24T18:30"])


def test_describe_is_one_readable_line() -> None:
    line = describe(
        {
            "id": "rt-1",
            "origin": "runtime",
            "room": "bedroom",
            "every": "2 weeks",
            "on": ["sun"],
            "at": "10:00",
            "starting": "2026-12-06",
            "next_local": "2026-12-06T10:00+01:00",
        }
    )
    assert (
        line == "rt-1  bedroom  (room's routine)  every 2 weeks on Sun at 10:00 from 2026-12-06  [runtime]  "
        "next 2026-12-06T10:00+01:00"
    )


def test_home_assistant_next_session_sensor_reads_next_session_at() -> None:
    room = RoomConfig.model_validate({"lights": {"group": "Bedroom"}})
    sensor = room_entities(Topics(), "bedroom", room, {})[("sensor", "next_session")]
    assert sensor["device_class"] == "timestamp" and sensor["state_topic"] == "relaxd/bedroom/state"
    assert sensor["value_template"].startswith("{% if value_json.next_session_at %}{{ value_json.next_session_at }}")

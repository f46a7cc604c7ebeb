"""`relaxd pause|resume|skip|extend|start|stop|status` against a real daemon and Mosquitto, and the table."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from relaxd.app.cli import build_parser, main
from relaxd.app.remote_view import answer_line, local_time, status_table
from tests.conftest import MosquittoFactory
from tests.mosquitto import Collector, Mosquitto, free_port
from tests.test_e2e_run import Rig, names

ROOT = Path(__file__).resolve().parent.parent
TZ = "Pacific/Kiritimati"  # UTC+14: a table in UTC (or in the machine's zone) shows other hours
OFFLINE = "relaxd is offline (last state from the broker)"
STEPS = {
    "phases": [
        {"name": name, "duration": "10m", "lights": {"brightness": f"{pct}%", "transition": "0s"}}
        for name, pct in (("one", 40), ("two", 30), ("three", 20))
    ]
}


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)
    config = yaml.safe_load(r.config.read_text())
    config["timezone"] = TZ
    config["routines"]["steps"] = STEPS
    r.config.write_text(yaml.safe_dump(config))
    yield r
    r.close()


def relaxd(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    """`relaxd ARGS -c CONFIG` in this process (no interpreter start-up): exit code, stdout, stderr."""
    capsys.readouterr()
    code = main([*args, "-c", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def shown(iso: str) -> str:
    """How the table should show a time: HH:MM in TZ when it is today there, else with the date."""
    local = datetime.fromisoformat(iso).astimezone(ZoneInfo(TZ))
    return local.strftime("%H:%M" if local.date() == datetime.now(ZoneInfo(TZ)).date() else "%Y-%m-%d %H:%M")


def table_rows(out: str) -> dict[str, list[str]]:
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    assert re.split(r"\s{2,}", lines[0]) == [
        "ROOM",
        "STATE",
        "ROUTINE",
        "PHASE",
        "PHASE ENDS",
        "SESSION ENDS",
        "NEXT SESSION",
        "DEVICES",
    ]
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line) for line in lines[1:])}


def test_every_room_command_answers_with_one_line(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    with Collector(rig.broker, ["relaxd/+/set", "relaxd/+/event", "relaxd/status"]) as mqtt:
        rig.start_daemon()
        mqtt.wait_for_message("relaxd/status", "online", timeout_s=20)
        assert relaxd(capsys, rig.config, "pause", "room1") == (1, "", "room1: rejected: cannot pause while idle\n")
        began = time.monotonic()
        assert relaxd(capsys, rig.config, "skip", "attic") == (1, "", "attic: rejected: unknown room 'attic'\n")
        assert time.monotonic() - began < 2  # answered, not timed out

        code, out, err = relaxd(capsys, rig.config, "start", "room1", "--routine", "steps")
        assert code == 0 and re.fullmatch(r"room1: started steps \(3 phases, session ends [-\d :]+\)\n", out), err
        assert relaxd(capsys, rig.config, "pause", "room1") == (0, "room1: paused in one (phase 1/3)\n", "")
        code, out, _ = relaxd(capsys, rig.config, "extend", "room1", "--minutes", "3")
        assert code == 0 and out.startswith("room1: extended by 3 min (paused")
        code, out, _ = relaxd(capsys, rig.config, "resume", "room1")
        assert code == 0 and out.startswith("room1: resumed one (phase 1/3), session ends ")
        assert relaxd(capsys, rig.config, "resume", "room1")[2] == "room1: rejected: cannot resume while running\n"

        code, out, _ = relaxd(capsys, rig.config, "status", "room1", "--json")
        before = json.loads(out)
        code, out, _ = relaxd(capsys, rig.config, "extend", "room1")  # the daemon's default: 5 minutes
        assert code == 0 and out.startswith("room1: extended by 5 min, session ends ")
        code, out, _ = relaxd(capsys, rig.config, "status", "room1", "--json")
        after = json.loads(out)
        moved_s = (
            datetime.fromisoformat(after["session_ends_at"]) - datetime.fromisoformat(before["session_ends_at"])
        ).total_seconds()
        assert abs(moved_s - 300) < 2

        code, out, _ = relaxd(capsys, rig.config, "skip", "room1")
        assert code == 0 and out.startswith("room1: skipped to two (phase 2/3), phase ends ")
        code, out, err = relaxd(capsys, rig.config, "status")
        assert code == 0, err
        assert out.splitlines()[0] == f"# times in {TZ}"
        code, raw, _ = relaxd(capsys, rig.config, "status", "--json")
        state = json.loads(raw)["room1"]
        assert state["phase"] == "two" and state["phase_index"] == 1
        row = table_rows(out)["room1"]
        assert row[:4] == ["room1", "running", "steps", "two (2/3)"]
        assert row[4:6] == [shown(state["phase_ends_at"]), shown(state["session_ends_at"])]
        assert row[6:] == ["-", "lights online, speaker online"]

        for expected in ("skipped to three (phase 3/3)", "skipped the last phase; the session finished"):
            code, out, _ = relaxd(capsys, rig.config, "skip", "room1")
            assert code == 0 and out.startswith(f"room1: {expected}")
        mqtt.wait_for(lambda m: "room_restored" in names(m), timeout_s=15)
        code, out, _ = relaxd(capsys, rig.config, "stop", "room1")
        assert code == 1 and out == ""

        commands = [json.loads(m.payload) for m in mqtt.on("relaxd/room1/set")]
        events = [json.loads(m.payload) for m in mqtt.on("relaxd/room1/event")]
    # Every command went out as JSON with its own transaction, and an event carrying it answered.
    actions = [c["action"] for c in commands]
    assert actions == [
        "pause",
        "start",
        "pause",
        "extend",
        "resume",
        "resume",
        "extend",
        "skip",
        "skip",
        "skip",
        "stop",
    ]
    assert [c.get("minutes") for c in commands if c["action"] == "extend"] == [3, 5]
    assert len({c["transaction"] for c in commands}) == len(commands)
    answered = {e.get("transaction") for e in events}
    assert all(c["transaction"] in answered for c in commands)

    assert rig.stop_daemon() == 0
    began = time.monotonic()
    code, out, err = relaxd(capsys, rig.config, "status")
    took_s = time.monotonic() - began
    assert code == 1 and err == OFFLINE + "\n" and took_s < 2, (err, took_s)
    assert table_rows(out)["room1"][:2] == ["room1", "idle"]  # the daemon's last retained state


def offline_config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "relaxd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "timezone": TZ,
                "state_dir": str(tmp_path / "state"),
                "mqtt": {"host": "127.0.0.1", "port": port},
                "rooms": {r: {"speaker": {"host": "127.0.0.1:1400"}} for r in ("bedroom", "den")},
            }
        )
    )
    return config


def test_status_answers_at_once_from_the_retained_state_when_relaxd_is_offline(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    config = offline_config(tmp_path, mosquitto.port)
    ends = (datetime.now(UTC) + timedelta(minutes=20)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    bedroom = {"room": "bedroom", "state": "running", "routine": "classic", "phase": "knead", "phase_index": 2}
    bedroom |= {"phase_count": 6, "session_ends_at": ends, "devices": {"speaker": "offline"}}
    with Collector(mosquitto, ["relaxd/+/set"]) as mqtt:
        mqtt.publish("relaxd/status", "offline", retain=True)
        mqtt.publish("relaxd/bedroom/state", json.dumps(bedroom), retain=True)
        mqtt.publish(
            "relaxd/den/state", json.dumps({"room": "den", "state": "idle", "routine": "classic"}), retain=True
        )
        began = time.monotonic()
        code, out, err = relaxd(capsys, config, "status")  # the default --timeout is 10 s
        took_s = time.monotonic() - began
        assert code == 1 and err == OFFLINE + "\n" and took_s < 2, (err, took_s)
        rows = table_rows(out)
        assert rows["bedroom"] == [
            "bedroom",
            "running",
            "classic",
            "knead (3/6)",
            "-",
            shown(ends),
            "-",
            "speaker offline",
        ]
        assert rows["den"] == ["den", "idle", "classic", "-", "-", "-", "-", "-"]

        code, out, err = relaxd(capsys, config, "status", "den", "--json")
        assert code == 1 and json.loads(out) == {"room": "den", "state": "idle", "routine": "classic"}
        began = time.monotonic()
        code, out, err = relaxd(capsys, config, "pause", "bedroom")
        assert code == 1 and out == "" and time.monotonic() - began < 2
        assert err.startswith("relaxd is offline: its retained status") and err.endswith("nothing was sent\n")
        time.sleep(0.2)  # a command that went out anyway would be here by now
        assert mqtt.on("relaxd/bedroom/set") == []


def test_status_on_a_broker_relaxd_never_used_says_offline_after_a_second(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    began = time.monotonic()
    code, out, err = relaxd(capsys, offline_config(tmp_path, mosquitto.port), "status")
    took_s = time.monotonic() - began
    assert code == 1 and out == "" and 0.9 < took_s < 2
    assert err.startswith(OFFLINE + "; no relaxd status is retained") and len(err.splitlines()) == 1


def test_a_daemon_that_does_not_answer_and_brokers_that_cannot_be_used(
    tmp_path: Path, mosquitto_factory: MosquittoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    silent = mosquitto_factory().start()
    with Collector(silent, []) as mqtt:
        mqtt.publish("relaxd/status", "online", retain=True)  # a daemon that died without its last will
    began = time.monotonic()
    code, out, err = relaxd(capsys, offline_config(tmp_path, silent.port), "skip", "den", "--timeout", "0.5")
    assert code == 1 and out == "" and time.monotonic() - began < 1.5
    assert err == "relaxd: no answer from the daemon within 0.5 s (is `relaxd run` running?)\n"

    port = free_port()  # nothing listens there
    for args in (("status",), ("extend", "den"), ("schedule", "list")):
        code, out, err = relaxd(capsys, offline_config(tmp_path, port), *args)
        assert code == 1 and out == "" and len(err.splitlines()) == 1
        assert err.startswith(f"relaxd: cannot reach the MQTT broker at 127.0.0.1:{port}: ")

    locked = mosquitto_factory(allow_anonymous=False).start()
    code, out, err = relaxd(capsys, offline_config(tmp_path, locked.port), "status")
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"relaxd: the MQTT broker at 127.0.0.1:{locked.port} refused the connection: ")


def test_help_texts_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for command, words in (("extend", ("--minutes", "default 5")), ("pause", ("resume",)), ("status", ("--json",))):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert exited.value.code == 0 and all(word in out for word in (*words, "ROOM", "--timeout")), out
    for bad in (["extend", "den", "--minutes", "0"], ["extend", "den", "--minutes", "241"], ["pause", "Den Room"]):
        with pytest.raises(SystemExit) as exited:
            main(bad)
        assert exited.value.code == 2 and capsys.readouterr().err.count("\n") >= 1


def test_the_readme_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [name for name in sub.choices if f"`relaxd {name}" not in section]
    assert "pause" in sub.choices and missing == []


# --- the formatting alone, with fixed states and a fixed clock ---------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # 19:00 in Berlin


def test_times_are_local_today_and_dated_otherwise() -> None:
    assert local_time("2026-12-01T19:45:00.000Z", BERLIN, NOW) == "20:45"
    assert local_time("2026-12-01T23:30:00.000Z", BERLIN, NOW) == "2026-12-02 00:30"  # tomorrow in Berlin
    assert local_time("2026-12-01T23:30:00.000Z", UTC, NOW) == "23:30"
    assert local_time(None, BERLIN, NOW) == "-"
    assert local_time("soon", BERLIN, NOW) == "soon"


def test_the_status_table() -> None:
    states: list[dict[str, Any]] = [
        {"room": "spa", "state": "idle", "routine": "quick", "phase": None, "next_session_at": "2026-12-05T09:00:00Z"},
        {
            "room": "bedroom",
            "state": "paused",
            "routine": "classic",
            "phase": "petrissage",
            "phase_index": 2,
            "phase_count": 6,
            "phase_ends_at": None,
            "session_ends_at": None,
            "devices": {"speaker": "offline", "lights": "online"},
        },
        {
            "room": "den",
            "state": "running",
            "routine": "deep",
            "phase": "warm_up",
            "phase_index": 0,
            "phase_count": 4,
            "phase_ends_at": "2026-12-01T18:05:00.000Z",
            "session_ends_at": "2026-12-01T18:50:00.000Z",
            "devices": {"lights": "online"},
        },
    ]
    assert status_table(states, BERLIN, NOW).splitlines() == [
        "ROOM     STATE    ROUTINE  PHASE             PHASE ENDS  SESSION ENDS  NEXT SESSION      DEVICES",
        "bedroom  paused   classic  petrissage (3/6)  -           -             -                 "
        "lights online, speaker offline",
        "den      running  deep     warm_up (1/4)     19:05       19:50         -                 lights online",
        "spa      idle     quick    -                 -           -             2026-12-05 10:00  -",
    ]


def test_the_answer_lines() -> None:
    phase: dict[str, Any] = {"room": "bedroom", "phase": "petrissage", "phase_index": 2, "phase_count": 6}
    ends = {"session_ends_at": "2026-12-01T19:10:00.000Z", "phase_ends_at": "2026-12-01T18:12:00.000Z"}
    cases = [
        ("pause", {**phase, "event": "session_paused"}, "bedroom: paused in petrissage (phase 3/6)"),
        (
            "resume",
            {**phase, **ends, "event": "session_resumed"},
            "bedroom: resumed petrissage (phase 3/6), session ends 20:10",
        ),
        (
            "skip",
            {**phase, **ends, "event": "phase_started"},
            "bedroom: skipped to petrissage (phase 3/6), phase ends 19:12",
        ),
        ("extend", {**phase, **ends, "event": "session_extended"}, "bedroom: extended by 2.5 min, session ends 20:10"),
        (
            "start",
            {"room": "bedroom", "event": "session_started", "routine": "quick", "phase_count": 1, **ends},
            "bedroom: started quick (1 phase, session ends 20:10)",
        ),
        ("stop", {"room": "bedroom", "event": "session_stopped"}, "bedroom: stopped; the room is being restored"),
    ]
    for command, event, line in cases:
        assert answer_line(command, event, BERLIN, NOW, minutes=2.5) == line
    finished = answer_line("skip", {"room": "den", "event": "session_finished"}, BERLIN, NOW)
    assert finished.startswith("den: skipped the last phase; the session finished")

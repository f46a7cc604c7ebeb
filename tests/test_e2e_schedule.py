"""End to end: a schedule added over MQTT fires a real session; the CLI lists schedules across a restart."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.mosquitto import Collector, Mosquitto, Received
from tests.test_e2e_run import Rig, events, names, same_room

pytestmark = pytest.mark.e2e
TZ = "America/New_York"  # not the machine's zone (UTC in CI): local times must follow the config
BRIEF = {
    "phases": [
        {
            "name": "settle",
            "duration": "1s",
            "lights": {"brightness": "40%", "color_temp": "2400K", "transition": "0s"},
            "music": {"volume": 12, "ramp": "0s"},
        },
        {
            "name": "ease",
            "duration": "1s",
            "lights": {"brightness": "20%", "color_temp": "2200K", "transition": "0s"},
            "music": {"volume": 8, "ramp": "0s"},
        },
    ]
}
CONFIG_SCHEDULE = {"room": "room1", "routine": "slow", "cron": "0 3 * * 1"}  # Mondays 03:00


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)
    config = yaml.safe_load(r.config.read_text())
    config["timezone"] = TZ
    config["routines"]["brief"] = BRIEF
    config["schedules"] = [CONFIG_SCHEDULE]
    r.config.write_text(yaml.safe_dump(config))
    yield r
    r.close()


def cli(rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaxd", *args, "-c", str(rig.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def request(mqtt: Collector, verb: str, body: dict[str, Any]) -> dict[str, Any]:
    mqtt.publish(f"relaxd/request/{verb}", json.dumps(body))

    def answered(msgs: list[Received]) -> bool:
        return any(
            m.topic == f"relaxd/response/{verb}" and json.loads(m.payload).get("transaction") == body["transaction"]
            for m in msgs
        )

    msgs = mqtt.wait_for(answered, timeout_s=10)
    reply: dict[str, Any] = next(
        json.loads(m.payload)
        for m in msgs
        if m.topic == f"relaxd/response/{verb}" and json.loads(m.payload).get("transaction") == body["transaction"]
    )
    return reply


def test_a_schedule_added_over_mqtt_fires_a_session_and_survives_a_restart(rig: Rig) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        mqtt.wait_for_message("relaxd/status", "online", timeout_s=20)
        soon = (datetime.now(ZoneInfo(TZ)) + timedelta(seconds=3)).replace(microsecond=0)
        once = soon.replace(tzinfo=None).isoformat()
        reply = request(
            mqtt, "schedule/add", {"room": "room1", "routine": "brief", "once": once, "transaction": "add-1"}
        )
        assert reply["status"] == "ok", reply
        once_id = reply["data"]["id"]
        assert reply["data"]["next_local"] == soon.isoformat(timespec="minutes")

        added = cli(
            rig,
            "schedule",
            "add",
            "--room",
            "room1",
            "--routine",
            "slow",
            "--every",
            "2 weeks",
            "--on",
            "sat",
            "--at",
            "07:00",
        )
        assert added.returncode == 0 and added.stdout.startswith("added rt-"), added.stderr
        weekly_id = added.stdout.split()[1]
        listed = cli(rig, "schedule", "list")
        assert listed.returncode == 0, listed.stderr
        assert once_id in listed.stdout and weekly_id in listed.stdout and "cfg-" in listed.stdout
        assert f"times in {TZ}" in listed.stdout

        msgs = mqtt.wait_for(lambda m: "room_restored" in names(m), timeout_s=20)
        assert names(msgs) == [
            "session_started",
            "schedule_fired",
            "phase_started",
            "phase_started",
            "session_finished",
            "room_restored",
        ]
        started, fired = events(msgs)[:2]
        assert started["reason"] == "schedule" and started["routine"] == "brief"
        assert fired["schedule_id"] == once_id and fired["session_id"] == started["session_id"]
        assert fired["details"]["scheduled_for"] == soon.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert fired["details"]["late_s"] < 2
        assert [e["phase"] for e in events(msgs) if e["event"] == "phase_started"] == ["settle", "ease"]
        same_room(before, rig.before())
        assert rig.stop_daemon() == 0

        mqtt.clear()
        rig.start_daemon()
        mqtt.wait_for_message("relaxd/status", "online", timeout_s=20)
        again = cli(rig, "schedule", "list", "--json")
        assert again.returncode == 0, again.stderr
        schedules = json.loads(again.stdout)["schedules"]
        assert [(s["origin"], s["id"]) for s in schedules] == [
            ("config", schedules[0]["id"]),
            ("runtime", once_id),
            ("runtime", weekly_id),
        ]
        assert schedules[1]["next_at"] is None  # the booked session is done, not fired again
        soonest = min(s["next_at"] for s in schedules if s["next_at"])
        mqtt.wait_for(
            lambda m: any(
                x.topic == "relaxd/room1/state" and json.loads(x.payload)["next_session_at"] == soonest for x in m
            ),
            timeout_s=10,
        )
        assert "session_started" not in names(mqtt.snapshot())
        assert rig.stop_daemon() == 0

"""End to end: `relaxd run` as a subprocess against the simulators and Mosquitto, seen over MQTT."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from relaxd.app.demo_view import light_states, speaker_state
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import EXTENDED_COLOR
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.contract import STATE_FIELDS
from tests.mosquitto import Collector, Mosquitto, Received, wait_until

pytestmark = pytest.mark.e2e
FAST = {
    "phases": [
        {
            "name": "warm_up",
            "duration": "2s",
            "lights": {"brightness": "40%", "color_temp": "2400K", "transition": "0s"},
            "music": {"volume": 12, "ramp": "0s"},
        },
        {
            "name": "knead",
            "duration": "2s",
            "lights": {"brightness": "30%", "color_temp": "2200K", "transition": "0s"},
            "music": {"volume": 14, "ramp": "0s"},
        },
        {
            "name": "finish",
            "duration": "2s",
            "lights": {"brightness": "15%", "color_temp": "2000K", "transition": "0s"},
            "music": {"volume": 8, "ramp": "0s"},
        },
    ]
}
SLOW = {
    "phases": [
        {
            "name": "long",
            "duration": "10m",
            "lights": {"brightness": "20%", "transition": "0s"},
            "music": {"volume": 10, "ramp": "0s"},
        }
    ]
}


class Rig:
    """Simulators, a broker, a config, and the daemon as a subprocess."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, rooms: int = 1) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.hue = HueBridgeSim(lights=0)
        self.speakers: dict[str, SonosSpeakerSim] = {}
        rooms_cfg: dict[str, Any] = {}
        for i in range(rooms):
            room = f"room{i + 1}"
            a = self.hue.add_light(EXTENDED_COLOR, f"{room} ceiling", on=True, bri=254, ct=181, colormode="ct")
            b = self.hue.add_light(EXTENDED_COLOR, f"{room} lamp", on=False, bri=90, xy=[0.3, 0.3], colormode="xy")
            self.hue.add_group(f"Group {room}", [a, b])
            self.speakers[room] = SonosSpeakerSim.demo(room_name=room)
            rooms_cfg[room] = {
                "lights": {"group": f"Group {room}"},
                "music": {"favorite": "Spa Radio"},
                "speaker": {"host": "SET LATER"},
                "routine": "fast",
                "restore_fade": "0s",
            }
        self.hue.start()
        for room, sim in self.speakers.items():
            sim.start()
            rooms_cfg[room]["speaker"]["host"] = sim.address
        self.config = tmp_path / "relaxd.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "state_dir": str(tmp_path / "state"),
                    "retry_every": "1s",
                    "mqtt": {"host": broker.host, "port": broker.port},
                    "hue": {"host": self.hue.address, "username": self.hue.username, "https": False, "timeout": "2s"},
                    "rooms": rooms_cfg,
                    "routines": {"fast": FAST, "slow": SLOW},
                    "triggers": [
                        {
                            "topic": "zigbee2mqtt/Massage Button",
                            "match": {"action": "single"},
                            "room": "room1",
                            "do": "toggle",
                        }
                    ],
                }
            )
        )
        self.proc: subprocess.Popen[str] | None = None

    def before(self) -> dict[str, Any]:
        return {"lights": light_states(self.hue), "speakers": {r: speaker_state(s) for r, s in self.speakers.items()}}

    def start_daemon(self) -> None:
        self.log = open(self.tmp_path / "daemon.log", "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relaxd", "run", "-c", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop_daemon(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code

    def start_session(self, mqtt: Collector, routine: str, before: dict[str, Any]) -> None:
        """Start the daemon and a session over MQTT; return once the lights have really changed
        (phase_started goes out just before the scene reaches the devices)."""
        self.start_daemon()
        mqtt.wait_for_message("relaxd/status", "online", timeout_s=20)
        mqtt.publish("relaxd/room1/set", json.dumps({"action": "start", "routine": routine}))
        mqtt.wait_for(lambda m: "phase_started" in names(m), timeout_s=10)
        assert wait_until(lambda: light_states(self.hue) != before["lights"], 10)

    def daemon_log(self) -> str:
        return (self.tmp_path / "daemon.log").read_text()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.hue.stop()
        for sim in self.speakers.values():
            sim.stop()


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)
    yield r
    r.close()


def events(msgs: list[Received], room: str = "room1") -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in msgs if m.topic == f"relaxd/{room}/event"]


def names(msgs: list[Received], room: str = "room1") -> list[str]:
    return [e["event"] for e in events(msgs, room)]


def same_room(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["lights"] == before["lights"]
    for room, state in before["speakers"].items():
        now = after["speakers"][room]
        assert {k: v for k, v in now.items() if k != "position_s"} == {
            k: v for k, v in state.items() if k != "position_s"
        }
        assert abs(now["position_s"] - state["position_s"]) < 15


def test_a_button_press_runs_a_whole_session_and_restores_the_room(rig: Rig) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        mqtt.wait_for_message("relaxd/status", "online", timeout_s=20)
        mqtt.wait_for(lambda m: any(x.topic == "relaxd/room1/state" for x in m), timeout_s=10)
        mqtt.publish("zigbee2mqtt/Massage Button", json.dumps({"action": "single", "linkquality": 99}))
        msgs = mqtt.wait_for(lambda m: "room_restored" in names(m), timeout_s=30)
        seen = names(msgs)
        assert seen[0] == "session_started" and seen[-2:] == ["session_finished", "room_restored"]
        assert [e["phase"] for e in events(msgs) if e["event"] == "phase_started"] == ["warm_up", "knead", "finish"]
        assert [e["seq"] for e in events(msgs)] == sorted(e["seq"] for e in events(msgs))
        phases = [m.text for m in msgs if m.topic == "relaxd/room1/phase"]
        # Published when it changes, never repeated; `restoring` while the room is given back.
        assert phases[-5:] == ["warm_up", "knead", "finish", "restoring", "idle"]
        assert all(a != b for a, b in itertools.pairwise(phases))
        assert all(m.retain is False for m in msgs if m.topic.endswith("/event"))
        check_contract_fields(msgs)
        same_room(before, rig.before())
        assert rig.stop_daemon() == 0
        mqtt.wait_for_message("relaxd/status", "offline", timeout_s=10)


ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def check_contract_fields(msgs: list[Received]) -> None:
    """The payload fields docs/mqtt.md promises, as they arrive over MQTT."""
    phase = next(e for e in events(msgs) if e["event"] == "phase_started")
    assert {
        "event",
        "room",
        "at",
        "seq",
        "session_id",
        "routine",
        "phase",
        "phase_index",
        "phase_count",
        "technique",
        "intensity",
        "cues",
        "phase_ends_at",
        "session_ends_at",
    } <= set(phase)
    assert phase["room"] == "room1" and phase["routine"] == "fast" and phase["phase_count"] == 3
    assert 0 <= phase["intensity"] <= 1 and isinstance(phase["cues"], dict)
    for key in ("at", "phase_ends_at", "session_ends_at"):
        assert ISO_MS.match(phase[key]), phase[key]
    states = [json.loads(m.payload) for m in msgs if m.topic == "relaxd/room1/state"]
    running = next(s for s in states if s["state"] == "running")
    assert set(running) == STATE_FIELDS
    assert running["devices"] == {"lights": "online", "speaker": "online"}
    assert running["session_id"] == phase["session_id"]
    restored = next(e for e in events(msgs) if e["event"] == "room_restored")
    assert set(restored["details"]) == {"lights", "speaker"}


def test_sigterm_mid_session_restores_and_exits_0(rig: Rig) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_session(mqtt, "slow", before)
        assert rig.stop_daemon(signal.SIGTERM) == 0
        msgs = mqtt.wait_for(lambda m: "room_restored" in names(m), timeout_s=10)
        assert "session_stopped" in names(msgs)
    same_room(before, rig.before())
    assert not list((rig.tmp_path / "state" / "snapshots").glob("*.json"))


def test_kill_9_mid_session_then_start_again_restores_the_room(rig: Rig) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_session(mqtt, "slow", before)
        assert rig.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
        mqtt.wait_for(
            lambda m: any(x.topic == "relaxd/status" and x.text == "offline" for x in m), timeout_s=90
        )  # the last will, after the keep-alive runs out
        assert light_states(rig.hue) != before["lights"]
        mqtt.clear()
        rig.start_daemon()
        mqtt.wait_for(lambda m: "room_restored" in names(m), timeout_s=30)
    same_room(before, rig.before())
    assert rig.stop_daemon() == 0


def test_two_rooms_run_at_once_without_crosstalk(tmp_path: Path, mosquitto: Mosquitto) -> None:
    rig = Rig(tmp_path, mosquitto, rooms=2)
    try:
        before = rig.before()
        with Collector(mosquitto, ["relaxd/#"]) as mqtt:
            rig.start_daemon()
            mqtt.wait_for_message("relaxd/status", "online", timeout_s=20)
            mqtt.publish("relaxd/room1/set", "start")
            mqtt.publish("relaxd/room2/set", json.dumps({"action": "start", "routine": "slow"}))
            msgs = mqtt.wait_for(lambda m: "room_restored" in names(m, "room1"), timeout_s=30)
            assert "session_finished" not in names(msgs, "room2")
            room2_state = json.loads([m for m in msgs if m.topic == "relaxd/room2/state"][-1].payload)
            assert room2_state["state"] == "running" and room2_state["routine"] == "slow"
            assert all(e["room"] == "room2" for e in events(msgs, "room2"))
            assert light_states(rig.hue)["room1 ceiling"] == before["lights"]["room1 ceiling"]
            assert light_states(rig.hue)["room2 ceiling"] != before["lights"]["room2 ceiling"]
            mqtt.publish("relaxd/room2/set", "stop")
            mqtt.wait_for(lambda m: "room_restored" in names(m, "room2"), timeout_s=30)
        same_room(before, rig.before())
        assert rig.stop_daemon() == 0
    finally:
        rig.close()

"""A command storm across three rooms: every room ends consistent and restored, and the daemon keeps answering."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from relaxd.core.configfile import all_routines, load_settings
from tests.mosquitto import Collector, Mosquitto, Received
from tests.reliability import (
    STORM_COMMANDS,
    TEST_TIMEOUT_S,
    RoomModel,
    phases,
    reconfigure,
    settle_and_check,
    wait_online,
)
from tests.test_e2e_run import Rig, same_room

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TEST_TIMEOUT_S)]
ROOMS = ["room1", "room2", "room3"]
MALFORMED = [
    b"",
    b"{",
    b"\xff\xfe",
    b"sta rt",
    b'{"action": "start", "routine": "nope"}',
    b'{"action": 5}',
    b'{"action": "extend", "minutes": 999}',
    b'{"action": "stop", "colour": "red"}',
    b"[1, 2]",
    b'{"action": "pause"' + b" " * 70_000 + b"}",
    json.dumps({"action": "start", "transaction": "x" * 300}).encode(),
]


def storm(rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    """count commands: mostly the seven actions, plain and JSON, and malformed ones in between."""
    # Fewer starts than other actions: sessions last several commands, as a real crowd of buttons would.
    weights = {"start": 1, "toggle": 1, "stop": 2, "pause": 3, "resume": 3, "skip": 2, "extend": 3}
    out = []
    for i in range(count):
        room = rng.choice(ROOMS)
        roll = rng.random()
        if roll < 0.25:
            payload = rng.choice(MALFORMED)
        else:
            action = rng.choices(list(weights), list(weights.values()))[0]
            if roll < 0.6:
                payload = action.encode()
            else:
                body: dict[str, Any] = {"action": action, "transaction": f"s{i}"}
                if action == "extend":
                    body["minutes"] = rng.choice([1, 5, 30])
                if action in ("start", "toggle") and rng.random() < 0.5:
                    body["routine"] = rng.choice(["test", "slow"])
                payload = json.dumps(body).encode()
        out.append((room, payload))
    return out


def events(msgs: list[Received], room: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in msgs if m.topic == f"relaxd/{room}/event"]


def test_a_command_storm_leaves_every_room_consistent_and_the_daemon_responsive(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    rig = Rig(tmp_path, mosquitto, rooms=len(ROOMS))
    try:

        def change(config: dict[str, Any]) -> None:
            # Phases far longer than the test: every event follows from a command (see the model).
            # One light per room by name: light commands are paced at ten a second per bridge,
            # group commands at one, and hundreds of sessions start and end here.
            config["routines"] = {"test": phases(600, 600, 600), "slow": phases(600)}
            for room in ROOMS:
                config["rooms"][room].update(routine="test", lights={"names": [f"{room} ceiling"]})

        reconfigure(rig, change)
        counts = {n: len(r.phases) for n, r in all_routines(load_settings(rig.config)).items()}
        models = {room: RoomModel(counts) for room in ROOMS}
        commands = storm(random.Random(20261127), STORM_COMMANDS)
        before = rig.before()
        with Collector(mosquitto, ["relaxd/#"]) as mqtt:
            rig.start_daemon()
            wait_online(mqtt, rooms=len(ROOMS))
            mqtt.clear()
            began = time.monotonic()
            for room, payload in commands:
                mqtt.client.publish(f"relaxd/{room}/set", payload, qos=1)  # no wait: a storm
                models[room].command(payload)
            published = time.monotonic() - began
            # While the rooms work through the storm, a status request is still answered at once.
            asked = time.monotonic()
            mqtt.publish("relaxd/request/status", json.dumps({"transaction": "during"}))
            answer = json.loads(mqtt.wait_for_message("relaxd/response/status", timeout_s=10).payload)
            answered_s = time.monotonic() - asked
            assert answer["transaction"] == "during" and set(answer["data"]) == set(ROOMS)
            assert answered_s < 2.0, f"status took {answered_s:.1f} s during the storm"
            assert published < 10.0, f"publishing the storm took {published:.1f} s"

            finals: dict[str, str] = {}
            sessions = 0
            for room in ROOMS:
                finals[room], got = settle_and_check(mqtt, models[room], room, "storm", 60 + STORM_COMMANDS * 0.1)
                assert [e["seq"] for e in got] == list(range(got[0]["seq"], got[0]["seq"] + len(got)))
                assert all(e["room"] == room for e in got)
                sessions += [e["event"] for e in got].count("session_started")
            drain_s = time.monotonic() - began
            # The daemon answers promptly once the storm is over, too.
            mqtt.clear()
            asked = time.monotonic()
            mqtt.publish("relaxd/request/status", json.dumps({"transaction": "after"}))
            answer = json.loads(mqtt.wait_for_message("relaxd/response/status", timeout_s=5).payload)
            assert time.monotonic() - asked < 2.0
            states = answer["data"]
            for room in ROOMS:
                assert states[room]["state"] == finals[room]
            # A stop per room gives every room back exactly as it was before the storm.
            mqtt.clear()
            for room in ROOMS:
                mqtt.publish(f"relaxd/{room}/set", "stop")
                models[room].sent = []
                models[room].do("stop")
            for room in ROOMS:
                assert settle_and_check(mqtt, models[room], room, "after", 30)[0] == "idle"
        same_room(before, rig.before())
        assert not list((tmp_path / "state" / "snapshots").glob("*.json"))
        assert rig.stop_daemon() == 0
        assert "Traceback" not in rig.daemon_log()
        print(
            f"storm of {len(commands)}: published in {published:.1f} s, drained in {drain_s:.1f} s, "
            f"{sessions} sessions, {len([e for e in rig.hue.request_log() if e.method == 'PUT'])} light commands"
        )
    finally:
        rig.close()

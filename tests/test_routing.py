"""Message routing of the daemon: commands, rejections, triggers, requests (fake devices and bus)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relaxd.app.daemon import Daemon
from relaxd.core.config import Settings, TriggerConfig
from relaxd.core.triggers import TriggerMatcher
from tests.fakes import FakeClock, FakeLights, FakeSpeaker, RecordingBus


class Bus(RecordingBus):
    def __init__(self) -> None:
        super().__init__()
        self.raw: list[tuple[str, str, bool]] = []
        self.by_room: dict[str, list[dict[str, Any]]] = {}

    def publish_event(self, room: str, event: dict[str, Any]) -> None:
        super().publish_event(room, event)
        self.by_room.setdefault(room, []).append(event)

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.raw.append((topic, payload, retain))


@pytest.fixture
def daemon(tmp_path: Path) -> tuple[Daemon, Bus]:
    settings = Settings(
        state_dir=tmp_path,
        hue={"host": "127.0.0.1:9", "username": "u"},
        rooms={
            "bedroom": {"lights": {"group": "Bedroom"}, "speaker": {"host": "127.0.0.1:9"}},
            "studio": {"lights": {"names": ["a"]}},
        },
        triggers=[
            {
                "topic": "zigbee2mqtt/Massage Button",
                "match": {"action": "single"},
                "room": "bedroom",
                "do": "toggle",
                "routine": "quick",
            },
            {"topic": "home/studio/+", "match": "ON", "room": "studio", "do": "start"},
        ],
    )
    bus = Bus()
    devices = {"bedroom": (FakeLights(), FakeSpeaker()), "studio": (FakeLights(), None)}
    d = Daemon(settings, clock=FakeClock(), devices=devices, bus_factory=lambda _: bus)  # type: ignore[arg-type]
    d.build()
    return d, bus


def process(d: Daemon) -> None:
    for engine in d.engines.values():
        engine.process()


def test_plain_and_json_commands_reach_the_room(daemon: tuple[Daemon, Bus]) -> None:
    d, bus = daemon
    d.on_message("relaxd/bedroom/set", b"start", False)
    process(d)
    assert d.engines["bedroom"].status()["state"] == "running"
    d.on_message("relaxd/bedroom/set", b'{"action": "extend", "minutes": 5, "transaction": "t7"}', False)
    process(d)
    assert bus.of("session_extended")[0]["transaction"] == "t7"
    assert d.engines["studio"].status()["state"] == "idle"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"dance", "unknown command 'dance'"),
        (b'{"action": "start"', "payload is not valid JSON"),
        (b'{"action": "start", "volume": 3}', "volume: unknown field"),
        (b'{"action": "extend", "minutes": "lots"}', "minutes: Input should be a valid number"),
        (b"\xff\xfe", "payload is not UTF-8 text"),
        (b"x" * (64 * 1024 + 1), "payload too large"),
        (b'{"action": "start", "routine": "marathon", "transaction": "t3"}', "unknown routine 'marathon'"),
        (b"resume", "cannot resume while idle"),
    ],
)
def test_malformed_or_impossible_commands_are_rejected(daemon: tuple[Daemon, Bus], payload: bytes, reason: str) -> None:
    d, bus = daemon
    d.on_message("relaxd/bedroom/set", payload, False)
    process(d)
    rejected = bus.of("command_rejected")
    assert len(rejected) == 1 and reason in rejected[0]["reason"] and rejected[0]["room"] == "bedroom"
    assert d.engines["bedroom"].status()["state"] == "idle"


def test_rejection_echoes_the_transaction(daemon: tuple[Daemon, Bus]) -> None:
    d, bus = daemon
    d.on_message("relaxd/bedroom/set", b'{"action": "start", "routine": "nope", "transaction": "t3"}', False)
    process(d)
    assert bus.of("command_rejected")[0]["transaction"] == "t3"


def test_retained_commands_never_act(daemon: tuple[Daemon, Bus]) -> None:
    d, bus = daemon
    d.on_message("relaxd/bedroom/set", b"start", True)
    process(d)
    assert d.engines["bedroom"].status()["state"] == "idle"
    assert "retained" in bus.of("command_rejected")[0]["reason"]


def test_unknown_room_gets_a_rejection_on_its_own_topic(daemon: tuple[Daemon, Bus]) -> None:
    d, bus = daemon
    d.on_message("relaxd/kitchen/set", b'{"action": "start", "transaction": "k"}', False)
    event = bus.by_room["kitchen"][0]
    assert event["event"] == "command_rejected" and "unknown room 'kitchen'" in event["reason"]
    assert event["transaction"] == "k"


def test_button_trigger_toggles_and_retained_press_is_ignored(daemon: tuple[Daemon, Bus]) -> None:
    d, bus = daemon
    press = json.dumps({"action": "single", "battery": 97, "linkquality": 120}).encode()
    d.on_message("zigbee2mqtt/Massage Button", press, True)  # a broker replaying an old press
    process(d)
    assert d.engines["bedroom"].status()["state"] == "idle"
    d.on_message("zigbee2mqtt/Massage Button", press, False)
    process(d)
    started = bus.of("session_started")[0]
    assert started["routine"] == "quick" and started["reason"] == "trigger"
    d.on_message("zigbee2mqtt/Massage Button", b'{"action": "double"}', False)
    process(d)
    assert d.engines["bedroom"].status()["state"] == "running"
    d.on_message("zigbee2mqtt/Massage Button", press, False)
    process(d)
    assert d.engines["bedroom"].status()["state"] == "idle"


def test_exact_text_trigger_with_wildcard_topic(daemon: tuple[Daemon, Bus]) -> None:
    d, _ = daemon
    d.on_message("home/studio/massage", b"OFF", False)
    process(d)
    assert d.engines["studio"].status()["state"] == "idle"
    d.on_message("home/studio/massage", b"ON", False)
    process(d)
    assert d.engines["studio"].status()["state"] == "running"


def test_status_request_answers_with_the_transaction(daemon: tuple[Daemon, Bus]) -> None:
    d, bus = daemon
    d.on_message("relaxd/request/status", b'{"transaction": "s1", "room": "studio"}', False)
    topic, body, retain = bus.raw[-1]
    reply = json.loads(body)
    assert topic == "relaxd/response/status" and not retain
    assert reply["status"] == "ok" and reply["transaction"] == "s1" and reply["data"]["room"] == "studio"
    d.on_message("relaxd/request/status", b"[1, 2]", False)
    assert json.loads(bus.raw[-1][1])["status"] == "error"
    d.on_message("relaxd/request/status", b'{"room": "attic", "transaction": 5}', False)
    reply = json.loads(bus.raw[-1][1])
    assert reply["status"] == "error" and "attic" in reply["error"] and reply["transaction"] == "5"


def test_routine_select_sets_the_routine_for_the_next_start(daemon: tuple[Daemon, Bus]) -> None:
    d, bus = daemon
    d.on_message("relaxd/bedroom/routine/set", b"quick", False)
    process(d)
    assert d.engines["bedroom"].status()["routine"] == "quick"
    d.on_message("relaxd/bedroom/set", b"start", False)
    process(d)
    assert bus.of("session_started")[0]["routine"] == "quick"


def test_trigger_matcher_matches_fields_text_and_wildcards() -> None:
    matcher = TriggerMatcher(
        [
            TriggerConfig(topic="a/+/c", match={"action": "single"}, room="r"),
            TriggerConfig(topic="x/#", match="ON", room="r"),
        ]
    )
    assert matcher.fired("a/b/c", b'{"action": "single", "x": 1}', False)
    assert not matcher.fired("a/b/c", b'{"action": "double"}', False)
    assert not matcher.fired("a/b/c/d", b'{"action": "single"}', False)
    assert not matcher.fired("a/b/c", b"not json", False)
    assert matcher.fired("x/y/z", b" ON\n", False)
    assert not matcher.fired("x/y/z", b"ON", True)
    assert matcher.topics == ["a/+/c", "x/#"]


def test_discovery_of_a_room_that_left_the_config_is_removed(daemon: tuple[Daemon, Bus]) -> None:
    d, bus = daemon
    old = json.dumps({"availability_topic": "relaxd/status", "name": "Massage mode"}).encode()
    d.on_message("homeassistant/switch/relaxd_attic/massage_mode/config", old, True)
    removed = [(t, p) for t, p, r in bus.raw if r and "relaxd_attic" in t]
    assert removed and all(p == "" for _, p in removed)
    assert any(t == "homeassistant/switch/relaxd_attic/massage_mode/config" for t, _ in removed)
    bus.raw.clear()
    d.on_message("homeassistant/switch/relaxd_bedroom/massage_mode/config", old, True)  # still configured
    d.on_message("homeassistant/switch/relaxd_attic/massage_mode/config", old, False)  # not retained
    other = json.dumps({"availability_topic": "site2/status"}).encode()  # another daemon's room
    d.on_message("homeassistant/switch/relaxd_attic/massage_mode/config", other, True)
    assert bus.raw == []


def test_home_assistant_coming_online_republishes_discovery(daemon: tuple[Daemon, Bus]) -> None:
    d, bus = daemon
    d.on_message("homeassistant/status", b"online", False)
    topics = {t for t, _, r in bus.raw if r}
    assert "homeassistant/switch/relaxd_bedroom/massage_mode/config" in topics
    assert "homeassistant/select/relaxd_studio/routine/config" in topics

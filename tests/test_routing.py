"""Message routing of the daemon: commands, rejections, triggers, requests (fake devices and bus)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaxd.app.daemon import Daemon, Devices
from relaxd.core.config import Settings, TriggerConfig
from relaxd.core.triggers import TriggerMatcher
from tests.daemon_rig import FakeBus, deliver, quiet, start_daemon
from tests.fakes import FakeClock, FakeLights, FakeSpeaker


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeBus]]:
    settings = Settings.model_validate(
        {
            "state_dir": tmp_path,
            "hue": {"host": "127.0.0.1:9", "username": "u"},
            "rooms": {
                "bedroom": {"lights": {"group": "Bedroom"}, "speaker": {"host": "127.0.0.1:9"}},
                "studio": {"lights": {"names": ["a"]}},
            },
            "triggers": [
                {
                    "topic": "zigbee2mqtt/Massage Button",
                    "match": {"action": "single"},
                    "room": "bedroom",
                    "do": "toggle",
                    "routine": "quick",
                },
                {"topic": "home/studio/+", "match": "ON", "room": "studio", "do": "start"},
            ],
        }
    )
    bus = FakeBus()
    devices: Devices = {"bedroom": (FakeLights(), FakeSpeaker()), "studio": (FakeLights(), None)}
    d = await start_daemon(settings, devices, FakeClock(), bus)
    yield d, bus
    await d.shutdown()


async def test_plain_and_json_commands_reach_the_room(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    await deliver(d, "relaxd/bedroom/set", b"start", False)
    assert d.engines["bedroom"].status()["state"] == "running"
    await deliver(d, "relaxd/bedroom/set", b'{"action": "extend", "minutes": 5, "transaction": "t7"}', False)
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
async def test_malformed_or_impossible_commands_are_rejected(
    daemon: tuple[Daemon, FakeBus], payload: bytes, reason: str
) -> None:
    d, bus = daemon
    await deliver(d, "relaxd/bedroom/set", payload, False)
    rejected = bus.of("command_rejected")
    assert len(rejected) == 1 and reason in rejected[0]["reason"] and rejected[0]["room"] == "bedroom"
    assert d.engines["bedroom"].status()["state"] == "idle"


async def test_rejection_echoes_the_transaction(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    await deliver(d, "relaxd/bedroom/set", b'{"action": "start", "routine": "nope", "transaction": "t3"}', False)
    assert bus.of("command_rejected")[0]["transaction"] == "t3"


async def test_retained_commands_never_act(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    await deliver(d, "relaxd/bedroom/set", b"start", True)
    assert d.engines["bedroom"].status()["state"] == "idle"
    assert "retained" in bus.of("command_rejected")[0]["reason"]


async def test_unknown_room_is_rejected_on_the_daemon_topic_not_its_own(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    await deliver(d, "relaxd/kitchen/set", b'{"action": "start", "transaction": "k"}', False)
    await deliver(d, "relaxd/Bad-Room/set", b"{not json", False)  # not even a valid room id
    await deliver(d, "relaxd/kitchen/routine/set", b"quick", False)
    await deliver(d, "relaxd/kitchen/set", b"start", True)  # retained junk: nobody to answer
    assert "kitchen" not in bus.by_room and "Bad-Room" not in bus.by_room
    rejected = [(json.loads(body), retain) for topic, body, retain in bus.raw if topic == "relaxd/event"]
    assert [r for _, r in rejected] == [False, False, False]
    events = [e for e, _ in rejected]
    assert [e["topic"] for e in events] == ["relaxd/kitchen/set", "relaxd/Bad-Room/set", "relaxd/kitchen/routine/set"]
    assert [e["reason"] for e in events] == [
        "unknown room 'kitchen'",
        "unknown room 'Bad-Room'",
        "unknown room 'kitchen'",
    ]
    assert [e["transaction"] for e in events] == ["k", None, None]
    assert all(e["event"] == "command_rejected" and e["at"].endswith("Z") for e in events)
    assert set(events[0]) == {"event", "at", "topic", "reason", "transaction"}


async def test_a_long_topic_is_echoed_cut(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    room = "r" * 5000
    await deliver(d, f"relaxd/{room}/set", b"start", False)
    event = json.loads(next(body for topic, body, _ in bus.raw if topic == "relaxd/event"))
    assert len(event["topic"]) == 120 and event["topic"].endswith("...") and len(event["reason"]) < 100


async def test_a_request_with_a_reply_function_is_answered_there_only(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    replies: list[bytes] = []
    assert d.router is not None
    d.router.receive("relaxd/request/status", b'{"transaction": "r1", "room": "studio"}', False, replies.append)
    d.router.receive("relaxd/request/schedule/list", b'{"transaction": "r2"}', False, replies.append)
    await quiet(d)
    for _ in range(50):
        if len(replies) == 2:
            break
        await asyncio.sleep(0)  # the queued request is answered by the requests task
    assert sorted(json.loads(r)["transaction"] for r in replies) == ["r1", "r2"]
    assert [t for t, _, _ in bus.raw if t.startswith("relaxd/response/")] == []


async def test_button_trigger_toggles_and_retained_press_is_ignored(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    press = json.dumps({"action": "single", "battery": 97, "linkquality": 120}).encode()
    await deliver(d, "zigbee2mqtt/Massage Button", press, True)  # a broker replaying an old press
    assert d.engines["bedroom"].status()["state"] == "idle"
    await deliver(d, "zigbee2mqtt/Massage Button", press, False)
    started = bus.of("session_started")[0]
    assert started["routine"] == "quick" and started["reason"] == "trigger"
    await deliver(d, "zigbee2mqtt/Massage Button", b'{"action": "double"}', False)
    assert d.engines["bedroom"].status()["state"] == "running"
    await deliver(d, "zigbee2mqtt/Massage Button", press, False)
    assert d.engines["bedroom"].status()["state"] == "idle"


async def test_exact_text_trigger_with_wildcard_topic(daemon: tuple[Daemon, FakeBus]) -> None:
    d, _ = daemon
    await deliver(d, "home/studio/massage", b"OFF", False)
    assert d.engines["studio"].status()["state"] == "idle"
    await deliver(d, "home/studio/massage", b"ON", False)
    assert d.engines["studio"].status()["state"] == "running"


async def test_status_request_answers_with_the_transaction(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    await deliver(d, "relaxd/request/status", b'{"transaction": "s1", "room": "studio"}', False)
    topic, body, retain = bus.raw[-1]
    reply = json.loads(body)
    assert topic == "relaxd/response/status" and not retain
    assert reply["status"] == "ok" and reply["transaction"] == "s1" and reply["data"]["room"] == "studio"
    await deliver(d, "relaxd/request/status", b"[1, 2]", False)
    assert json.loads(bus.raw[-1][1])["status"] == "error"
    await deliver(d, "relaxd/request/status", b'{"room": "attic", "transaction": 5}', False)
    reply = json.loads(bus.raw[-1][1])
    assert reply["status"] == "error" and "attic" in reply["error"] and reply["transaction"] == 5


async def test_routine_select_sets_the_routine_for_the_next_start(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    await deliver(d, "relaxd/bedroom/routine/set", b"quick", False)
    assert d.engines["bedroom"].status()["routine"] == "quick"
    await deliver(d, "relaxd/bedroom/set", b"start", False)
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


async def test_discovery_of_a_room_that_left_the_config_is_removed(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    old = json.dumps({"availability_topic": "relaxd/status", "name": "Massage mode"}).encode()  # older relaxd's
    await deliver(d, "homeassistant/switch/relaxd_attic/massage_mode/config", old, True)
    assert sorted((t, p) for t, p, r in bus.raw if r) == [
        ("homeassistant/switch/relaxd_attic/massage_mode/config", ""),  # the config seen, once
        ("relaxd/attic/phase", ""),  # and the gone room's retained state
        ("relaxd/attic/state", ""),
    ]
    bus.raw.clear()
    await deliver(d, "homeassistant/switch/relaxd_attic/massage_mode/config", old, True)  # seen again
    await deliver(d, "homeassistant/sensor/relaxd_attic/phase/config", old, False)  # not retained
    other = json.dumps({"availability_topic": "site2/status"}).encode()  # another daemon's room
    await deliver(d, "homeassistant/switch/relaxd_attic/massage_mode/config", other, True)
    site2 = json.dumps({"device": {"identifiers": ["relaxd-site2-attic"]}}).encode()
    await deliver(d, "homeassistant/switch/site2-attic/massage_mode/config", site2, True)
    assert bus.raw == []
    # An older relaxd's config of a room still configured goes too (upgrade); its state stays.
    await deliver(d, "homeassistant/switch/relaxd_bedroom/massage_mode/config", old, True)
    assert [(t, p) for t, p, r in bus.raw] == [("homeassistant/switch/relaxd_bedroom/massage_mode/config", "")]


async def test_home_assistant_coming_online_republishes_discovery(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    await deliver(d, "homeassistant/status", b"online", False)
    topics = {t for t, _, r in bus.raw if r}
    assert "homeassistant/switch/relaxd-bedroom/massage_mode/config" in topics
    assert "homeassistant/select/relaxd-studio/routine/config" in topics
    assert "homeassistant/binary_sensor/relaxd/status/config" in topics  # the daemon device


async def test_a_flood_of_schedule_requests_never_delays_a_command(daemon: tuple[Daemon, FakeBus]) -> None:
    # Seen: 800 schedule/add fsynced inside paho's callback, then a stop answered 13 s later.
    d, bus = daemon
    await deliver(d, "relaxd/bedroom/set", b"start")
    assert d.router is not None
    for i in range(300):
        body = {"room": "studio", "cron": f"{i % 60} {i // 60 % 24} * * *", "transaction": i}
        d.router.receive("relaxd/request/schedule/add", json.dumps(body).encode(), False)
    d.router.receive("relaxd/bedroom/set", b"stop", False)
    d.router.receive("relaxd/request/status", b'{"room": "bedroom", "transaction": "s"}', False)
    for _ in range(100):
        await asyncio.sleep(0)
    # The stop and the status are handled while most of the adds still wait for the state dir.
    assert "session_stopped" in bus.names()
    replies = [json.loads(p) for t, p, _ in bus.raw if t.startswith("relaxd/response/")]
    assert [r["transaction"] for r in replies if "room" in str(r.get("data"))][:1] == ["s"]
    added = [r for r in replies if r["transaction"] != "s"]
    assert len(added) < 300
    for _ in range(600):
        replies = [json.loads(p) for t, p, _ in bus.raw if t == "relaxd/response/schedule/add"]
        if len(replies) == 300:
            break
        await asyncio.sleep(0.05)
    assert [r["transaction"] for r in replies] == list(range(300))  # every one answered, in order

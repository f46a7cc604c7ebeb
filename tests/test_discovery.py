"""Home Assistant discovery payloads, removal and parsing; one round trip through a real Mosquitto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relaxd import __version__
from relaxd.adapters.mqtt import MqttBus
from relaxd.core.config import MqttConfig, Settings
from relaxd.core.discovery import (
    ENTITIES,
    discovery_messages,
    removal_messages,
    room_of_discovery_message,
    rooms_in_discovery_topic,
)
from relaxd.core.topics import Topics
from tests.mosquitto import Collector, Mosquitto

ROUTINES = ["classic", "evening", "quick"]
TOPICS = Topics()


@pytest.fixture
def settings() -> Settings:
    return Settings.model_validate(
        {
            "hue": {"host": "127.0.0.1:9", "username": "u"},
            "rooms": {
                "bedroom": {"lights": {"group": "Bedroom"}, "speaker": {"host": "127.0.0.1:9"}},
                "studio_2": {"speaker": {"name": "Studio"}},
            },
        }
    )


def configs(settings: Settings, topics: Topics = TOPICS) -> dict[str, dict[str, Any]]:
    messages = discovery_messages(settings, topics, ROUTINES)
    assert len({t for t, _ in messages}) == len(messages), "a topic announced twice"
    return {topic: json.loads(body) for topic, body in messages}


def test_one_device_per_room_with_every_entity(settings: Settings) -> None:
    found = configs(settings)
    expected = {f"homeassistant/{c}/relaxd_{room}/{o}/config" for room in ("bedroom", "studio_2") for c, o in ENTITIES}
    assert set(found) == expected
    assert len(ENTITIES) == 7
    for room in ("bedroom", "studio_2"):
        devices = [c["device"] for t, c in found.items() if f"/relaxd_{room}/" in t]
        assert len(devices) == 7 and all(d == devices[0] for d in devices)
        assert devices[0] == {
            "identifiers": [f"relaxd_{room}"],
            "name": f"relaxd {room.replace('_', ' ')}",
            "manufacturer": "relaxd",
            "model": "relaxd massage room",
            "sw_version": __version__,
        }
    unique_ids = [c["unique_id"] for c in found.values()]
    assert len(set(unique_ids)) == len(unique_ids) == 14


def test_every_entity_is_available_with_the_daemon_and_names_its_origin(settings: Settings) -> None:
    for config in configs(settings).values():
        assert config["availability_topic"] == "relaxd/status"
        assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
        assert config["origin"] == {"name": "relaxd", "sw_version": __version__}
        assert config["qos"] == 1
        assert config["name"]


def test_switch_massage_mode(settings: Settings) -> None:
    switch = configs(settings)["homeassistant/switch/relaxd_bedroom/massage_mode/config"]
    assert switch["name"] == "Massage mode"
    assert switch["unique_id"] == "relaxd_bedroom_massage_mode"
    assert switch["state_topic"] == "relaxd/bedroom/state"
    # On during running, paused and restoring: everything but idle.
    assert switch["value_template"] == "{{ 'OFF' if value_json.state == 'idle' else 'ON' }}"
    assert (switch["state_on"], switch["state_off"]) == ("ON", "OFF")
    assert switch["command_topic"] == "relaxd/bedroom/set"
    assert (switch["payload_on"], switch["payload_off"]) == ("start", "stop")


def test_select_routine(settings: Settings) -> None:
    select = configs(settings)["homeassistant/select/relaxd_studio_2/routine/config"]
    assert select["name"] == "Routine"
    assert select["options"] == ROUTINES
    assert select["state_topic"] == "relaxd/studio_2/state"
    assert select["value_template"] == "{{ value_json.routine }}"
    assert select["command_topic"] == "relaxd/studio_2/routine/set"


def test_sensors_phase_and_timestamps(settings: Settings) -> None:
    found = configs(settings)
    phase = found["homeassistant/sensor/relaxd_bedroom/phase/config"]
    assert phase["state_topic"] == "relaxd/bedroom/phase"
    assert "value_template" not in phase and "device_class" not in phase
    end = found["homeassistant/sensor/relaxd_bedroom/session_end/config"]
    nxt = found["homeassistant/sensor/relaxd_bedroom/next_session/config"]
    assert (end["name"], nxt["name"]) == ("Session end", "Next session")
    for sensor, field in ((end, "session_ends_at"), (nxt, "next_session_at")):
        assert sensor["device_class"] == "timestamp"
        assert sensor["state_topic"] == "relaxd/bedroom/state"
        assert sensor["value_template"] == f"{{{{ value_json.{field} }}}}"
        assert "unit_of_measurement" not in sensor  # HA rejects a unit on timestamps


def test_buttons_skip_and_extend(settings: Settings) -> None:
    found = configs(settings)
    skip = found["homeassistant/button/relaxd_bedroom/skip_phase/config"]
    extend = found["homeassistant/button/relaxd_bedroom/extend/config"]
    assert (skip["name"], extend["name"]) == ("Skip phase", "Extend 5 min")
    assert skip["command_topic"] == extend["command_topic"] == "relaxd/bedroom/set"
    assert (skip["payload_press"], extend["payload_press"]) == ("skip", "extend")
    assert "state_topic" not in skip


def test_base_topic_and_prefix_are_followed(settings: Settings) -> None:
    found = configs(settings, Topics("site1/relaxd", "ha"))
    assert all(t.startswith("ha/") for t in found)
    switch = found["ha/switch/relaxd_bedroom/massage_mode/config"]
    assert switch["state_topic"] == "site1/relaxd/bedroom/state"
    assert switch["command_topic"] == "site1/relaxd/bedroom/set"
    assert switch["availability_topic"] == "site1/relaxd/status"


def test_no_select_without_routines(settings: Settings) -> None:
    topics = [t for t, _ in discovery_messages(settings, TOPICS, [])]
    assert not any("/select/" in t for t in topics) and len(topics) == 12


def test_discovery_off_without_prefix(settings: Settings) -> None:
    off = Topics(discovery_prefix=None)
    assert discovery_messages(settings, off, ROUTINES) == []
    assert removal_messages(off, ["bedroom"]) == []
    assert off.ha_config_wildcard is None


def test_removal_clears_every_entity_a_room_announced(settings: Settings) -> None:
    removal = removal_messages(TOPICS, ["bedroom"])
    announced = {t for t in configs(settings) if "/relaxd_bedroom/" in t}
    assert {t for t, _ in removal} == announced
    assert {body for _, body in removal} == {""}


@pytest.mark.parametrize(
    ("topic", "room"),
    [
        ("homeassistant/switch/relaxd_bedroom/massage_mode/config", "bedroom"),
        ("homeassistant/sensor/relaxd_studio_2/phase/config", "studio_2"),
        ("my/ha/button/relaxd_spa/extend/config", "spa"),
        ("homeassistant/sensor/zigbee_lamp/temperature/config", None),
        ("homeassistant/sensor/relaxd_/phase/config", None),
        ("homeassistant/sensor/relaxd_Bad-Room/phase/config", None),
        ("homeassistant/sensor/relaxd_bedroom/phase/state", None),
        ("homeassistant/sensor/relaxd_bedroom/config", None),
        ("relaxd/bedroom/state", None),
    ],
)
def test_rooms_in_discovery_topic(topic: str, room: str | None) -> None:
    assert rooms_in_discovery_topic(topic) == room


def test_a_discovery_config_counts_only_when_this_daemon_announced_it(settings: Settings) -> None:
    topic, body = discovery_messages(settings, TOPICS, ROUTINES)[0]
    assert room_of_discovery_message(topic, body.encode(), TOPICS) == "bedroom"
    assert room_of_discovery_message(topic, b"", TOPICS) is None  # already removed
    assert room_of_discovery_message(topic, b"not json", TOPICS) is None
    other_site = Topics("site2/relaxd")  # another daemon on the same broker and prefix
    assert room_of_discovery_message(topic, body.encode(), other_site) is None
    assert room_of_discovery_message(topic, body.encode(), Topics(discovery_prefix="ha")) is None


def test_published_retained_through_a_real_broker(settings: Settings, mosquitto: Mosquitto) -> None:
    bus = MqttBus(MqttConfig(host=mosquitto.host, port=mosquitto.port), TOPICS, lambda t, p, r: None)
    messages = discovery_messages(settings, TOPICS, ROUTINES)
    bus.start()
    try:
        assert bus.wait_connected(5)
        with Collector(mosquitto, ["homeassistant/#"]) as live:  # publishing is asynchronous
            for topic, body in messages:
                bus.publish(topic, body, retain=True)
            live.wait_for(lambda ms: len(ms) >= len(messages))
        with Collector(mosquitto, ["homeassistant/#"]) as ha:
            got = ha.wait_for(lambda ms: len(ms) >= len(messages))
            assert {m.topic: m.text for m in got} == dict(messages)
            assert all(m.retain for m in got)
        # What the daemon does to find rooms it announced before: the wildcard, then filter.
        assert TOPICS.ha_config_wildcard is not None
        with Collector(mosquitto, []) as other:
            other.publish("homeassistant/sensor/zigbee_lamp/temperature/config", "{}", retain=True)
        with Collector(mosquitto, [TOPICS.ha_config_wildcard]) as finder:
            found = finder.wait_for(lambda ms: len(ms) >= len(messages) + 1)
            rooms = {room_of_discovery_message(m.topic, m.payload, TOPICS) for m in found}
            assert rooms == {"bedroom", "studio_2", None}
        with Collector(mosquitto, ["homeassistant/+/relaxd_studio_2/#"]) as live:
            live.wait_for(lambda ms: len(ms) >= 7)
            live.clear()
            for topic, body in removal_messages(TOPICS, ["studio_2"]):
                bus.publish(topic, body, retain=True)
            live.wait_for(lambda ms: len(ms) >= 7 and all(m.payload == b"" for m in ms))
        with Collector(mosquitto, ["homeassistant/#"]) as ha:
            # The broker sends retained messages right after SUBACK, so before this later one.
            with Collector(mosquitto, []) as other:
                other.publish("homeassistant/flush", "x")
            ha.wait_for_message("homeassistant/flush")
            left = {m.topic for m in ha.snapshot() if "/relaxd_" in m.topic}
            assert left == {t for t, _ in messages if "relaxd_bedroom" in t}
    finally:
        bus.stop()

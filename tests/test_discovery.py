"""Home Assistant discovery: identity per site, entities, removal once; the real Mosquitto for the bus parts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relaxd import __version__
from relaxd.adapters.mqtt import MqttBus
from relaxd.app.announce import Announcer
from relaxd.core.config import MqttConfig, Settings
from relaxd.core.configfile import all_routines
from relaxd.core.discovery import discovery_messages, ours, site_id
from relaxd.core.discovery_entities import phase_options
from relaxd.core.topics import Topics
from tests.mosquitto import Collector, Mosquitto

TOPICS = Topics()
ROOM_ENTITIES = {
    ("switch", "massage_mode"),
    ("select", "routine"),
    ("sensor", "phase"),
    ("sensor", "state"),
    ("sensor", "phase_end"),
    ("sensor", "session_end"),
    ("sensor", "next_session"),
    ("button", "pause"),
    ("button", "resume"),
    ("button", "skip_phase"),
    ("button", "extend"),
    ("number", "extend_by"),
    ("event", "event"),
}


def make_settings(rooms: dict[str, Any] | None = None) -> Settings:
    return Settings.model_validate(
        {
            "hue": {"host": "127.0.0.1:9", "username": "u"},
            "rooms": rooms
            or {
                "bedroom": {"lights": {"group": "Bedroom"}, "speaker": {"host": "127.0.0.1:9"}},
                "studio_2": {"speaker": {"name": "Studio"}},
            },
        }
    )


@pytest.fixture
def settings() -> Settings:
    return make_settings()


def configs(settings: Settings, topics: Topics = TOPICS) -> dict[str, dict[str, Any]]:
    messages = discovery_messages(settings, topics, all_routines(settings))
    assert len({t for t, _ in messages}) == len(messages), "a topic announced twice"
    return {topic: json.loads(body) for topic, body in messages}


def test_the_daemon_device_and_one_device_per_room(settings: Settings) -> None:
    found = configs(settings)
    room_topics = {
        f"homeassistant/{c}/relaxd-{r}/{o}/config" for r in ("bedroom", "studio_2") for c, o in ROOM_ENTITIES
    }
    room_topics |= {f"homeassistant/binary_sensor/relaxd-bedroom/{d}/config" for d in ("lights", "speaker")}
    room_topics.add("homeassistant/binary_sensor/relaxd-studio_2/speaker/config")  # no lights: no lights sensor
    daemon_topics = {
        f"homeassistant/{c}/relaxd/{o}/config"
        for c, o in (("binary_sensor", "status"), ("sensor", "version"), ("sensor", "rooms"))
    }
    assert set(found) == room_topics | daemon_topics
    daemon = found["homeassistant/sensor/relaxd/version/config"]["device"]
    assert daemon == {
        "identifiers": ["relaxd-relaxd"],
        "name": "relaxd",
        "manufacturer": "relaxd",
        "model": "relaxd daemon",
        "sw_version": __version__,
    }
    for room, area in (("bedroom", "Bedroom"), ("studio_2", "Studio 2")):
        devices = [c["device"] for t, c in found.items() if f"/relaxd-{room}/" in t]
        assert all(d == devices[0] for d in devices)
        assert devices[0]["identifiers"] == [f"relaxd-relaxd-{room}"]
        assert devices[0]["via_device"] == "relaxd-relaxd"
        assert devices[0]["suggested_area"] == area
    unique_ids = [c["unique_id"] for c in found.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    assert (
        found["homeassistant/switch/relaxd-bedroom/massage_mode/config"]["object_id"] == "relaxd_bedroom_massage_mode"
    )
    rooms = found["homeassistant/sensor/relaxd/rooms/config"]
    assert rooms["value_template"] == "{{ 2 }}" and "bedroom" in rooms["json_attributes_template"]


@pytest.mark.parametrize(("base", "site"), [("relaxd", "relaxd"), ("site2", "site2"), ("Site-2", None), ("a/b", None)])
def test_site_ids_are_node_ids_and_never_shared(base: str, site: str | None) -> None:
    got = site_id(base)
    assert got.replace("_", "").isalnum()  # a discovery node id, and no `-` (the room separator)
    if site is not None:
        assert got == site
    assert site_id("a/b") != site_id("a_b") != site_id("a-b")


def test_two_sites_with_the_same_room_share_nothing(settings: Settings) -> None:
    one, two = configs(settings, Topics("relaxd")), configs(settings, Topics("site2"))
    assert not set(one) & set(two)
    assert not {c["unique_id"] for c in one.values()} & {c["unique_id"] for c in two.values()}
    ids = [{i for c in found.values() for i in c["device"]["identifiers"]} for found in (one, two)]
    assert not ids[0] & ids[1]
    switch = two["homeassistant/switch/site2-bedroom/massage_mode/config"]
    assert switch["command_topic"] == "site2/bedroom/set"
    assert switch["device"]["name"] == "relaxd site2 bedroom"
    assert [a["topic"] for a in switch["availability"]] == ["site2/status"]


def test_every_entity_but_the_status_is_available_with_the_daemon(settings: Settings) -> None:
    for topic, config in configs(settings).items():
        assert config["origin"] == {"name": "relaxd", "sw_version": __version__}
        assert config["qos"] == 1 and config["name"]
        assert "availability_topic" not in config and "extra_availability" not in config
        if topic.endswith("/relaxd/status/config"):
            assert "availability" not in config  # shows `offline` itself instead of turning unavailable
            continue
        assert config["availability"][0] == {
            "topic": "relaxd/status",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
        acts = "/button/" in topic or "/number/" in topic
        assert (len(config["availability"]) == 2) == acts, topic
        assert (config.get("availability_mode") == "all") == acts
        if acts:
            assert config["availability"][1]["topic"].endswith("/state")


def test_enum_sensors_list_every_state_they_can_show(settings: Settings) -> None:
    found = configs(settings)
    phase = found["homeassistant/sensor/relaxd-bedroom/phase/config"]
    names = [p.name for r in all_routines(settings).values() for p in r.phases]
    assert phase["device_class"] == "enum"
    assert set(phase["options"]) == {*names, "idle", "restoring"}
    assert len(phase["options"]) == len(set(phase["options"]))
    assert phase["state_topic"] == "relaxd/bedroom/phase" and phase["json_attributes_topic"] == "relaxd/bedroom/state"
    state = found["homeassistant/sensor/relaxd-bedroom/state/config"]
    assert state["options"] == ["idle", "running", "paused", "restoring"]


def test_phase_options_keep_shared_names_once() -> None:
    routines = all_routines(make_settings())
    assert phase_options({"a": routines["classic"], "b": routines["classic"]}) == [
        *(p.name for p in routines["classic"].phases),
        "idle",
        "restoring",
    ]


def test_diagnostics_icons_and_timestamps(settings: Settings) -> None:
    found = configs(settings)
    for device in ("lights", "speaker"):
        sensor = found[f"homeassistant/binary_sensor/relaxd-bedroom/{device}/config"]
        assert (sensor["device_class"], sensor["entity_category"]) == ("connectivity", "diagnostic")
    for topic, config in found.items():
        assert "icon" in config or config.get("device_class") == "connectivity", topic
    for object_id, field in (("phase_end", "phase_ends_at"), ("session_end", "session_ends_at")):
        sensor = found[f"homeassistant/sensor/relaxd-bedroom/{object_id}/config"]
        assert sensor["device_class"] == "timestamp" and field in sensor["value_template"]
        assert "{% else %}None{% endif %}" in sensor["value_template"]  # HA's "no value" (rendering: test_ha_schema)


def test_discovery_off_without_prefix(settings: Settings) -> None:
    off = Topics(discovery_prefix=None)
    assert discovery_messages(settings, off, all_routines(settings)) == []
    assert off.ha_config_wildcard is None


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | bytes, bool]] = []

    def publish(self, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1) -> None:
        self.sent.append((topic, payload, retain))

    def publish_state(self, room: str, state: dict[str, Any], phase: str) -> None:
        raise AssertionError("discovery never publishes a room state")

    def publish_event(self, room: str, event: dict[str, Any]) -> None:
        raise AssertionError("discovery never publishes an event")


OLD = json.dumps({"availability_topic": "relaxd/status", "name": "Massage mode"}).encode()


def test_ours_tells_this_sites_configs_from_others(settings: Settings) -> None:
    new = dict(discovery_messages(settings, TOPICS, all_routines(settings)))
    body = new["homeassistant/switch/relaxd-bedroom/massage_mode/config"].encode()
    assert ours("homeassistant/switch/relaxd-bedroom/massage_mode/config", body, TOPICS) is not None
    assert ours("homeassistant/switch/relaxd-bedroom/massage_mode/config", body, Topics("site2")) is None
    assert ours("homeassistant/switch/relaxd_attic/massage_mode/config", OLD, TOPICS) is not None  # old style
    assert ours("homeassistant/switch/relaxd_attic/massage_mode/config", OLD, Topics("site2")) is None
    assert ours("homeassistant/switch/relaxd_attic/massage_mode/config", b"", TOPICS) is None
    assert ours("homeassistant/switch/relaxd_attic/massage_mode/config", b"[1]", TOPICS) is None
    assert ours("ha/switch/relaxd_attic/massage_mode/config", OLD, TOPICS) is None  # another prefix
    assert ours("homeassistant/sensor/zigbee_lamp/temperature/config", b'{"name": "t"}', TOPICS) is None


def test_stale_configs_are_removed_once_each_and_a_gone_rooms_state_cleared(settings: Settings) -> None:
    bus = Recorder()
    announcer = Announcer(settings, TOPICS, bus, ["classic", "quick"])
    old_room = [f"homeassistant/{c}/relaxd_attic/{o}/config" for c, o in sorted(ROOM_ENTITIES)][:7]
    old_kept_room = "homeassistant/switch/relaxd_bedroom/massage_mode/config"  # upgrade: old style of a kept room
    gone = json.loads(announcer.messages[5][1]) | {"device": {"identifiers": ["relaxd-relaxd-cellar"]}}
    stale_new = "homeassistant/sensor/relaxd-cellar/phase/config"
    for _ in range(3):  # each retained config seen again (reconnects, echoes) changes nothing more
        for topic in [*old_room, old_kept_room]:
            announcer.remove_stale(topic, OLD)
        announcer.remove_stale(stale_new, json.dumps(gone).encode())
        for topic, body in announcer.messages:  # what it announces itself is never removed
            announcer.remove_stale(topic, body.encode())
    assert sorted(t for t, p, r in bus.sent if t.endswith("/config")) == sorted([*old_room, old_kept_room, stale_new])
    cleared = [t for t, p, r in bus.sent if not t.endswith("/config")]
    assert sorted(cleared) == ["relaxd/attic/phase", "relaxd/attic/state", "relaxd/cellar/phase", "relaxd/cellar/state"]
    assert all(p == "" and r for _, p, r in bus.sent)


def test_another_sites_configs_are_never_removed(settings: Settings) -> None:
    bus = Recorder()
    announcer = Announcer(settings, TOPICS, bus, ["classic"])
    for topic, body in discovery_messages(make_settings({"attic": {"lights": {"group": "A"}}}), Topics("site2"), {}):
        announcer.remove_stale(topic, body.encode())
    announcer.remove_stale(
        "homeassistant/switch/relaxd_attic/massage_mode/config", b'{"availability_topic": "site2/status"}'
    )
    assert bus.sent == []


def retained(mosquitto: Mosquitto, pattern: str) -> dict[str, bytes]:
    """What a fresh subscriber to pattern is handed as retained (the marker comes after them all)."""
    with Collector(mosquitto, [pattern, "zz/flush"]) as fresh:
        with Collector(mosquitto, []) as other:
            other.publish("zz/flush", "x")
        fresh.wait_for_message("zz/flush")
        return {m.topic: m.payload for m in fresh.snapshot() if m.retain}


def test_upgrade_and_two_sites_on_one_real_broker(mosquitto: Mosquitto) -> None:
    """Site 1 upgrades from old-style configs and drops a room; site 2 (same room ids) keeps all it has."""
    site1_before = make_settings(
        {"bedroom": {"lights": {"group": "B"}}, "attic": {"lights": {"group": "A"}}}
    )  # what site 1 ran before: its old-style configs and retained state are on the broker
    site1 = make_settings({"bedroom": {"lights": {"group": "B"}}})
    site2 = make_settings({"bedroom": {"lights": {"group": "B"}}, "attic": {"speaker": {"host": "127.0.0.1:9"}}})
    old_topics = [f"homeassistant/switch/relaxd_{r}/massage_mode/config" for r in site1_before.rooms]
    old_topics += [f"homeassistant/sensor/relaxd_{r}/phase/config" for r in site1_before.rooms]
    with Collector(mosquitto, []) as seed:
        for topic in old_topics:
            seed.publish(topic, OLD, retain=True)
        for room in site1_before.rooms:
            seed.publish(f"relaxd/{room}/state", '{"state": "idle"}', retain=True)
            seed.publish(f"relaxd/{room}/phase", "idle", retain=True)
    buses = []
    try:
        announcers = []
        for cfg, topics in ((site2, Topics("site2")), (site1, Topics("relaxd"))):
            bus = MqttBus(MqttConfig(host=mosquitto.host, port=mosquitto.port), topics, lambda t, p, r: None)
            bus.start()
            buses.append(bus)
            assert bus.wait_connected(5)
            announcer = Announcer(cfg, topics, bus, sorted(all_routines(cfg)))
            announcers.append(announcer)
            with Collector(mosquitto, ["homeassistant/#"]) as live:
                announcer.publish()
                count = len(announcer.messages)
                live.wait_for(lambda ms: len(ms) >= count)  # noqa: B023 (used at once, in this iteration)
        with Collector(mosquitto, ["homeassistant/#", "relaxd/#"]) as removals:
            for announcer in announcers:  # what each daemon's wildcard subscription hands it at connect
                assert announcer.topics.ha_config_wildcard is not None
                for topic, body in retained(mosquitto, announcer.topics.ha_config_wildcard).items():
                    announcer.remove_stale(topic, body)
            expected = len(old_topics) + 2  # each old config once, plus the attic's state and phase
            arrived = removals.wait_for(lambda ms: sum(not m.retain for m in ms) >= expected)
            got = [m for m in arrived if not m.retain]
            assert sorted(m.topic for m in got) == sorted([*old_topics, "relaxd/attic/state", "relaxd/attic/phase"])
            assert all(m.payload == b"" for m in got)
        left = retained(mosquitto, "homeassistant/#")
        announced = {t: b.encode() for a in announcers for t, b in a.messages}
        assert left == announced  # both sites' configs, nothing old, nothing twice
        assert set(retained(mosquitto, "relaxd/#")) == {"relaxd/status", "relaxd/bedroom/state", "relaxd/bedroom/phase"}
    finally:
        for bus in buses:
            bus.stop()

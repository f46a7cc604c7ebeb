"""Faults during a running session of `relaxd run`: the broker, the bridge or the speaker dies, or answers slowly."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MosquittoFactory
from tests.mosquitto import Collector, Mosquitto, Received, wait_until
from tests.reliability import (
    BROKER_OUTAGE_S,
    DEVICE_OUTAGE_S,
    TEST_TIMEOUT_S,
    count,
    event_names,
    last_state,
    phases,
    reconfigure,
    room_events,
    same_room_after,
    shows_phase,
    wait_online,
)
from tests.test_e2e_run import Rig, same_room

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TEST_TIMEOUT_S)]
OTHER = {"lights": "speaker", "speaker": "lights"}


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)
    yield r
    r.close()


def use_routine(rig: Rig, routine: dict[str, Any], **settings: Any) -> None:
    def change(config: dict[str, Any]) -> None:
        config["routines"]["test"] = routine
        config["rooms"]["room1"]["routine"] = "test"
        for key, value in settings.items():
            if isinstance(value, dict):
                config[key].update(value)
            else:
                config[key] = value

    reconfigure(rig, change)


def snapshot_file(rig: Rig) -> Path:
    return rig.tmp_path / "state" / "snapshots" / "room1.snapshot.json"


def stop_device(rig: Rig, device: str) -> None:
    if device == "lights":
        rig.hue.stop()
    else:
        rig.speakers["room1"].stop()


def start_device(rig: Rig, device: str) -> None:
    if device == "lights":
        rig.hue.start()
    else:
        rig.speakers["room1"].start()


def set_latency(rig: Rig, device: str, latency_ms: float) -> None:
    if device == "lights":
        rig.hue.latency_ms = latency_ms
    else:
        rig.speakers["room1"].latency_ms = latency_ms


def device_events(msgs: list[Received], name: str, device: str) -> list[dict[str, Any]]:
    return [e for e in room_events(msgs) if e["event"] == name and e.get("device") == device]


# --- the broker ------------------------------------------------------------------------------


def test_the_broker_killed_mid_session_and_restarted_loses_nothing(
    tmp_path: Path, mosquitto_factory: MosquittoFactory
) -> None:
    # Persistence with a 1 s autosave keeps the observer's own session (subscriptions and what
    # is queued for it) across the SIGKILL, so every event the daemon sends after its reconnect
    # reaches the observer however the two reconnects race.
    broker = mosquitto_factory(persistence=True, extra_conf="autosave_interval 1\n").start()
    rig = Rig(tmp_path, broker)
    try:
        # Phase 2 starts while the broker is dead and ends after it is back.
        use_routine(rig, phases(2, BROKER_OUTAGE_S + 1.5, 1.5))
        before = rig.before()
        observer = Collector(broker, ["relaxd/#"], client_id="observer", clean_session=False).start()
        try:
            subscribed_at = time.time()
            rig.start_daemon()
            wait_online(observer)
            db = broker.dir / "mosquitto.db"
            assert wait_until(lambda: db.exists() and db.stat().st_mtime > subscribed_at, 10, 0.05), (
                "the broker never saved the observer's session"
            )
            observer.publish("relaxd/room1/set", "start")
            observer.wait_for(lambda m: "phase_started" in event_names(m), timeout_s=10)
            assert wait_until(lambda: shows_phase(rig, 0, "lights") and shows_phase(rig, 0, "speaker"), 5)
            broker.kill()
            killed_at = time.monotonic()
            # The session goes on without the broker: phase 2 reaches the devices during the outage.
            assert wait_until(
                lambda: shows_phase(rig, 1, "lights") and shows_phase(rig, 1, "speaker"), BROKER_OUTAGE_S + 2, 0.05
            )
            assert time.monotonic() - killed_at < BROKER_OUTAGE_S, "phase 2 came only after the outage"
            assert rig.proc is not None and rig.proc.poll() is None
            time.sleep(max(0.0, killed_at + BROKER_OUTAGE_S - time.monotonic()))  # the outage itself
            broker.start()
            msgs = observer.wait_for(lambda m: "room_restored" in event_names(m), timeout_s=BROKER_OUTAGE_S + 40)
        finally:
            observer.stop()
        events = room_events(msgs)
        by_seq = {e["seq"]: e for e in events}  # a resent QoS 1 message may arrive twice
        assert sorted(by_seq) == list(range(1, max(by_seq) + 1)), "an event was lost in the outage"
        assert [by_seq[s]["event"] for s in sorted(by_seq)] == [
            "session_started",
            "phase_started",
            "phase_started",
            "phase_started",
            "session_finished",
            "room_restored",
        ]
        same_room(before, rig.before())
        with Collector(broker, ["relaxd/#"]) as late:  # retained state republished after the restart
            msgs = late.wait_for(
                lambda m: any(x.topic == "relaxd/status" for x in m) and (last_state(m) or {}).get("state") == "idle",
                timeout_s=10,
            )
            assert late.texts("relaxd/status")[-1] == "online"
            assert late.texts("relaxd/room1/phase")[-1] == "idle"
        assert "lost" in rig.daemon_log()
        assert rig.stop_daemon() == 0
    finally:
        rig.close()


# --- a device goes away ------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["lights", "speaker"])
def test_a_device_stopped_mid_session_is_reported_once_and_rejoins(rig: Rig, device: str) -> None:
    other = OTHER[device]
    use_routine(rig, phases(2, DEVICE_OUTAGE_S + 2.5))
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        wait_online(mqtt)
        mqtt.publish("relaxd/room1/set", "start")
        mqtt.wait_for(lambda m: "phase_started" in event_names(m), timeout_s=10)
        assert wait_until(lambda: shows_phase(rig, 0, device), 5)
        stop_device(rig, device)
        stopped_at = time.monotonic()
        # Phase 2 fails on the device; the session goes on with what works.
        msgs = mqtt.wait_for(lambda m: bool(device_events(m, "device_unavailable", device)), timeout_s=10)
        assert wait_until(lambda: shows_phase(rig, 1, other), 5)
        state = last_state(
            mqtt.wait_for(lambda m: (last_state(m) or {}).get("devices", {}).get(device) == "offline", timeout_s=5)
        )
        assert state is not None and state["state"] == "running" and state["devices"][other] == "online"
        time.sleep(max(0.0, stopped_at + DEVICE_OUTAGE_S - time.monotonic()))  # the outage itself
        assert rig.proc is not None and rig.proc.poll() is None
        start_device(rig, device)
        # Back within a retry (1 s): reported once and given the current scene again.
        msgs = mqtt.wait_for(lambda m: bool(device_events(m, "device_available", device)), timeout_s=10)
        assert event_names(msgs).count("session_finished") == 0, "the outage outlasted the session"
        assert wait_until(lambda: shows_phase(rig, 1, device), 5)
        msgs = mqtt.wait_for(lambda m: "room_restored" in event_names(m), timeout_s=30)
    assert len(device_events(msgs, "device_unavailable", device)) == 1
    assert len(device_events(msgs, "device_available", device)) == 1
    assert not device_events(msgs, "device_unavailable", other)
    assert count(msgs, "restore_failed") == 0
    assert [e["phase"] for e in room_events(msgs) if e["event"] == "phase_started"] == ["phase1", "phase2"]
    same_room_after(before, rig, DEVICE_OUTAGE_S)
    assert not snapshot_file(rig).exists()
    assert rig.stop_daemon() == 0


@pytest.mark.parametrize("device", ["lights", "speaker"])
def test_a_device_away_at_the_end_is_restored_when_it_is_back(rig: Rig, device: str) -> None:
    use_routine(rig, phases(2, 2))
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        wait_online(mqtt)
        mqtt.publish("relaxd/room1/set", "start")
        mqtt.wait_for(lambda m: [e.get("phase") for e in room_events(m)].count("phase2") == 1, timeout_s=10)
        assert wait_until(lambda: shows_phase(rig, 1, device), 5)
        stop_device(rig, device)
        stopped_at = time.monotonic()
        msgs = mqtt.wait_for(lambda m: "restore_failed" in event_names(m), timeout_s=10)
        failed = next(e for e in room_events(msgs) if e["event"] == "restore_failed")
        assert device in failed["reason"]
        # The snapshot stays on disk while the restore is owed (a crash now would still restore).
        assert device in json.loads(snapshot_file(rig).read_text())["data"]["devices"]
        time.sleep(max(0.0, stopped_at + DEVICE_OUTAGE_S - time.monotonic()))  # the outage itself
        assert rig.proc is not None and rig.proc.poll() is None
        start_device(rig, device)
        msgs = mqtt.wait_for(lambda m: "room_restored" in event_names(m), timeout_s=DEVICE_OUTAGE_S + 40)
    names = event_names(msgs)
    assert names.index("restore_failed") < names.index("room_restored")
    assert len(device_events(msgs, "device_unavailable", device)) == 1
    assert len(device_events(msgs, "device_available", device)) == 1
    restored = next(e for e in room_events(msgs) if e["event"] == "room_restored")
    assert device in restored["details"]  # the other device was restored by the first attempt
    same_room_after(before, rig, DEVICE_OUTAGE_S)
    assert not snapshot_file(rig).exists()
    assert rig.stop_daemon() == 0


# --- a device answers too slowly ---------------------------------------------------------------


@pytest.mark.parametrize("device", ["lights", "speaker"])
def test_a_device_slower_than_the_timeout_is_unavailable_then_recovers(rig: Rig, device: str) -> None:
    # hue.timeout also bounds each Sonos request (build_devices); the simulator answers later.
    use_routine(rig, phases(2, 4), hue={"timeout": "0.5s"})
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        wait_online(mqtt)
        mqtt.publish("relaxd/room1/set", "start")
        mqtt.wait_for(lambda m: "phase_started" in event_names(m), timeout_s=10)
        assert wait_until(lambda: shows_phase(rig, 0, device), 5)
        # The session's music is on (the volume is set before Play): phase 1 is through.
        speaker = rig.speakers["room1"]
        assert wait_until(
            lambda: (
                speaker.state().uri.startswith("x-sonosapi-stream:") and speaker.state().transport_state == "PLAYING"
            ),
            5,
        )
        set_latency(rig, device, 1500)
        msgs = mqtt.wait_for(lambda m: bool(device_events(m, "device_unavailable", device)), timeout_s=10)
        reason = device_events(msgs, "device_unavailable", device)[0]["reason"]
        assert re.search(r"no answer from \S+ within [\d.]+ s|timed out", reason), reason
        assert wait_until(lambda: shows_phase(rig, 1, OTHER[device]), 5)
        set_latency(rig, device, 0)
        msgs = mqtt.wait_for(lambda m: bool(device_events(m, "device_available", device)), timeout_s=10)
        assert "session_finished" not in event_names(msgs)
        assert wait_until(lambda: shows_phase(rig, 1, device), 5)
        msgs = mqtt.wait_for(lambda m: "room_restored" in event_names(m), timeout_s=30)
        assert rig.proc is not None and rig.proc.poll() is None
    assert len(device_events(msgs, "device_unavailable", device)) == 1
    assert len(device_events(msgs, "device_available", device)) == 1
    assert "Traceback" not in rig.daemon_log()
    same_room(before, rig.before())
    assert rig.stop_daemon() == 0


def test_a_light_unreachable_at_the_end_is_restored_when_it_answers_again(rig: Rig) -> None:
    # The bridge is fine, one bulb is not (switched off at the wall): set_reachable(False).
    use_routine(rig, phases(2, 2))
    before = rig.before()
    lamp = next(i for i in rig.hue.light_ids() if rig.hue.light(i)["name"] == "room1 lamp")
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        wait_online(mqtt)
        mqtt.publish("relaxd/room1/set", "start")
        mqtt.wait_for(lambda m: [e.get("phase") for e in room_events(m)].count("phase2") == 1, timeout_s=10)
        assert wait_until(lambda: shows_phase(rig, 1, "lights"), 5)
        rig.hue.set_reachable(lamp, False)
        msgs = mqtt.wait_for(lambda m: "restore_failed" in event_names(m), timeout_s=10)
        failed = next(e for e in room_events(msgs) if e["event"] == "restore_failed")
        assert "room1 lamp" in failed["reason"] and "unreachable" in failed["reason"]
        assert "lights" in json.loads(snapshot_file(rig).read_text())["data"]["devices"]
        rig.hue.set_reachable(lamp, True)
        msgs = mqtt.wait_for(lambda m: "room_restored" in event_names(m), timeout_s=20)
    assert len(device_events(msgs, "device_unavailable", "lights")) == 1
    assert len(device_events(msgs, "device_available", "lights")) == 1
    same_room(before, rig.before())
    assert not snapshot_file(rig).exists()
    assert rig.stop_daemon() == 0

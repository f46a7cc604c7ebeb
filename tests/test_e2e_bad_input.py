"""Bad input end to end: `relaxd run` with retained junk on the broker and a damaged snapshot on disk."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mosquitto import Collector, Mosquitto
from tests.reliability import TEST_TIMEOUT_S, count, event_names, room_events, wait_online
from tests.test_e2e_run import Rig, same_room

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TEST_TIMEOUT_S)]


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)
    yield r
    r.close()


def test_retained_junk_is_not_answered_at_any_connect(rig: Rig) -> None:
    # Seen: 2,000 retained commands for rooms that do not exist gave 2,000 rejections at every reconnect.
    with Collector(rig.broker, []) as junk:
        for i in range(500):
            junk.publish(f"relaxd/ghost{i}/set", "start", retain=True)
        junk.publish("relaxd/request/status", json.dumps({"transaction": "old"}), retain=True)
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        wait_online(mqtt)
        time.sleep(1)
        rig.broker.kill()  # the broker goes away and comes back: relaxd reconnects and is replayed all
        rig.broker.start()
        mqtt.wait_for(lambda m: [x.text for x in m if x.topic == "relaxd/status"][-1:] == ["online"], 20)
        time.sleep(1)
        with Collector(rig.broker, []) as clear:  # clearing a retained message: an empty payload
            clear.publish("relaxd/ghost1/set", b"", retain=True)
            clear.publish("relaxd/room1/set", b"", retain=True)
            clear.publish("relaxd/request/status", b"", retain=True)
        time.sleep(1)
        msgs = mqtt.snapshot()
    ghost = [m for m in msgs if m.topic.startswith("relaxd/ghost") and m.topic.endswith("/event")]
    assert ghost == []
    assert [m for m in msgs if m.topic == "relaxd/event"] == []  # nor on the daemon's own event topic
    assert [m for m in msgs if m.topic.startswith("relaxd/response/")] == []
    assert event_names(msgs) == []
    assert rig.stop_daemon() == 0


def test_a_leftover_snapshot_out_of_range_is_given_up_once_and_set_aside(rig: Rig) -> None:
    # Seen: a snapshot with bri 100000 was sent to the bridge and retried for ever.
    light = next(i for i in rig.hue.light_ids() if rig.hue.light(i)["name"] == "room1 ceiling")
    snapshots = rig.tmp_path / "state" / "snapshots"
    snapshots.mkdir(parents=True)
    entry = {"name": "room1 ceiling", "on": True, "bri": 100_000, "colormode": "ct", "ct": 300}
    data = {
        "session_id": "dead",
        "routine": "fast",
        "devices": {"lights": {"kind": "hue", "version": 1, "lights": {light: entry}}},
    }
    (snapshots / "room1.snapshot.json").write_text(json.dumps({"format": 1, "room": "room1", "data": data}))
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        msgs = mqtt.wait_for(lambda m: "restore_failed" in event_names(m), timeout_s=20)
        time.sleep(3)  # a retry would come after retry_every (1 s)
        msgs = mqtt.snapshot()
    failed = next(e for e in room_events(msgs) if e["event"] == "restore_failed")
    assert "bri is 100000, outside 1..254" in failed["reason"] and "set aside" in failed["reason"]
    assert count(msgs, "restore_failed") == 1 and event_names(msgs)[0] == "session_stopped"
    assert [e for e in rig.hue.request_log() if e.method == "PUT"] == []
    assert (snapshots / "room1.snapshot.corrupt").exists() and not (snapshots / "room1.snapshot.json").exists()
    same_room(before, rig.before())  # nothing of the damaged snapshot reached a device
    state = json.loads([m for m in msgs if m.topic == "relaxd/room1/state"][-1].payload)
    assert state["state"] == "idle"
    assert rig.stop_daemon() == 0

"""`kill -9` of `relaxd run` in every phase and mid-restore; damaged snapshot files after a crash."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mosquitto import Collector, Mosquitto, Received, wait_until
from tests.reliability import (
    TEST_TIMEOUT_S,
    event_names,
    last_state,
    phases,
    reconfigure,
    room_events,
    shows_phase,
    wait_online,
)
from tests.test_e2e_run import Rig, same_room

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TEST_TIMEOUT_S)]
LONG_PHASES = phases(600, 600, 600)  # phases change by `skip` only, so a kill lands where the test wants


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)

    def change(config: dict[str, Any]) -> None:
        config["routines"]["test"] = LONG_PHASES
        config["rooms"]["room1"]["routine"] = "test"

    reconfigure(r, change)
    yield r
    r.close()


def snapshots(rig: Rig) -> Path:
    return rig.tmp_path / "state" / "snapshots"


def kill_9(rig: Rig) -> None:
    assert rig.stop_daemon(signal.SIGKILL) == -signal.SIGKILL


def restart_and_expect_restore(rig: Rig, mqtt: Collector, before: dict[str, Any]) -> list[Received]:
    mqtt.clear()
    rig.start_daemon()

    def restored(m: list[Received]) -> bool:  # the state goes idle just after room_restored
        return "room_restored" in event_names(m) and (last_state(m) or {}).get("state") == "idle"

    msgs = mqtt.wait_for(restored, timeout_s=30)
    assert "restore_failed" not in event_names(msgs)
    # The dead session ends for followers too, before the room is given back.
    assert event_names(msgs)[-2:] == ["session_stopped", "room_restored"]
    assert next(e for e in room_events(msgs) if e["event"] == "session_stopped")["reason"] == "crashed"
    same_room(before, rig.before())
    left = [p.name for p in snapshots(rig).iterdir() if p.suffix in (".json", ".tmp")]
    assert not left, "the snapshot must be gone after the restore"
    # The killed daemon's last will must not win over the new daemon's `online`.
    with Collector(rig.broker, ["relaxd/status"]) as late:
        assert late.wait_for_message("relaxd/status").text == "online"
    assert rig.stop_daemon() == 0
    return msgs


@pytest.mark.parametrize("phase", [0, 1, 2])
def test_kill_9_in_each_phase_then_the_next_start_restores_exactly(rig: Rig, phase: int) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        wait_online(mqtt)
        mqtt.publish("relaxd/room1/set", "start")
        # A skip while the snapshot is still being taken is refused (cannot skip while starting).
        mqtt.wait_for(lambda m: "phase_started" in [e["event"] for e in room_events(m)], timeout_s=10)
        for _ in range(phase):
            mqtt.publish("relaxd/room1/set", "skip")
        mqtt.wait_for(lambda m: f"phase{phase + 1}" in [e.get("phase") for e in room_events(m)], timeout_s=10)
        assert wait_until(lambda: shows_phase(rig, phase, "lights") and shows_phase(rig, phase, "speaker"), 5)
        assert rig.before() != before
        # The snapshot file learns each phase (after the scene is sent), so a crash can name it.
        file = snapshots(rig) / "room1.snapshot.json"
        assert wait_until(lambda: json.loads(file.read_text())["data"].get("phase_index") == phase, 5)
        started = next(e for e in room_events(mqtt.snapshot()) if e["event"] == "session_started")
        last_seq = max(e["seq"] for e in room_events(mqtt.snapshot()))
        kill_9(rig)
        assert [p.name for p in snapshots(rig).iterdir()] == ["room1.snapshot.json"]
        msgs = restart_and_expect_restore(rig, mqtt, before)
    # A follower learns which session a crash ended, where it was, and that the room is given back.
    after = room_events(msgs)
    stopped = next(e for e in after if e["event"] == "session_stopped")
    assert {k: stopped.get(k) for k in ("session_id", "routine", "phase", "phase_index", "phase_count")} == {
        "session_id": started["session_id"],
        "routine": "test",
        "phase": f"phase{phase + 1}",
        "phase_index": phase,
        "phase_count": 3,
    }
    # seq goes on across the restart: a follower that drops repeats keeps every new event.
    assert min(e["seq"] for e in after) > last_seq
    assert [e["seq"] for e in after] == sorted(e["seq"] for e in after)
    states = [json.loads(m.payload)["state"] for m in msgs if m.topic == "relaxd/room1/state"]
    assert states[-2:] == ["restoring", "idle"] and "running" not in states
    assert [m.text for m in msgs if m.topic == "relaxd/room1/phase"][-2:] == ["restoring", "idle"]


def test_kill_9_during_the_restore_then_the_next_start_restores_exactly(rig: Rig) -> None:
    # A slow fade-in of the music makes the restore long enough to be killed in the middle.
    reconfigure(rig, lambda c: c["rooms"]["room1"].update(restore_fade="4s"))
    before = rig.before()
    speaker = rig.speakers["room1"]
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        wait_online(mqtt)
        mqtt.publish("relaxd/room1/set", "start")
        assert wait_until(lambda: shows_phase(rig, 0, "speaker"), 10)
        mqtt.publish("relaxd/room1/set", "stop")
        mqtt.wait_for(lambda m: (last_state(m) or {}).get("state") == "restoring", timeout_s=10)
        # The source is back and the volume is fading in: the restore is half done.
        assert wait_until(
            lambda: (
                speaker.state().uri == before["speakers"]["room1"]["uri"]
                and 0 < speaker.state().volume < before["speakers"]["room1"]["volume"]
            ),
            10,
            0.005,
        )
        kill_9(rig)
        assert speaker.state().volume < before["speakers"]["room1"]["volume"]
        assert "room_restored" not in event_names(mqtt.snapshot())
        restart_and_expect_restore(rig, mqtt, before)


def crash_mid_session(rig: Rig, mqtt: Collector) -> bytes:
    """Start a session, kill -9 the daemon in it; the snapshot file it left."""
    rig.start_daemon()
    wait_online(mqtt)
    mqtt.publish("relaxd/room1/set", "start")
    assert wait_until(lambda: shows_phase(rig, 0, "lights") and shows_phase(rig, 0, "speaker"), 10)
    kill_9(rig)
    return (snapshots(rig) / "room1.snapshot.json").read_bytes()


def start_and_settle(rig: Rig, mqtt: Collector) -> list[Any]:
    """Start the daemon and wait until start-up recovery is over (the room's first state)."""
    mqtt.clear()
    rig.hue.clear_request_log()
    rig.speakers["room1"].clear_requests()
    rig.start_daemon()
    wait_online(mqtt)
    return mqtt.snapshot()


def untouched(rig: Rig) -> bool:
    """No command reached a device (reads only)."""
    return not [e for e in rig.hue.request_log() if e.method != "GET"] and not [
        c for c in rig.speakers["room1"].requests() if not c.action.startswith("Get")
    ]


def test_a_truncated_snapshot_is_never_taken_for_a_good_one(rig: Rig) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        good = crash_mid_session(rig, mqtt)
        during = rig.before()
        path = snapshots(rig) / "room1.snapshot.json"
        for cut in (1, len(good) // 3, len(good) // 2, len(good) - 1):
            path.write_bytes(good[:cut])  # what a torn write would leave without os.replace
            msgs = start_and_settle(rig, mqtt)
            assert "room_restored" not in event_names(msgs) and untouched(rig), f"cut at {cut}"
            assert "restore_failed" in event_names(msgs), f"cut at {cut}: the unusable snapshot was not reported"
            same_room(during, rig.before())
            assert not path.exists() and path.with_suffix(".corrupt").read_bytes() == good[:cut]
            assert "unreadable" in rig.daemon_log()
            assert rig.stop_daemon() == 0
        # The same file whole is a good snapshot: the room comes back exactly.
        path.write_bytes(good)
        restart_and_expect_restore(rig, mqtt, before)


def test_a_half_written_temporary_file_is_ignored_and_removed(rig: Rig) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        good = crash_mid_session(rig, mqtt)
        path = snapshots(rig) / "room1.snapshot.json"
        # A crash between mkstemp and os.replace of a later save: a torn temporary file next to
        # the good snapshot. The good one wins.
        torn = snapshots(rig) / ".room1.k3x9q_2a.tmp"
        torn.write_bytes(json.dumps({"format": 1, "room": "room1", "data": {"devices": {}}}).encode()[:20])
        restart_and_expect_restore(rig, mqtt, before)
        assert not torn.exists()
        # A torn temporary file alone (the crash came during the very first save): nothing to restore.
        torn.write_bytes(good[: len(good) // 2])
        msgs = start_and_settle(rig, mqtt)
        assert "room_restored" not in event_names(msgs) and untouched(rig)
        assert not torn.exists() and not path.exists()
        assert rig.stop_daemon() == 0

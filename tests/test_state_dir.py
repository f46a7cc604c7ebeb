"""An unusable state directory: no session starts that could not be restored, and the daemon lives on.

Tests run as root, and root ignores file modes (chmod 0500 stops nothing), so "read-only" and
"full" are made in ways that fail for root too: state_dir below a regular file (ENOTDIR on every
mkdir, open and unlink) and a file size limit on the daemon process (RLIMIT_FSIZE: every write
past the limit fails with EFBIG, as a full disk fails with ENOSPC, part-way through the file).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.snapshot_store import FileSnapshotStore
from tests.mosquitto import Collector, Mosquitto, wait_until
from tests.reliability import TEST_TIMEOUT_S, event_names, last_state, reconfigure, room_events, wait_online
from tests.test_e2e_run import Rig, same_room

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto, rooms=2)
    yield r
    r.close()


def device_writes(rig: Rig) -> list[str]:
    """Every command (not a read) the simulators received."""
    hue = [f"hue {e.method} {e.path}" for e in rig.hue.request_log() if e.method != "GET"]
    sonos = [
        f"{room} {c.action}"
        for room, sim in rig.speakers.items()
        for c in sim.requests()
        if not c.action.startswith(("Get", "Browse"))
    ]
    return hue + sonos


def assert_start_is_refused(rig: Rig, mqtt: Collector, before: dict[str, Any], *why: str) -> None:
    rig.hue.clear_request_log()
    for sim in rig.speakers.values():
        sim.clear_requests()
    mqtt.publish("relaxd/room1/set", json.dumps({"action": "start", "transaction": "t-state"}))
    msgs = mqtt.wait_for(lambda m: "command_rejected" in event_names(m), timeout_s=10)
    rejected = next(e for e in room_events(msgs) if e["event"] == "command_rejected")
    assert rejected["transaction"] == "t-state"
    assert "cannot save the room's snapshot" in rejected["reason"], rejected
    assert "nothing was changed" in rejected["reason"]
    for text in why:
        assert text in rejected["reason"], rejected
    assert "session_started" not in event_names(msgs)
    assert (last_state(msgs) or {}).get("state") == "idle"
    assert device_writes(rig) == []
    same_room(before, rig.before())


@pytest.mark.e2e
def test_a_state_dir_below_a_regular_file_rejects_starts_clearly(rig: Rig) -> None:
    blocker = rig.tmp_path / "not-a-directory"
    blocker.write_text("a regular file where a directory should be\n")
    reconfigure(rig, lambda c: c.update(state_dir=str(blocker / "state")))
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        wait_online(mqtt, rooms=2)  # start-up recovery copes with a state_dir it cannot read
        assert_start_is_refused(rig, mqtt, before, "Not a directory")
        # Still alive and serving: a status request is answered.
        mqtt.publish("relaxd/request/status", json.dumps({"room": "room1", "transaction": "s1"}))
        answer = mqtt.wait_for_message("relaxd/response/status", timeout_s=5)
        assert json.loads(answer.payload)["data"]["state"] == "idle"
    assert rig.stop_daemon() == 0
    assert "Traceback" not in rig.daemon_log()


@pytest.mark.e2e
def test_a_full_state_dir_rejects_starts_and_leaves_no_partial_file(rig: Rig) -> None:
    before = rig.before()
    lines: list[str] = []
    # Everything the daemon writes to files is limited; its log goes to a pipe, which is not.
    limit = 200  # bytes: far less than any room's snapshot
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaxd", "run", "-c", str(rig.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        with Collector(rig.broker, ["relaxd/#"]) as mqtt:
            wait_online(mqtt, rooms=2)
            assert_start_is_refused(rig, mqtt, before, "File too large")
            snapshots = rig.tmp_path / "state" / "snapshots"
            assert sorted(p.name for p in snapshots.iterdir()) == []  # the torn temporary file is gone
            # The other room is refused the same way; nothing is half-started anywhere.
            mqtt.clear()
            mqtt.publish("relaxd/room2/set", "start")
            msgs = mqtt.wait_for(lambda m: "command_rejected" in event_names(m, "room2"), timeout_s=10)
            assert "session_started" not in event_names(msgs, "room2")
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
    same_room(before, rig.before())
    assert "Traceback" not in "".join(lines)


@pytest.mark.e2e
def test_the_state_dir_going_bad_mid_session_does_not_stop_the_restore(rig: Rig) -> None:
    before = rig.before()
    snapshots = rig.tmp_path / "state" / "snapshots"
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        wait_online(mqtt, rooms=2)
        mqtt.publish("relaxd/room1/set", json.dumps({"action": "start", "routine": "slow"}))
        mqtt.wait_for(lambda m: "phase_started" in event_names(m), timeout_s=10)
        assert (snapshots / "room1.snapshot.json").exists()
        # The directory vanishes under the daemon (a remount, a cleanup gone wrong): its snapshot
        # can neither be deleted nor rewritten now.
        snapshots.rename(snapshots.with_name("snapshots.away"))
        snapshots.write_text("")
        mqtt.publish("relaxd/room1/set", "stop")
        msgs = mqtt.wait_for(lambda m: "room_restored" in event_names(m), timeout_s=15)
        same_room(before, rig.before())
        # The room's thread is alive: the next command is answered.
        mqtt.clear()
        mqtt.publish("relaxd/room1/set", "pause")
        msgs = mqtt.wait_for(lambda m: "command_rejected" in event_names(m), timeout_s=5)
        assert room_events(msgs)[0]["reason"] == "cannot pause while idle"
        assert wait_until(lambda: rig.proc is not None and rig.proc.poll() is None, 1)
    assert rig.stop_daemon() == 0


# --- the snapshot store itself (in-process) -----------------------------------------------------


async def test_the_store_reads_no_snapshot_below_a_regular_file(tmp_path: Path, calls: BlockingCalls) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = FileSnapshotStore(blocker / "state", calls)
    assert await store.load("room1") is None and store.rooms() == []
    with pytest.raises(OSError):
        await store.save("room1", {"devices": {}})


async def test_an_unreadable_snapshot_is_reported_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, calls: BlockingCalls
) -> None:
    store = FileSnapshotStore(tmp_path, calls)
    (tmp_path / "snapshots" / "room1.snapshot.json").mkdir(parents=True)  # EISDIR on read
    assert await store.load("room1") is None
    assert "cannot read the snapshot of room room1" in caplog.text


async def test_torn_temporary_files_of_the_room_are_removed_on_load(tmp_path: Path, calls: BlockingCalls) -> None:
    store = FileSnapshotStore(tmp_path, calls)
    await store.save("room1", {"devices": {"lights": {"kind": "hue"}}})
    mine, other = tmp_path / "snapshots" / ".room1.abc.tmp", tmp_path / "snapshots" / ".room10.abc.tmp"
    mine.write_text('{"format": 1, "ro')
    other.write_text('{"format": 1, "ro')
    assert await store.load("room1") == {"devices": {"lights": {"kind": "hue"}}}
    assert not mine.exists() and other.exists()  # room10's file is room10's business

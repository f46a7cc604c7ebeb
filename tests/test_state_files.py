"""The state files are not trusted: sizes bounded on read, snapshot values range-checked before any is sent."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.adapters.schedule_store import MAX_SCHEDULE_FILE_BYTES, FileScheduleStore
from relaxd.adapters.snapshot_store import MAX_SNAPSHOT_BYTES, FileSnapshotStore
from relaxd.core.ports import RestoreReport, SnapshotData, SnapshotUnusable
from relaxd.core.schedules import ScheduleBook
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.engine_rig import Rig
from tests.fakes import settle
from tests.hue_rig import light_puts, three_lights
from tests.sonos_rig import adapter_for


async def test_a_huge_snapshot_file_is_never_read_whole_and_is_set_aside(tmp_path: Path, calls: BlockingCalls) -> None:
    # Seen: a 300 MB file was read whole (RSS 362 MB).
    store = FileSnapshotStore(tmp_path, calls)
    path = tmp_path / "snapshots" / "room1.snapshot.json"
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        handle.truncate(300 * 1024 * 1024)  # sparse: 300 MB to read, no disk used
    began = time.monotonic()
    assert await store.load("room1") is None
    assert time.monotonic() - began < 1.0
    assert not path.exists() and path.with_suffix(".corrupt").exists()
    assert f"larger than {MAX_SNAPSHOT_BYTES // (1024 * 1024)} MiB" in (store.problem("room1") or "")


async def test_a_huge_schedule_file_is_set_aside(tmp_path: Path, calls: BlockingCalls) -> None:
    path = tmp_path / "schedules.json"
    path.write_text('{"format": 1, "schedules": [' + " " * MAX_SCHEDULE_FILE_BYTES + "]}")
    assert await FileScheduleStore(tmp_path, calls).load() == ScheduleBook()
    assert not path.exists() and path.with_suffix(".corrupt").exists()


@pytest.fixture
def hue() -> Iterator[HueBridgeSim]:
    with three_lights() as sim:
        yield sim


@pytest.mark.parametrize(
    ("field", "value"),
    [("bri", 100_000), ("bri", 0), ("ct", -5), ("hue", 70_000), ("sat", 300), ("xy", [0.3, 7.0])],
)
async def test_a_hue_snapshot_out_of_range_is_unusable_and_nothing_is_sent(
    hue: HueBridgeSim, calls: BlockingCalls, field: str, value: object
) -> None:
    # Seen: a snapshot with bri 100000 was sent to the bridge, and retried for ever.
    lights = HueLights(HueBridge(hue.address, hue.username, calls=calls, https=False), group="Massage Room")
    snapshot = await lights.snapshot()
    damaged = copy.deepcopy(snapshot)
    first = next(iter(damaged["lights"]))
    damaged["lights"][first][field] = value
    hue.clear_request_log()
    with pytest.raises(SnapshotUnusable, match=f"light {first} {field} is"):
        await lights.restore(damaged)
    assert light_puts(hue) == []


@pytest.mark.parametrize(("field", "value"), [("volume", 150), ("volume", -1), ("bass", 40), ("mute", "yes")])
async def test_a_sonos_snapshot_out_of_range_is_unusable_and_nothing_is_set(
    calls: BlockingCalls, field: str, value: object
) -> None:
    with SonosSpeakerSim.demo() as sim:
        speaker = adapter_for(sim, calls)
        snapshot = await speaker.snapshot()
        damaged = copy.deepcopy(snapshot)
        damaged["speakers"][0][field] = value
        sim.clear_requests()
        with pytest.raises(SnapshotUnusable, match=field):
            await speaker.restore(damaged, 0)
        assert [c.action for c in sim.requests() if c.action.startswith("Set")] == []


async def test_an_unusable_leftover_is_given_up_once_and_set_aside_while_the_rest_is_restored(rig: Rig) -> None:
    rig.store.data["bedroom"] = {
        "session_id": "dead",
        "routine": "test",
        "devices": {"lights": {"1": {"on": True}}, "speaker": {"volume": 10}},
    }

    async def unusable(snapshot: SnapshotData) -> RestoreReport:
        raise SnapshotUnusable("lights", "the Hue lights snapshot is damaged: light 1 bri is 100000, outside 1..254")

    rig.lights.restore = unusable  # type: ignore[method-assign]
    await rig.engine.recover()
    await settle()
    assert rig.bus.names() == ["session_stopped", "restore_failed"]
    failed = rig.bus.of("restore_failed")[0]
    assert "outside 1..254" in failed["reason"] and "cannot be restored automatically" in failed["reason"]
    assert failed["details"]["given_up"] == {"lights": failed["details"]["given_up"]["lights"]}
    assert failed["details"]["speaker"]["restored"]  # the speaker came back all the same
    assert rig.state == "idle" and rig.engine.seconds_until_due() is None  # never retried
    assert rig.store.data == {} and "bedroom" in rig.store.aside
    assert rig.speaker.state == {"volume": 10}


def test_the_store_limits_are_far_above_what_relaxd_writes() -> None:
    # A snapshot of 20 lights and a 500-track queue is well under the limit.
    entry = {
        "name": "Light",
        "type": "Extended color light",
        "modelid": "LCT015",
        "on": True,
        "bri": 200,
        "colormode": "xy",
        "xy": [0.3, 0.3],
        "dimmable": True,
        "color": True,
        "ct_range": [153, 500],
    }
    track = "<DIDL-Lite>" + "x" * 900 + "</DIDL-Lite>"
    doc = {"devices": {"lights": {"lights": {str(i): entry for i in range(20)}}, "speaker": {"queue": [track] * 500}}}
    assert len(json.dumps(doc)) * 4 < MAX_SNAPSHOT_BYTES


async def test_a_saved_biweekly_schedule_without_a_weekday_keeps_its_starting_weekday(
    tmp_path: Path, calls: BlockingCalls
) -> None:
    # Saved by a relaxd that accepted `every: 2 weeks` without `on`: it fired on the starting date's
    # weekday (a Sunday here), and must go on doing so rather than be dropped as invalid.
    spec = {"room": "bedroom", "every": "2 weeks", "at": "10:00", "starting": "2026-12-06"}
    record = {"id": "rt-1", "spec": spec, "created_at": "2026-12-01T10:00:00+00:00"}
    (tmp_path / "schedules.json").write_text(json.dumps({"format": 1, "schedules": [record]}))
    book = await FileScheduleStore(tmp_path, calls).load()
    assert [s.spec.weekdays() for s in book.runtime] == [["sun"]] and not book.unreadable

"""The file snapshot store: atomic, private, and never trusting a damaged file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.snapshot_store import FileSnapshotStore


async def test_save_load_delete_round_trip_with_private_permissions(tmp_path: Path, calls: BlockingCalls) -> None:
    store = FileSnapshotStore(tmp_path / "state", calls)
    assert await store.load("bedroom") is None and store.rooms() == []
    await store.save("bedroom", {"devices": {"lights": {"1": {"on": True, "bri": 12}}}})
    assert await store.load("bedroom") == {"devices": {"lights": {"1": {"on": True, "bri": 12}}}}
    assert store.rooms() == ["bedroom"]
    path = tmp_path / "state" / "snapshots" / "bedroom.snapshot.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    await store.delete("bedroom")
    assert await store.load("bedroom") is None and store.rooms() == []
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


async def test_a_damaged_snapshot_is_set_aside_not_trusted(tmp_path: Path, calls: BlockingCalls) -> None:
    store = FileSnapshotStore(tmp_path, calls)
    await store.save("bedroom", {"devices": {}})
    path = tmp_path / "snapshots" / "bedroom.snapshot.json"
    path.write_text('{"format": 1, "room": "bedroom", "da')  # a torn write from another tool
    assert await store.load("bedroom") is None
    assert path.with_suffix(".corrupt").exists() and not path.exists()
    problem = store.problem("bedroom") or ""
    assert "unreadable" in problem and "bedroom.snapshot.corrupt" in problem
    assert await store.load("bedroom") is None and store.problem("bedroom") is None  # now simply absent


async def test_a_snapshot_of_another_room_is_not_taken(tmp_path: Path, calls: BlockingCalls) -> None:
    store = FileSnapshotStore(tmp_path, calls)
    await store.save("studio", {"devices": {"x": 1}})
    snapshots = tmp_path / "snapshots"
    os.replace(snapshots / "studio.snapshot.json", snapshots / "bedroom.snapshot.json")
    assert await store.load("bedroom") is None


async def test_an_unwritable_state_dir_raises_oserror(tmp_path: Path, calls: BlockingCalls) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = FileSnapshotStore(blocker / "state", calls)
    try:
        await store.save("bedroom", {})
    except OSError:
        pass
    else:
        raise AssertionError("save into an impossible directory must raise OSError")

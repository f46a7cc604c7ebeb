"""What a follower relies on: seq across restarts, the phase topic, real end times, a crash reported with its phase."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.room_records import FileRoomRecords
from relaxd.core.events import parse_command
from relaxd.core.reporter import SEQ_BLOCK
from tests.engine_rig import Rig
from tests.fakes import settle


class MemorySeqStore:
    def __init__(self, stored: int | None = 0) -> None:
        self.stored = stored
        self.saves: list[int] = []
        self.fail = False
        self.choices: dict[str, str] = {}

    async def load(self, room: str) -> int | None:
        return self.stored

    async def save(self, room: str, seq: int) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.saves.append(seq)
        self.stored = seq

    async def load_choice(self, room: str) -> str | None:
        return self.choices.get(room)

    async def save_choice(self, room: str, routine: str) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.choices[room] = routine


def with_seq(store: MemorySeqStore) -> Rig:
    rig = Rig()
    rig.engine.report_to.seq_store = rig.engine.records = store
    return rig


async def a_session(rig: Rig) -> None:
    await rig.send("start")
    await rig.send("skip")
    await rig.send("stop")
    await rig.at(10)
    await settle()


async def test_seq_goes_on_after_a_clean_restart() -> None:
    store = MemorySeqStore()
    first = with_seq(store).start()
    await first.engine.recover()
    assert store.saves == [SEQ_BLOCK]  # reserved before the first event
    await a_session(first)
    last = first.bus.events[-1]["seq"]
    await first.engine.shutdown()
    await first.close()
    assert store.stored == last  # the exact number at a clean stop: no gap
    second = with_seq(store).start()
    await second.engine.recover()
    await a_session(second)
    assert second.bus.events[0]["seq"] == last + 1
    await second.close()


async def test_seq_goes_on_after_a_crash_without_repeating() -> None:
    store = MemorySeqStore()
    first = with_seq(store).start()
    await first.engine.recover()
    await a_session(first)
    last = first.bus.events[-1]["seq"]
    await first.close()  # no shutdown: as after kill -9, only the reservation is on disk
    assert store.stored == SEQ_BLOCK > last
    second = with_seq(store).start()
    await second.engine.recover()
    await a_session(second)
    assert second.bus.events[0]["seq"] > last
    await second.close()


async def test_the_reservation_is_topped_up_before_it_runs_out() -> None:
    store = MemorySeqStore()
    rig = with_seq(store).start()
    await rig.engine.recover()
    for _ in range(SEQ_BLOCK // 2):
        rig.engine.reject("junk")
    await settle(60)
    assert rig.bus.events[-1]["seq"] == SEQ_BLOCK // 2
    assert store.saves == [SEQ_BLOCK, 2 * SEQ_BLOCK]  # one write, not one per event
    await rig.close()


async def test_an_unreadable_seq_record_goes_on_from_the_clock_and_a_failing_one_does_not_stop_events() -> None:
    store = MemorySeqStore(stored=None)
    rig = with_seq(store).start()
    store.fail = True
    await rig.engine.recover()
    await a_session(rig)
    since_1970 = int(rig.clock.now().timestamp())
    assert rig.bus.events[0]["seq"] == since_1970 - 10 + 1  # the clock when recover() ran
    assert rig.bus.names()[-1] == "room_restored"
    await rig.close()


def test_the_seq_file_round_trips_and_junk_is_unreadable(tmp_path: Path) -> None:
    files = FileRoomRecords(tmp_path, BlockingCalls(1))
    assert files.load_seq_now("bedroom") == 0
    files.write_now("seq", "bedroom", "12345")
    assert files.load_seq_now("bedroom") == 12345
    assert (tmp_path / "seq" / "bedroom").read_text() == "12345\n"
    for junk in (b"", b"-1", b"12a", b"9" * 100, b"\xff\xfe"):
        (tmp_path / "seq" / "bedroom").write_bytes(junk)
        assert files.load_seq_now("bedroom") is None, junk


async def test_the_phase_topic_says_the_phase_then_restoring_then_idle() -> None:
    rig = Rig().start()
    await rig.send("start")
    await rig.send("pause")
    await rig.send("resume")
    await rig.send("skip")
    await rig.send("stop")
    await rig.at(10)
    await settle()
    changes = [p for i, p in enumerate(rig.bus.phases) if i == 0 or rig.bus.phases[i - 1] != p]
    assert changes == ["one", "two", "restoring", "idle"]
    await rig.close()


async def test_a_crash_restore_says_restoring_on_the_phase_topic() -> None:
    rig = Rig().start()
    rig.store.data["bedroom"] = {"session_id": "dead", "routine": "test", "devices": {"lights": {"1": {"on": False}}}}
    await rig.engine.recover()
    await settle()
    assert rig.bus.phases == ["restoring", "idle"]
    await rig.close()


async def test_end_events_and_the_restore_carry_when_the_session_really_ended() -> None:
    rig = Rig().start()
    await rig.send("start")
    await rig.at(30)
    await rig.send("stop")
    await rig.at(40)  # the restore fade (5 s) is over
    await settle()
    stopped, restored = rig.bus.of("session_stopped")[0], rig.bus.of("room_restored")[0]
    assert stopped["session_ends_at"] == "2026-11-23T20:00:30.000Z"  # not the planned 20:03:30
    assert restored["session_ends_at"] == stopped["session_ends_at"]
    await rig.close()


@pytest.mark.parametrize(
    ("kept", "expected"),
    [
        ({"phase": "two", "phase_index": 1}, {"phase": "two", "phase_index": 1, "phase_count": 3}),
        ({"phase": 5, "phase_index": "1"}, {"phase_count": 3}),  # a damaged file: wrong kinds left out
        ({"phase_index": True}, {"phase_count": 3}),
    ],
)
async def test_a_crash_is_reported_with_the_phase_the_snapshot_file_kept(
    kept: dict[str, object], expected: dict[str, object]
) -> None:
    rig = Rig().start()
    record = {"session_id": "dead", "routine": "test", **kept, "devices": {"lights": {"1": {"on": False}}}}
    rig.store.data["bedroom"] = record
    await rig.engine.recover()
    await settle()
    stopped = rig.bus.of("session_stopped")[0]
    fields = {k: stopped[k] for k in ("phase", "phase_index", "phase_count") if k in stopped}
    assert stopped["reason"] == "crashed" and stopped["session_id"] == "dead" and fields == expected
    await rig.close()


async def test_the_snapshot_file_learns_each_phase_but_not_the_first_twice() -> None:
    rig = Rig().start()
    await rig.send("start")
    saves = rig.store.saves
    assert rig.store.data["bedroom"]["phase"] == "one" and rig.store.data["bedroom"]["phase_index"] == 0
    await rig.send("skip")
    assert rig.store.saves == saves + 1
    assert rig.store.data["bedroom"]["phase"] == "two" and rig.store.data["bedroom"]["phase_index"] == 1
    await rig.close()


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [(42, 42), (1.5, 1.5), ("t1", "t1"), ("x" * 300, "x" * 256), (True, None), ([1], None), (None, None)],
)
async def test_a_command_s_transaction_comes_back_with_its_json_type(sent: object, echoed: object) -> None:
    rig = Rig().start()
    payload = json.dumps({"action": "pause", "transaction": sent}).encode()
    rig.engine.submit(parse_command(payload))  # pause while idle: rejected, and answered
    await rig.send("start", transaction=sent if not isinstance(sent, list | bool) else None)
    await settle()
    rejected, started = rig.bus.of("command_rejected")[0], rig.bus.of("session_started")[0]
    assert rejected.get("transaction", None) == echoed and type(rejected.get("transaction")) is type(echoed)
    if isinstance(sent, int | float | str) and not isinstance(sent, bool):
        assert started["transaction"] == sent and type(started["transaction"]) is type(sent)
    await rig.close()


async def test_the_log_tells_the_session_s_story_one_info_line_per_step(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="relaxd.core")
    rig = Rig().start()
    await rig.send("start")
    await rig.send("skip")
    await rig.send("stop")
    await rig.at(10)
    await settle()
    await rig.send("start")
    await rig.at(10 + 60 + 120 + 30 + 1)  # every phase runs out
    await settle()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("relaxd.core") and r.levelno == logging.INFO]
    story = [re.sub(r"[0-9a-f]{12}", "<id>", line) for line in lines]
    assert story == [
        "room bedroom: session <id> started (test, by mqtt)",
        "room bedroom: phase one (1/3)",
        "room bedroom: phase two (2/3)",
        "room bedroom: session <id> stopped (test, by mqtt)",
        "room bedroom: room restored (session <id>)",
        "room bedroom: session <id> started (test, by mqtt)",
        "room bedroom: phase one (1/3)",
        "room bedroom: phase two (2/3)",
        "room bedroom: phase three (3/3)",
        "room bedroom: session <id> finished (test, completed)",
        "room bedroom: room restored (session <id>)",
    ]
    await rig.close()


async def test_the_routine_chosen_for_the_next_start_survives_a_restart() -> None:
    store = MemorySeqStore()
    first = with_seq(store).start()
    await first.engine.recover()
    first.engine.select_routine("quick")
    await settle()
    assert store.choices == {"bedroom": "quick"} and first.state == "idle"
    assert first.engine.status()["routine"] == "quick"
    await first.close()
    second = with_seq(store).start()
    await second.engine.recover()
    assert second.engine.status()["routine"] == "quick"
    await second.send("start")
    assert second.bus.of("session_started")[0]["routine"] == "quick"
    await second.close()
    store.choices["bedroom"] = "gone"  # a routine removed from the config since: the room's default
    third = with_seq(store).start()
    await third.engine.recover()
    assert third.engine.status()["routine"] == "test"
    await third.close()


def test_a_routine_record_round_trips_and_junk_is_none(tmp_path: Path) -> None:
    files = FileRoomRecords(tmp_path, BlockingCalls(1))
    assert files.read_now("routine", "bedroom") is None
    files.write_now("routine", "bedroom", "classic")
    assert files.read_now("routine", "bedroom") == "classic"
    (tmp_path / "routine" / "bedroom").write_bytes(b"x" * 1000)
    assert files.read_now("routine", "bedroom") is None


async def test_a_stop_while_a_failed_restore_waits_is_answered_by_the_next_restore_s_outcome() -> None:
    rig = Rig().start()
    await rig.send("start")
    rig.lights.fail = True
    await rig.send("stop", transaction="t-first")
    await rig.at(5)
    assert rig.state == "restoring" and rig.bus.names()[-1] == "restore_failed"
    assert "transaction" not in rig.bus.of("restore_failed")[0]  # the stop's answer was session_stopped
    await rig.send("stop", transaction=7)  # while the restore waits for its next try: try now
    assert len(rig.bus.of("restore_failed")) == 2 and rig.bus.of("restore_failed")[1]["transaction"] == 7
    rig.lights.fail = False
    await rig.send("toggle", transaction="t-again")
    restored = rig.bus.of("room_restored")[0]
    assert restored["transaction"] == "t-again" and rig.state == "idle"
    await rig.close()


async def test_the_state_says_the_next_start_s_routine_during_a_session_too() -> None:
    rig = Rig().start()
    rig.engine.select_routine("quick")
    await rig.send("start", routine="test")
    state = rig.engine.status()
    assert (state["routine"], state["next_routine"]) == ("test", "quick")
    rig.engine.select_routine("classic")  # chosen during the session: shown at once, used next time
    await settle()
    assert (rig.engine.status()["routine"], rig.engine.status()["next_routine"]) == ("test", "classic")
    await rig.close()

"""The session engine with fake ports and a fake clock: timing, commands, failures, restore."""

from __future__ import annotations

import re
from typing import Any

import pytest

from relaxd.core.engine import RoomEngine
from relaxd.core.events import Command
from relaxd.core.ports import MusicSource
from relaxd.core.room import Room
from relaxd.core.routines import Routine, builtin_routines
from tests.fakes import FakeClock, FakeLights, FakeSpeaker, MemoryStore, RecordingBus

ROUTINE = Routine.model_validate(
    {
        "check_in_every": "50s",
        "phases": [
            {
                "name": "one",
                "duration": "60s",
                "intensity": 0.2,
                "cues": {"table_heat": "warm"},
                "lights": {"brightness": "40%", "color_temp": "2500K", "transition": "10s"},
                "music": {"volume": 12, "ramp": "20s"},
            },
            {
                "name": "two",
                "technique": "petrissage",
                "duration": "2m",
                "intensity": 0.6,
                "lights": {"brightness": "30%", "color_temp": "2200K"},
                "music": {"volume": 50},
            },
            {"name": "three", "duration": "30s", "lights": {"brightness": "10%"}, "music": {"volume": 8}},
        ],
    }
)


class Rig:
    def __init__(self, *, lights: bool = True, speaker: bool = True, max_volume: int = 30) -> None:
        self.clock = FakeClock()
        self.bus = RecordingBus()
        self.store = MemoryStore()
        self.lights = FakeLights()
        self.speaker = FakeSpeaker()
        self.original_lights = self.lights.snapshot()
        self.original_speaker = self.speaker.snapshot()
        self.lights.calls.clear()
        self.speaker.calls.clear()
        room = Room(
            "bedroom",
            self.store,
            lights=self.lights if lights else None,
            speaker=self.speaker if speaker else None,
            music=MusicSource(favorite="Spa Radio"),
            max_volume=max_volume,
            restore_fade_s=5.0,
        )
        self.engine = RoomEngine(
            room,
            self.bus,
            self.clock,
            {**builtin_routines(), "test": ROUTINE},
            default_routine="test",
            retry_every_s=10.0,
        )

    def send(self, action: str, **kw: Any) -> None:
        self.engine.submit(Command(action=action, **kw))  # type: ignore[arg-type]
        self.engine.process()

    def at(self, seconds_after_start: float, start: float = 1000.0) -> None:
        self.clock.mono = start + seconds_after_start
        self.engine.process()

    @property
    def state(self) -> str:
        return self.engine.status()["state"]  # type: ignore[no-any-return]


def phase_names(bus: RecordingBus) -> list[str]:
    return [e["phase"] for e in bus.of("phase_started")]


def test_phases_run_in_order_on_time_and_the_room_is_restored() -> None:
    rig = Rig()
    rig.send("start", transaction="t1")
    started = rig.bus.of("session_started")[0]
    assert started["transaction"] == "t1" and started["routine"] == "test" and started["phase_count"] == 3
    assert started["session_ends_at"] == "2026-11-23T20:03:30.000Z"
    assert phase_names(rig.bus) == ["one"]
    rig.at(59.9)
    assert phase_names(rig.bus) == ["one"]
    rig.at(60.0)
    assert phase_names(rig.bus) == ["one", "two"]
    two = rig.bus.of("phase_started")[1]
    assert two["technique"] == "petrissage" and two["intensity"] == 0.6 and two["phase_index"] == 1
    assert two["phase_ends_at"] == "2026-11-23T20:03:00.000Z"
    rig.at(210.0)
    assert phase_names(rig.bus) == ["one", "two", "three"]
    assert rig.bus.names()[-2:] == ["session_finished", "room_restored"]
    assert rig.lights.state == rig.original_lights and rig.speaker.state == rig.original_speaker
    assert rig.store.data == {} and rig.state == "idle"
    assert rig.bus.phases[-1] == "idle"


def test_deadlines_are_anchored_to_the_start_so_late_processing_does_not_drift() -> None:
    rig = Rig()
    rig.send("start")
    rig.at(75.0)  # the room thread woke 15 s late for phase two
    assert phase_names(rig.bus) == ["one", "two"]
    rig.at(179.9)
    assert phase_names(rig.bus) == ["one", "two"]
    rig.at(180.0)
    assert phase_names(rig.bus) == ["one", "two", "three"]


def test_every_event_has_increasing_seq_and_utc_millisecond_timestamps() -> None:
    rig = Rig()
    rig.send("start")
    rig.at(60.0)
    rig.send("stop")
    seqs = [e["seq"] for e in rig.bus.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["at"]) for e in rig.bus.events)
    assert all(e["room"] == "bedroom" for e in rig.bus.events)


def test_snapshot_is_saved_before_the_first_change() -> None:
    rig = Rig()
    order: list[str] = []
    real_save = rig.store.save
    rig.store.save = lambda room, data: (order.append("save"), real_save(room, data))  # type: ignore[method-assign]
    real_apply = rig.lights.apply
    rig.lights.apply = lambda scene: (order.append("apply"), real_apply(scene))  # type: ignore[method-assign]
    rig.send("start")
    assert order[:2] == ["save", "apply"]
    assert rig.store.data["bedroom"]["devices"]["lights"] == rig.original_lights


def test_a_snapshot_that_cannot_be_saved_starts_nothing() -> None:
    rig = Rig()
    rig.store.fail_save = True
    rig.send("start", transaction="t9")
    rejected = rig.bus.of("command_rejected")
    assert len(rejected) == 1 and "Read-only" in rejected[0]["reason"] and rejected[0]["transaction"] == "t9"
    assert "apply" not in rig.lights.names() and "start_music" not in rig.speaker.names()
    assert rig.state == "idle"


def test_pause_holds_the_remaining_phase_time_and_resume_continues() -> None:
    rig = Rig()
    rig.send("start")
    rig.at(30.0)
    rig.send("pause")
    assert rig.state == "paused" and rig.engine.status()["phase_ends_at"] is None
    rig.at(1000.0)
    assert phase_names(rig.bus) == ["one"]
    rig.send("resume")
    resumed = rig.bus.of("session_resumed")[0]
    assert resumed["phase_ends_at"] == "2026-11-23T20:17:10.000Z"  # 1000 s + the 30 s that were left
    rig.at(1029.9)
    assert phase_names(rig.bus) == ["one"]
    rig.at(1030.0)
    assert phase_names(rig.bus) == ["one", "two"]


def test_skip_starts_the_next_phase_now_and_moves_the_end_earlier() -> None:
    rig = Rig()
    rig.send("start")
    rig.at(10.0)
    rig.send("skip")
    two = rig.bus.of("phase_started")[1]
    assert two["phase"] == "two" and two["session_ends_at"] == "2026-11-23T20:02:40.000Z"
    rig.send("skip")
    rig.send("skip")  # skipping the last phase finishes the session
    assert rig.bus.names()[-2:] == ["session_finished", "room_restored"]


def test_extend_adds_minutes_to_the_current_phase() -> None:
    rig = Rig()
    rig.send("start")
    rig.send("extend", minutes=5, transaction="x")
    extended = rig.bus.of("session_extended")[0]
    assert extended["phase_ends_at"] == "2026-11-23T20:06:00.000Z" and extended["transaction"] == "x"
    rig.send("extend")  # plain "extend" adds 5 minutes
    rig.at(659.9)
    assert phase_names(rig.bus) == ["one"]
    rig.at(660.0)
    assert phase_names(rig.bus) == ["one", "two"]


def test_stop_mid_phase_restores_at_once() -> None:
    rig = Rig()
    rig.send("start")
    rig.at(70.0)
    rig.send("stop", transaction="s1")
    stopped = rig.bus.of("session_stopped")[0]
    assert stopped["transaction"] == "s1" and stopped["reason"] == "mqtt"
    assert rig.bus.names()[-1] == "room_restored"
    assert rig.lights.state == rig.original_lights and rig.speaker.state == rig.original_speaker
    assert rig.speaker.calls[-1][1][1] == 5.0  # the restore fade
    assert rig.state == "idle" and rig.store.data == {}


@pytest.mark.parametrize(
    ("setup", "action", "reason"),
    [
        ([], "stop", "cannot stop while idle"),
        ([], "pause", "cannot pause while idle"),
        ([], "resume", "cannot resume while idle"),
        ([], "skip", "cannot skip while idle"),
        ([], "extend", "cannot extend while idle"),
        (["start"], "start", "cannot start while running"),
        (["start"], "resume", "cannot resume while running"),
        (["start", "pause"], "pause", "cannot pause while paused"),
        (["start", "pause"], "skip", "cannot skip while paused"),
        (["start", "pause"], "start", "cannot start while paused"),
    ],
)
def test_impossible_commands_are_rejected_and_change_nothing(setup: list[str], action: str, reason: str) -> None:
    rig = Rig()
    for step in setup:
        rig.send(step)
    before_state = rig.engine.status()
    before_calls = len(rig.lights.calls) + len(rig.speaker.calls)
    rig.send(action, transaction="tx")
    event = rig.bus.events[-1]
    assert event["event"] == "command_rejected" and event["reason"] == reason and event["transaction"] == "tx"
    assert rig.engine.status() == before_state
    assert len(rig.lights.calls) + len(rig.speaker.calls) == before_calls


def test_unknown_routine_is_rejected() -> None:
    rig = Rig()
    rig.send("start", routine="nope")
    assert "unknown routine 'nope'" in rig.bus.of("command_rejected")[0]["reason"]
    assert rig.state == "idle" and rig.store.data == {}


def test_toggle_starts_when_idle_and_stops_when_running() -> None:
    rig = Rig()
    rig.send("toggle")
    assert rig.state == "running"
    rig.send("toggle")
    assert rig.state == "idle" and rig.bus.names()[-2:] == ["session_stopped", "room_restored"]


def test_volume_never_exceeds_max_volume_and_music_starts_once() -> None:
    rig = Rig(max_volume=30)
    rig.send("start")
    rig.at(60.0)
    calls = [c for c in rig.speaker.calls if c[0] in ("start_music", "set_volume")]
    assert calls[0][0] == "start_music" and calls[0][1][1] == 12 and calls[0][1][2] == 20.0
    assert calls[1] == ("set_volume", (30, 10.0))  # phase two asks for 50


def test_a_device_error_during_a_phase_does_not_stop_the_session() -> None:
    rig = Rig()
    rig.send("start")
    rig.lights.fail = True
    rig.at(60.0)
    assert rig.bus.names().count("device_unavailable") == 1
    assert rig.bus.of("device_unavailable")[0]["device"] == "lights"
    assert rig.engine.status()["devices"] == {"lights": "offline", "speaker": "online"}
    assert rig.speaker.state["volume"] == 30  # the speaker still follows phase two
    rig.at(70.0)  # retried, still down: reported only once
    assert rig.bus.names().count("device_unavailable") == 1 and rig.lights.names()[-1] == "check"
    rig.lights.fail = False
    rig.at(80.0)
    assert rig.bus.names().count("device_available") == 1
    assert rig.lights.calls[-1][0] == "apply" and rig.lights.calls[-1][1].bri_254 == 76  # phase two re-applied
    rig.at(210.0)
    assert rig.bus.names()[-1] == "room_restored" and rig.lights.state == rig.original_lights


def test_a_device_unreachable_at_start_is_left_untouched_and_the_rest_goes_on() -> None:
    rig = Rig()
    rig.speaker.fail = True
    rig.send("start")
    assert rig.state == "running" and rig.bus.of("device_unavailable")[0]["device"] == "speaker"
    assert "speaker" not in rig.store.data["bedroom"]["devices"]
    rig.speaker.fail = False
    rig.send("stop")
    assert "restore" not in rig.speaker.names()  # nothing was snapshotted, nothing was changed
    assert rig.bus.names()[-1] == "room_restored"


def test_restore_is_retried_with_backoff_until_it_succeeds() -> None:
    rig = Rig()
    rig.send("start")
    rig.lights.fail_restore_times = 2
    rig.send("stop")
    failed = rig.bus.of("restore_failed")
    assert len(failed) == 1 and "lights: bridge busy" in failed[0]["reason"]
    assert rig.state == "restoring"
    assert set(rig.store.data["bedroom"]["devices"]) == {"lights"}  # the speaker is already back
    rig.send("start")
    assert rig.bus.events[-1]["reason"] == "cannot start while restoring"
    assert rig.engine.seconds_until_due() == 10.0
    rig.clock.advance(10.0)
    rig.engine.process()
    assert len(rig.bus.of("restore_failed")) == 2 and rig.engine.seconds_until_due() == 20.0
    rig.clock.advance(20.0)
    rig.engine.process()
    assert rig.bus.names()[-1] == "room_restored" and rig.state == "idle" and rig.store.data == {}
    assert rig.lights.state == rig.original_lights
    assert [c[0] for c in rig.speaker.calls].count("restore") == 1  # restored devices are not redone


def test_a_leftover_snapshot_is_restored_at_start_up() -> None:
    rig = Rig()
    rig.store.data["bedroom"] = {
        "session_id": "dead",
        "routine": "test",
        "devices": {"lights": {"1": {"on": False, "bri": 3}}},
    }
    rig.engine.recover()
    assert rig.lights.calls[0] == ("restore", {"1": {"on": False, "bri": 3}})
    restored = rig.bus.of("room_restored")[0]
    assert restored["session_id"] == "dead" and restored["details"]["lights"]["restored"] == ["1"]
    assert rig.store.data == {} and rig.state == "idle"


def test_shutdown_mid_session_stops_and_restores() -> None:
    rig = Rig()
    rig.send("start")
    rig.engine.shutdown()
    assert rig.bus.names()[-2:] == ["session_stopped", "room_restored"]
    assert rig.bus.of("session_stopped")[0]["reason"] == "shutdown"
    assert rig.lights.state == rig.original_lights and rig.store.data == {}


def test_check_in_events_follow_check_in_every_and_skip_paused_time() -> None:
    rig = Rig()
    rig.send("start")
    rig.at(49.0)
    assert rig.bus.of("check_in") == []
    rig.at(50.0)
    assert [e["phase"] for e in rig.bus.of("check_in")] == ["one"]
    rig.send("pause")
    rig.at(500.0)
    rig.send("resume")
    rig.at(549.0)
    assert len(rig.bus.of("check_in")) == 1
    rig.at(550.0)
    assert len(rig.bus.of("check_in")) == 2


def test_state_payload_has_every_contract_field() -> None:
    rig = Rig()
    rig.send("start")
    state = rig.engine.status()
    assert set(state) == {
        "room",
        "state",
        "session_id",
        "routine",
        "phase",
        "phase_index",
        "phase_count",
        "phase_started_at",
        "phase_ends_at",
        "session_started_at",
        "session_ends_at",
        "next_session_at",
        "devices",
    }
    assert state["phase"] == "one" and state["phase_ends_at"] == "2026-11-23T20:01:00.000Z"
    assert rig.bus.phases[-1] == "one"


def test_lights_only_room_works() -> None:
    rig = Rig(speaker=False)
    rig.send("start")
    rig.send("stop")
    assert rig.speaker.calls == [] and rig.bus.names()[-1] == "room_restored"


def test_an_unusable_leftover_snapshot_is_reported_not_silently_dropped() -> None:
    rig = Rig()
    rig.store.problems["bedroom"] = "the snapshot of an unfinished session was unreadable (bad JSON)"
    rig.engine.recover()
    failed = rig.bus.of("restore_failed")
    assert len(failed) == 1 and "unreadable (bad JSON)" in failed[0]["reason"]
    assert "could not be restored automatically" in failed[0]["reason"]
    assert rig.state == "idle" and rig.engine.seconds_until_due() is None  # nothing to retry
    assert "restore" not in rig.lights.names()

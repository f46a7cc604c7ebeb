"""The room engine with fake ports and a fake clock: timing, commands, failures, restore, shutdown."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.contract import STATE_FIELDS
from tests.engine_rig import MakeRig, Rig, phase_names
from tests.fakes import settle


async def test_phases_run_in_order_on_time_and_the_room_is_restored(rig: Rig) -> None:
    await rig.send("start", transaction="t1")
    started = rig.bus.of("session_started")[0]
    assert started["transaction"] == "t1" and started["routine"] == "test" and started["phase_count"] == 3
    assert started["session_ends_at"] == "2026-11-23T20:03:30.000Z"
    assert phase_names(rig.bus) == ["one"]
    await rig.at(59.9)
    assert phase_names(rig.bus) == ["one"]
    await rig.at(60.0)
    assert phase_names(rig.bus) == ["one", "two"]
    two = rig.bus.of("phase_started")[1]
    assert two["technique"] == "petrissage" and two["intensity"] == 0.6 and two["phase_index"] == 1
    assert two["phase_ends_at"] == "2026-11-23T20:03:00.000Z"
    await rig.at(210.0)
    assert phase_names(rig.bus) == ["one", "two", "three"]
    assert rig.bus.names()[-2:] == ["session_finished", "room_restored"]
    assert rig.bus.of("session_finished")[0]["session_ends_at"] == "2026-11-23T20:03:30.000Z"
    assert rig.lights.state == rig.original_lights and rig.speaker.state == rig.original_speaker
    assert rig.store.data == {} and rig.state == "idle"
    assert rig.bus.phases[-1] == "idle"


async def test_a_late_wake_up_enters_the_phase_the_timeline_says_without_drift(rig: Rig) -> None:
    await rig.send("start")
    rig.clock.mono = 1075.0  # the loop was blocked 15 s past phase two's start
    rig.engine.check_devices()  # any input wakes the engine
    await settle()
    assert phase_names(rig.bus) == ["one", "two"]
    await rig.at(179.9)
    assert phase_names(rig.bus) == ["one", "two"]
    await rig.at(180.0)
    assert phase_names(rig.bus) == ["one", "two", "three"]


async def test_every_event_has_increasing_seq_and_utc_millisecond_timestamps(rig: Rig) -> None:
    await rig.send("start")
    await rig.at(60.0)
    await rig.send("stop")
    seqs = [e["seq"] for e in rig.bus.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["at"]) for e in rig.bus.events)
    assert all(e["room"] == "bedroom" for e in rig.bus.events)


async def test_snapshot_is_saved_before_the_first_change(rig: Rig) -> None:
    order: list[str] = []
    real_save, real_apply = rig.store.save, rig.lights.apply

    async def save(room: str, data: Any) -> None:
        order.append("save")
        await real_save(room, data)

    async def apply(scene: Any) -> None:
        order.append("apply")
        await real_apply(scene)

    rig.store.save = save  # type: ignore[method-assign]
    rig.lights.apply = apply  # type: ignore[method-assign]
    await rig.send("start")
    assert order[:2] == ["save", "apply"]
    assert rig.store.data["bedroom"]["devices"]["lights"] == rig.original_lights


async def test_a_snapshot_that_cannot_be_saved_starts_nothing(rig: Rig) -> None:
    rig.store.fail_save = True
    await rig.send("start", transaction="t9")
    rejected = rig.bus.of("command_rejected")
    assert len(rejected) == 1 and "Read-only" in rejected[0]["reason"] and rejected[0]["transaction"] == "t9"
    assert "apply" not in rig.lights.names() and "start_music" not in rig.speaker.names()
    assert rig.state == "idle" and rig.engine.life == "idle"


async def test_pause_holds_the_remaining_phase_time_and_resume_continues(rig: Rig) -> None:
    await rig.send("start")
    await rig.at(30.0)
    await rig.send("pause")
    assert rig.state == "paused" and rig.engine.status()["phase_ends_at"] is None
    await rig.at(1000.0)
    assert phase_names(rig.bus) == ["one"]
    await rig.send("resume")
    resumed = rig.bus.of("session_resumed")[0]
    assert resumed["phase_ends_at"] == "2026-11-23T20:17:10.000Z"  # 1000 s + the 30 s that were left
    # The phase really began at the start, not 970 s later as the moved deadlines would say.
    assert rig.engine.status()["phase_started_at"] == "2026-11-23T20:00:00.000Z"
    await rig.at(1029.9)
    assert phase_names(rig.bus) == ["one"]
    await rig.at(1030.0)
    assert phase_names(rig.bus) == ["one", "two"]


async def test_skip_starts_the_next_phase_now_and_moves_the_end_earlier(rig: Rig) -> None:
    await rig.send("start")
    await rig.at(10.0)
    await rig.send("skip")
    two = rig.bus.of("phase_started")[1]
    assert two["phase"] == "two" and two["session_ends_at"] == "2026-11-23T20:02:40.000Z"
    assert rig.engine.status()["phase_started_at"] == "2026-11-23T20:00:10.000Z"
    await rig.send("skip")
    await rig.send("skip")  # skipping the last phase finishes the session
    assert rig.bus.names()[-2:] == ["session_finished", "room_restored"]


async def test_extend_adds_minutes_to_the_current_phase(rig: Rig) -> None:
    await rig.send("start")
    await rig.send("extend", minutes=5, transaction="x")
    extended = rig.bus.of("session_extended")[0]
    assert extended["phase_ends_at"] == "2026-11-23T20:06:00.000Z" and extended["transaction"] == "x"
    assert rig.engine.status()["phase_started_at"] == "2026-11-23T20:00:00.000Z"  # not moved by the extend
    await rig.send("extend")  # plain "extend" adds 5 minutes
    await rig.at(659.9)
    assert phase_names(rig.bus) == ["one"]
    await rig.at(660.0)
    assert phase_names(rig.bus) == ["one", "two"]


async def test_stop_mid_phase_restores_at_once(rig: Rig) -> None:
    await rig.send("start")
    await rig.at(70.0)
    await rig.send("stop", transaction="s1")
    stopped = rig.bus.of("session_stopped")[0]
    assert stopped["transaction"] == "s1" and stopped["reason"] == "mqtt"
    assert stopped["session_ends_at"] == "2026-11-23T20:01:10.000Z"  # when it really ended
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
async def test_impossible_commands_are_rejected_and_change_nothing(
    rig: Rig, setup: list[str], action: str, reason: str
) -> None:
    for step in setup:
        await rig.send(step)
    before_state = rig.engine.status()
    before_calls = len(rig.lights.calls) + len(rig.speaker.calls)
    await rig.send(action, transaction="tx")
    event = rig.bus.events[-1]
    assert event["event"] == "command_rejected" and event["reason"] == reason and event["transaction"] == "tx"
    assert rig.engine.status() == before_state
    assert len(rig.lights.calls) + len(rig.speaker.calls) == before_calls


async def test_unknown_routine_is_rejected(rig: Rig) -> None:
    await rig.send("start", routine="nope")
    assert "unknown routine 'nope'" in rig.bus.of("command_rejected")[0]["reason"]
    assert rig.state == "idle" and rig.store.data == {}


async def test_toggle_starts_when_idle_and_stops_when_running(rig: Rig) -> None:
    await rig.send("toggle")
    assert rig.state == "running"
    await rig.send("toggle")
    assert rig.state == "idle" and rig.bus.names()[-2:] == ["session_stopped", "room_restored"]


async def test_volume_never_exceeds_max_volume_and_music_starts_once(make_rig: MakeRig) -> None:
    rig = make_rig(max_volume=30)
    await rig.send("start")
    await rig.at(60.0)
    calls = [c for c in rig.speaker.calls if c[0] in ("start_music", "set_volume")]
    assert calls[0][0] == "start_music" and calls[0][1][1] == 12 and calls[0][1][2] == 20.0
    assert calls[1] == ("set_volume", (30, 10.0))  # phase two asks for 50


async def test_a_device_error_during_a_phase_does_not_stop_the_session(rig: Rig) -> None:
    await rig.send("start")
    rig.lights.fail = True
    await rig.at(60.0)
    assert rig.bus.names().count("device_unavailable") == 1
    assert rig.bus.of("device_unavailable")[0]["device"] == "lights"
    assert rig.engine.status()["devices"] == {"lights": "offline", "speaker": "online"}
    assert rig.speaker.state["volume"] == 30  # the speaker still follows phase two
    await rig.at(70.0)  # retried, still down: reported only once
    assert rig.bus.names().count("device_unavailable") == 1 and rig.lights.names()[-1] == "check"
    rig.lights.fail = False
    await rig.at(80.0)
    assert rig.bus.names().count("device_available") == 1
    assert rig.lights.calls[-1][0] == "apply" and rig.lights.calls[-1][1].bri_254 == 76  # phase two re-applied
    await rig.at(210.0)
    assert rig.bus.names()[-1] == "room_restored" and rig.lights.state == rig.original_lights


async def test_a_device_unreachable_at_start_is_left_untouched_and_the_rest_goes_on(rig: Rig) -> None:
    rig.speaker.fail = True
    await rig.send("start")
    assert rig.state == "running" and rig.bus.of("device_unavailable")[0]["device"] == "speaker"
    assert "speaker" not in rig.store.data["bedroom"]["devices"]
    rig.speaker.fail = False
    await rig.send("stop")
    assert "restore" not in rig.speaker.names()  # nothing was snapshotted, nothing was changed
    assert rig.bus.names()[-1] == "room_restored"


async def test_restore_is_retried_with_backoff_until_it_succeeds(rig: Rig) -> None:
    await rig.send("start")
    rig.lights.fail_restore_times = 2
    await rig.send("stop")
    failed = rig.bus.of("restore_failed")
    assert len(failed) == 1 and "lights: bridge busy" in failed[0]["reason"]
    assert failed[0]["details"]["retry_in_s"] == 10.0
    assert rig.state == "restoring" and rig.engine.life == "restore_pending"
    assert set(rig.store.data["bedroom"]["devices"]) == {"lights"}  # the speaker is already back
    await rig.send("start")
    assert rig.bus.events[-1]["reason"].startswith("cannot start while restoring (the last restore failed")
    assert rig.engine.seconds_until_due() == 10.0
    await rig.clock.advance(10.0)
    assert len(rig.bus.of("restore_failed")) == 2 and rig.engine.seconds_until_due() == 20.0
    await rig.clock.advance(20.0)
    assert rig.bus.names()[-1] == "room_restored" and rig.state == "idle" and rig.store.data == {}
    assert rig.lights.state == rig.original_lights
    assert [c[0] for c in rig.speaker.calls].count("restore") == 1  # restored devices are not redone


async def test_a_leftover_snapshot_is_restored_at_start_up_after_a_crashed_stop_event(rig: Rig) -> None:
    rig.store.data["bedroom"] = {
        "session_id": "dead",
        "routine": "test",
        "devices": {"lights": {"1": {"on": False, "bri": 3}}},
    }
    await rig.engine.recover()
    await settle()
    assert rig.lights.calls[0] == ("restore", {"1": {"on": False, "bri": 3}})
    assert rig.bus.names() == ["session_stopped", "room_restored"]
    stopped = rig.bus.of("session_stopped")[0]
    assert stopped["reason"] == "crashed" and stopped["session_id"] == "dead" and stopped["routine"] == "test"
    restored = rig.bus.of("room_restored")[0]
    assert restored["session_id"] == "dead" and restored["details"]["lights"]["restored"] == ["1"]
    assert rig.store.data == {} and rig.state == "idle"
    assert [s["state"] for s in rig.bus.states] == ["restoring", "idle"]


async def test_shutdown_mid_session_stops_and_restores(rig: Rig) -> None:
    await rig.send("start")
    assert await rig.engine.shutdown() is True
    assert rig.bus.names()[-2:] == ["session_stopped", "room_restored"]
    assert rig.bus.of("session_stopped")[0]["reason"] == "shutdown"
    assert rig.lights.state == rig.original_lights and rig.store.data == {}


async def test_check_in_events_follow_check_in_every_and_skip_paused_time(rig: Rig) -> None:
    await rig.send("start")
    await rig.at(49.0)
    assert rig.bus.of("check_in") == []
    await rig.at(50.0)
    assert [e["phase"] for e in rig.bus.of("check_in")] == ["one"]
    await rig.send("pause")
    await rig.at(500.0)
    await rig.send("resume")
    await rig.at(549.0)
    assert len(rig.bus.of("check_in")) == 1
    await rig.at(550.0)
    assert len(rig.bus.of("check_in")) == 2


async def test_state_payload_has_every_contract_field(rig: Rig) -> None:
    await rig.send("start")
    state = rig.engine.status()
    assert set(state) == STATE_FIELDS
    assert state["phase"] == "one" and state["phase_ends_at"] == "2026-11-23T20:01:00.000Z"
    assert rig.bus.phases[-1] == "one"


async def test_lights_only_room_works(make_rig: MakeRig) -> None:
    rig = make_rig(speaker=False)
    await rig.send("start")
    await rig.send("stop")
    assert rig.speaker.calls == [] and rig.bus.names()[-1] == "room_restored"


async def test_an_unusable_leftover_snapshot_is_reported_not_silently_dropped(rig: Rig) -> None:
    rig.store.problems["bedroom"] = "the snapshot of an unfinished session was unreadable (bad JSON)"
    await rig.engine.recover()
    failed = rig.bus.of("restore_failed")
    assert len(failed) == 1 and "unreadable (bad JSON)" in failed[0]["reason"]
    assert "could not be restored automatically" in failed[0]["reason"]
    assert rig.state == "idle" and rig.engine.seconds_until_due() is None  # nothing to retry
    assert "restore" not in rig.lights.names()

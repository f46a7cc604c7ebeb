"""The lifecycle table, held against the engine in every state, and the runtime's edges (fake ports)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from relaxd.core.events import ACTIONS, Action
from relaxd.core.lifecycle import LIFE_STATES, PUBLIC, TABLE, LifeState, decide
from tests.engine_rig import MakeRig, Rig, phase_names
from tests.fakes import settle


async def into(rig: Rig, state: LifeState) -> None:
    """Drive a fresh rig into state, holding devices where the state is a wait."""
    if state == "idle":
        return
    if state == "starting":
        rig.lights.hold = asyncio.Event()  # the snapshot waits for the bridge
        await rig.send("start")
        return
    await rig.send("start")
    if state == "paused":
        await rig.send("pause")
    elif state == "restoring":
        rig.lights.hold = asyncio.Event()  # the restore waits for the bridge
        await rig.send("stop")
    elif state == "restore_pending":
        rig.lights.fail_restore_times = 100
        await rig.send("stop")
    assert rig.engine.life == state


@pytest.mark.parametrize("state", LIFE_STATES)
@pytest.mark.parametrize("action", ACTIONS)
async def test_every_command_in_every_state_does_what_the_table_says(rig: Rig, state: LifeState, action: str) -> None:
    await into(rig, state)
    before = len(rig.bus.events)
    await rig.send(action, transaction="t")
    after = rig.bus.events[before:]
    rejected = [e for e in after if e["event"] == "command_rejected"]
    step = TABLE[state][cast(Action, action)]
    if step is None:
        shown = "starting" if state == "starting" else PUBLIC[state]
        assert len(rejected) == 1 and rejected[0]["reason"].startswith(f"cannot {action} while {shown}")
        assert rejected[0]["transaction"] == "t"
        assert rig.engine.life == state  # nothing changed
    else:
        assert rejected == []
        expected = {
            "start": "running",
            "stop": "idle",
            "stop_when_started": "starting",
            "pause": "paused",
            "resume": "running",
            "skip": "running",
            "extend": state,
            "retry_restore": "restore_pending",
        }[step]
        assert rig.engine.life == expected


def test_the_table_covers_every_state_and_action_and_decide_follows_it() -> None:
    assert set(TABLE) == set(LIFE_STATES)
    for state in LIFE_STATES:
        assert set(TABLE[state]) == set(ACTIONS)
        for action in ACTIONS:
            act = cast(Action, action)
            assert (decide(state, act).step is None) == (TABLE[state][act] is None)


async def test_a_restore_failing_at_the_natural_end_is_retried_with_backoff_not_in_a_loop(rig: Rig) -> None:
    # Seen: the bridge stopped during the last phase gave thousands of restore_failed and
    # session_finished a second.
    await rig.send("start")
    rig.lights.fail = True
    await rig.at(210.0)  # the session ends on its own
    assert rig.bus.names().count("session_finished") == 1
    assert rig.bus.names().count("restore_failed") == 1 and rig.engine.life == "restore_pending"
    await rig.clock.advance(15.0)
    assert rig.bus.names().count("restore_failed") == 2  # tried again at +10 s, next at +30 s
    await rig.clock.advance(15.0)
    assert rig.bus.names().count("restore_failed") == 3
    assert rig.bus.names().count("session_finished") == 1
    rig.lights.fail = False
    await rig.clock.advance(40.0)
    assert rig.bus.names()[-1] == "room_restored" and rig.lights.state == rig.original_lights


async def test_a_double_tap_during_the_restore_fade_starts_nothing(rig: Rig) -> None:
    await rig.send("start")
    rig.speaker.hold = asyncio.Event()  # the restore fade takes a while
    await rig.send("stop")
    assert rig.state == "restoring"
    for action in ("toggle", "start", "pause", "stop"):
        await rig.send(action)
    reasons = [e["reason"] for e in rig.bus.of("command_rejected")]
    assert reasons == [
        "cannot toggle while restoring",
        "cannot start while restoring",
        "cannot pause while restoring",
        "cannot stop while restoring",
    ]
    rig.speaker.hold.set()
    await settle()
    assert rig.bus.names()[-1] == "room_restored" and rig.state == "idle"
    await rig.clock.advance(60.0)
    assert rig.bus.names().count("session_started") == 1 and rig.state == "idle"  # nothing was queued
    assert rig.speaker.state == rig.original_speaker


async def test_stop_while_the_snapshot_is_taken_ends_the_session_before_anything_changes(rig: Rig) -> None:
    rig.lights.hold = asyncio.Event()
    await rig.send("start")
    assert rig.engine.life == "starting" and rig.state == "idle"
    await rig.send("start")  # a second press while starting is refused
    await rig.send("stop", transaction="s")
    rig.lights.hold.set()
    await settle()
    assert rig.bus.names() == ["command_rejected", "session_started", "session_stopped", "room_restored"]
    assert rig.bus.of("session_stopped")[0]["transaction"] == "s"
    assert "apply" not in rig.lights.names() and "restore" not in rig.lights.names()
    assert rig.speaker.names() == ["snapshot"]
    assert rig.store.data == {} and rig.state == "idle"


async def test_a_phase_starts_on_time_while_the_last_scene_still_waits_for_the_bridge(rig: Rig) -> None:
    await rig.send("start")
    rig.lights.hold = asyncio.Event()  # from now on the bridge answers nothing (a busy pacer)
    await rig.at(60.0)
    await rig.at(180.0)
    assert phase_names(rig.bus) == ["one", "two", "three"]
    starts = [e["at"] for e in rig.bus.of("phase_started")]
    assert starts == ["2026-11-23T20:00:00.000Z", "2026-11-23T20:01:00.000Z", "2026-11-23T20:03:00.000Z"]
    # Each new scene replaced the one still waiting: nothing stale is left queued.
    assert rig.lights.cancelled == ["apply"]
    assert rig.speaker.state["volume"] == 8  # the speaker was not held up by the lights


async def test_an_unexpected_error_while_restoring_is_reported_and_retried(rig: Rig) -> None:
    await rig.send("start")
    rig.store.crash_save = TypeError("unsupported type in snapshot")
    rig.lights.fail_restore_times = 1  # a partial restore makes the room save what is left
    await rig.send("stop")
    assert "internal_error" in rig.bus.names() and rig.bus.names()[-1] == "restore_failed"
    assert "TypeError" in rig.bus.of("internal_error")[0]["reason"]
    assert rig.engine.life == "restore_pending"
    rig.store.crash_save = None
    await rig.clock.advance(10.0)
    assert rig.bus.names()[-1] == "room_restored" and rig.lights.state == rig.original_lights
    await rig.send("start")  # and the room goes on serving commands
    assert rig.state == "running"


async def test_a_bug_in_a_command_handler_gives_the_room_back_and_the_room_goes_on(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rig.send("start")

    def broken(cmd: Any) -> None:
        raise TypeError("boom")

    monkeypatch.setattr(rig.engine, "_do_pause", broken)
    await rig.send("pause")
    names = rig.bus.names()
    assert names[-3:] == ["internal_error", "session_stopped", "room_restored"]
    assert rig.bus.of("session_stopped")[0]["reason"] == "internal_error"
    assert rig.lights.state == rig.original_lights and rig.state == "idle"
    await rig.send("start")
    assert rig.state == "running"


async def test_an_adapter_bug_marks_the_device_and_the_session_goes_on(rig: Rig) -> None:
    await rig.send("start")
    rig.lights.crash_with = KeyError("state")
    await rig.at(60.0)
    unavailable = rig.bus.of("device_unavailable")
    assert len(unavailable) == 1 and "unexpected KeyError" in unavailable[0]["reason"]
    assert rig.state == "running" and phase_names(rig.bus) == ["one", "two"]


async def test_shutdown_cancels_a_waiting_scene_and_no_phase_starts_afterwards(rig: Rig) -> None:
    await rig.send("start")
    rig.lights.hold = asyncio.Event()
    await rig.at(60.0)  # phase two's scene waits for the bridge
    rig.lights.hold = None
    assert await rig.engine.shutdown() is True
    assert rig.lights.cancelled == ["apply"]
    assert rig.bus.names()[-2:] == ["session_stopped", "room_restored"]
    await rig.at(500.0)
    assert phase_names(rig.bus) == ["one", "two"] and rig.state == "idle"
    await rig.send("start")
    assert rig.bus.events[-1]["reason"] == "cannot start while restoring"  # shutting down


async def test_shutdown_while_the_snapshot_is_taken_changes_nothing_and_keeps_no_snapshot(rig: Rig) -> None:
    rig.lights.hold = asyncio.Event()
    await rig.send("start")
    assert await rig.engine.shutdown() is True
    assert rig.lights.cancelled == ["snapshot"] and rig.store.data == {}
    assert "session_started" not in rig.bus.names() and rig.state == "idle"


async def test_a_room_that_cannot_be_restored_at_shutdown_keeps_its_snapshot(rig: Rig) -> None:
    await rig.send("start")
    rig.lights.fail = True
    shutdown = asyncio.create_task(rig.engine.shutdown())
    await rig.clock.advance(3.5)  # retried every second until the daemon's deadline
    assert rig.bus.names().count("restore_failed") == 4
    shutdown.cancel()
    await asyncio.gather(shutdown, return_exceptions=True)
    assert set(rig.store.data["bedroom"]["devices"]) == {"lights"}  # for the next start


async def test_the_health_check_reports_an_idle_device_once_and_its_return(rig: Rig) -> None:
    rig.speaker.fail = True
    for _ in range(3):
        rig.engine.check_devices()
        await settle()
    assert rig.bus.names() == ["device_unavailable"]
    assert rig.engine.status()["devices"] == {"lights": "online", "speaker": "offline"}
    rig.speaker.fail = False
    rig.engine.check_devices()
    await settle()
    assert rig.bus.names() == ["device_unavailable", "device_available"]
    assert rig.engine.status()["devices"] == {"lights": "online", "speaker": "online"}


async def test_the_engine_answers_a_liveness_ping_even_while_devices_are_slow(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.lights.hold = asyncio.Event()
    await rig.send("start")  # stuck in the snapshot
    rig.engine.ping(7)
    await settle()
    assert rig.engine.pong == 7


async def test_a_second_stop_while_starting_is_refused_so_every_command_has_one_answer(rig: Rig) -> None:
    rig.lights.hold = asyncio.Event()
    await rig.send("start")
    await rig.send("toggle", transaction="first")
    await rig.send("stop", transaction="second")
    rig.lights.hold.set()
    await settle()
    assert rig.bus.names() == ["command_rejected", "session_started", "session_stopped", "room_restored"]
    assert rig.bus.events[0]["transaction"] == "second" and rig.bus.events[2]["transaction"] == "first"

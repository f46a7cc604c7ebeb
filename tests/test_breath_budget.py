"""The shared breath budget: rooms on one rate limit stay within it, evenly, never late; said once."""

from __future__ import annotations

import itertools
import json
import logging
from datetime import datetime
from typing import Any

import pytest

from relaxd.core.breath_budget import BREATH_SHARE, BreathBudget, _most_in_window
from relaxd.core.ports import EdgeCost, LightScene
from relaxd.core.routines import Routine
from tests.engine_rig import MakeRig, Rig
from tests.fakes import FakeClock

T0 = 1000.0
BREATH = Routine.model_validate(
    {
        "phases": [
            {
                "name": "breathe",
                "duration": "10m",
                "breathing": {"inhale": "4s", "exhale": "6s", "brightness": ["20%", "40%"]},
            }
        ]
    }
)
# Like a Hue bridge's group commands: one a second (a window of 1 s here), shared by every room.
ONE_A_SECOND = EdgeCost("bridge groups", 1, 1, 1.0)


def rooms(make_rig: MakeRig, count: int, cost: EdgeCost, routine: Routine = BREATH) -> tuple[list[Rig], FakeClock]:
    clock = FakeClock()
    budget = BreathBudget(clock)
    routines = {"breathe": routine}
    made = [make_rig(clock=clock, budget=budget, room_id=f"room{i}", routines=routines) for i in range(count)]
    for rig in made:
        rig.lights.costs = [cost]
    return made, clock


def record(rig: Rig, clock: FakeClock) -> list[tuple[float, LightScene]]:
    """Every scene the room's lights were given, with the clock's time then."""
    sent: list[tuple[float, LightScene]] = []
    real_apply = rig.lights.apply

    async def apply(scene: LightScene) -> None:
        sent.append((clock.mono, scene))
        await real_apply(scene)

    rig.lights.apply = apply  # type: ignore[method-assign]
    return sent


def breaths(rig: Rig) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p, _ in rig.bus.messages if t.endswith("/breath")]


def planned(edge: dict[str, Any]) -> float:
    """An edge's planned time on the fake clock's monotonic scale, from its `at` (cut to the ms)."""
    return T0 + (datetime.fromisoformat(edge["at"]) - FakeClock().wall0).total_seconds()


async def test_ten_rooms_on_one_limit_share_it_evenly_on_time_and_it_is_said_once(
    make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "relaxd.core.breath_budget")
    made, clock = rooms(make_rig, 10, ONE_A_SECOND)
    sent = [record(rig, clock) for rig in made]
    for i, rig in enumerate(made):
        await clock.advance_to(T0 + i * 0.7)  # started one after the other, as buttons are pressed
        await rig.send("start", routine="breathe")
    await clock.advance_to(T0 + 299.9)  # 30 breaths each (the last rooms' last exhale just after)
    everything = [(at, 1) for room in sent for at, _ in room]
    window = ONE_A_SECOND.window_s / BREATH_SHARE
    assert _most_in_window(everything, window) <= ONE_A_SECOND.limit  # never more than the limit allows
    followed = []
    for rig, room in zip(made, sent, strict=True):
        published = breaths(rig)  # the room's plan: every edge, whether the lights follow it or not
        assert len(published) >= 55 and published[0]["at"] < "2026-11-23T20:00:20"  # a breath late at most
        # every edge the lights followed was sent exactly when planned (the fake clock: to the tick)
        plan = [planned(b) for b in published if b["lights"]]
        assert len(plan) == len(room) and all(0 <= at - p < 0.001 for (at, _), p in zip(room, plan, strict=True))
        cycles = [b["cycle"] for b in published if b["lights"] and b["breath"] == "inhale"]
        exhales = [b["cycle"] for b in published if b["lights"] and b["breath"] == "exhale"]
        assert exhales == cycles[: len(exhales)] and len(cycles) - len(exhales) <= 1  # followed whole
        followed.append(cycles)
    counts = [len(c) for c in followed]
    assert min(counts) >= 4 and max(counts) - min(counts) <= 2, counts  # evenly, the first rooms' head start apart
    late = [[c for c in cycles if c >= 10] for cycles in followed]  # once every room breathes
    assert max(map(len, late)) - min(map(len, late)) <= 1, late
    for cycles in late:  # and spread out evenly within each room: no run of breaths, no long gap
        gaps = [b - a for a, b in itertools.pairwise(cycles)]
        assert gaps and max(gaps) - min(gaps) <= 1, cycles
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bridge groups" in warnings[0].getMessage()


async def test_rooms_within_the_limit_follow_every_breath_and_nothing_is_said(
    make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # a bridge's light commands: 10 a second; 3 rooms of 2 lights, an edge every 5 s on average
    made, clock = rooms(make_rig, 3, EdgeCost("bridge lights", 2, 10, 1.0))
    sent = [record(rig, clock) for rig in made]
    for rig in made:
        await rig.send("start", routine="breathe")  # at the same instant, even
    await clock.advance_to(T0 + 99.9)
    assert [len(room) for room in sent] == [20, 20, 20]
    assert not [r for r in caplog.records if r.name == "relaxd.core.breath_budget" and r.levelno >= logging.INFO]


async def test_a_paused_room_leaves_its_share_to_the_others(make_rig: MakeRig) -> None:
    made, _ = rooms(make_rig, 2, EdgeCost("bridge groups", 1, 1, 2.0))
    for rig in made:
        await rig.send("start", routine="breathe")
    budget = made[0].engine.breath.budget
    shared = budget.fraction("room0")
    assert 0 < shared < 1 and budget.fraction("room1") == shared
    await made[1].send("pause")
    assert budget.fraction("room0") > shared
    await made[1].send("resume")
    assert budget.fraction("room0") == shared


async def test_a_breath_too_quick_for_the_limit_leaves_the_lights_alone_and_says_so(
    make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    quick = Routine.model_validate(
        {
            "phases": [
                {
                    "name": "pant",
                    "duration": "1m",
                    "lights": {"brightness": "30%"},
                    "breathing": {"inhale": "1s", "exhale": "1s", "brightness": ["20%", "40%"]},
                }
            ]
        }
    )
    made, clock = rooms(make_rig, 1, EdgeCost("bridge groups", 1, 1, 1.1), quick)
    (rig,) = made
    await rig.send("start", routine="breathe")
    await clock.advance_to(T0 + 29.5)
    assert rig.lights.names() == ["snapshot"]  # neither the breath nor (in a breathing phase) the scene
    assert len(breaths(rig)) == 30 and not any(b["lights"] for b in breaths(rig))
    assert any("too quick" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_the_most_in_a_window_counts_half_open_windows() -> None:
    assert _most_in_window([], 1.0) == 0
    assert _most_in_window([(0.0, 1), (1.0, 1)], 1.0) == 1  # exactly a window apart: never together
    assert _most_in_window([(0.0, 2), (0.5, 1), (1.4, 3)], 1.0) == 4
    assert _most_in_window([(2.0, 1), (0.0, 1), (0.1, 1)], 1.0) == 2  # any order


def test_a_budget_converts_real_windows_to_the_clock_speed() -> None:
    clock = FakeClock(speed=10.0)
    budget = BreathBudget(clock, share=1.0)
    # at 10x, 1 real second is 10 clock seconds: edges 4 clock-s apart do not fit one a second
    assert not budget.fits_alone([ONE_A_SECOND], [0.0, 4.0])
    assert budget.fits_alone([ONE_A_SECOND], [0.0, 10.0])


async def test_a_second_room_puts_its_first_breath_off_to_where_the_bridge_has_room(make_rig: MakeRig) -> None:
    made, clock = rooms(make_rig, 2, ONE_A_SECOND)
    sent = [record(rig, clock) for rig in made]
    await made[0].send("start", routine="breathe")
    await clock.advance_to(T0 + 0.5)  # its edges would fall within the window of the first room's
    await made[1].send("start", routine="breathe")
    await clock.advance_to(T0 + 199.0)
    first, second = (breaths(rig) for rig in made)
    assert planned(first[0]) == T0 and planned(second[0]) > T0 + 0.5  # put off, less than a breath
    assert planned(second[0]) < T0 + 10.5
    # and so both rooms' lights follow every breath, within the limit
    assert all(b["lights"] for b in first + second)
    assert _most_in_window([(at, 1) for room in sent for at, _ in room], 1.0 / BREATH_SHARE) == 1

"""Breathing phases with fake ports and a fake clock: edges on the plan, the volume swell, pause, stop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from relaxd.core.ports import LightScene, MusicSource
from relaxd.core.routines import Routine
from relaxd.core.units import percent_to_bri_254
from tests.engine_rig import MakeRig, Rig, phase_names
from tests.test_breath_routines import BREATH_FIELDS

T0 = 1000.0  # the fake clock's start: the session's (and its first phase's) start
LOW, HIGH = percent_to_bri_254(20), percent_to_bri_254(40)
BREATHING = Routine.model_validate(
    {
        "phases": [
            {
                "name": "breathe",
                "duration": "60s",
                "lights": {"brightness": "50%", "color_temp": "2500K", "transition": "10s"},
                "music": {"volume": 28, "ramp": "0s"},
                "breathing": {
                    "inhale": "4s",
                    "hold": "1s",
                    "exhale": "6s",
                    "rest": "1s",
                    "brightness": ["20%", "40%"],
                    "volume_swell": 3,
                },
            },
            {"name": "after", "duration": "30s", "lights": {"brightness": "10%", "transition": "2s"}},
        ]
    }
)


def breathing_rig(make_rig: MakeRig, **kw: Any) -> Rig:
    return make_rig(routines={"breathing": BREATHING}, **kw)


def scenes(rig: Rig) -> list[LightScene]:
    return [arg for what, arg in rig.lights.calls if what == "apply"]


def volumes(rig: Rig) -> list[tuple[int, float]]:
    """(volume, ramp_s) of every volume the speaker was asked for (start_music's too)."""
    return [tuple(arg[-2:]) for what, arg in rig.speaker.calls if what in ("set_volume", "start_music")]


def breaths(rig: Rig) -> list[dict[str, Any]]:
    assert all(not retain for topic, _, retain in rig.bus.messages if topic.endswith("/breath"))
    return [json.loads(payload) for topic, payload, _ in rig.bus.messages if topic == "relaxd/bedroom/breath"]


async def test_the_lights_rise_over_the_inhale_and_fall_over_the_exhale_on_the_plan(make_rig: MakeRig) -> None:
    rig = breathing_rig(make_rig)
    await rig.send("start", routine="breathing")
    # The first inhale at the phase's start, instead of the phase's own scene: up to the top in 4 s,
    # in the phase's colour.
    assert [(s.bri_254, s.transition_s, s.ct_mired) for s in scenes(rig)] == [(HIGH, 4.0, 400)]
    await rig.at(4.999)
    assert len(scenes(rig)) == 1  # the hold sends nothing
    await rig.at(5.0)
    assert [(s.bri_254, s.transition_s) for s in scenes(rig)][1:] == [(LOW, 6.0)]
    assert rig.lights.state["1"]["bri"] == LOW
    await rig.at(11.999)
    assert len(scenes(rig)) == 2  # nor does the rest
    await rig.at(12.0)
    assert scenes(rig)[2].bri_254 == HIGH
    await rig.at(59.9)
    # 5 breaths of 12 s in the minute: an inhale at 0, 12, ..., 48 and an exhale at 5, 17, ..., 53
    assert [s.bri_254 for s in scenes(rig)] == [HIGH, LOW] * 5
    published = breaths(rig)
    assert [b["breath"] for b in published[:4]] == ["inhale", "hold", "exhale", "rest"]
    assert [b["duration_s"] for b in published[:4]] == [4.0, 1.0, 6.0, 1.0]
    assert published[2]["at"] == "2026-11-23T20:00:05.000Z" and published[2]["cycle"] == 0
    assert [b["lights"] for b in published[:4]] == [True, False, True, False]
    assert all(tuple(b) == BREATH_FIELDS for b in published)  # as docs/mqtt.md has them
    assert len(published) == 20
    await rig.at(60.0)
    # The next phase: the breath is over, its own scene is applied as ever.
    assert phase_names(rig.bus) == ["breathe", "after"]
    assert scenes(rig)[-1] == LightScene(bri_254=percent_to_bri_254(10), transition_s=2.0)
    await rig.at(70.0)
    assert len(scenes(rig)) == 11 and len(breaths(rig)) == 20


async def test_the_volume_swells_with_the_breath_but_never_above_max_volume(make_rig: MakeRig) -> None:
    rig = breathing_rig(make_rig, max_volume=30)
    await rig.send("start", routine="breathing")
    await rig.at(24.0)
    # The phase's music first (28; the first inhale finds it still starting and leaves it be), then up
    # with every inhale (28 + 3, capped at 30) and back down with every exhale.
    assert volumes(rig)[0] == (28, 0.0)
    assert volumes(rig)[1:] == [(28, 4.5), (30, 3.0), (28, 4.5), (30, 3.0)]
    assert max(v for v, _ in volumes(rig)) == 30


async def test_the_swell_waits_while_the_phase_music_is_still_starting(make_rig: MakeRig) -> None:
    rig = breathing_rig(make_rig)
    release = asyncio.Event()
    real_start = rig.speaker.start_music

    async def slow_start(source: MusicSource, volume: int, ramp_s: float) -> None:
        await release.wait()  # the speaker takes its time to switch to the music
        await real_start(source, volume, ramp_s)

    rig.speaker.start_music = slow_start  # type: ignore[method-assign]
    await rig.send("start", routine="breathing")
    await rig.at(5.0)
    # start_music is still under way: no swell cuts it short (it would never start the music)
    assert rig.speaker.names() == ["snapshot"] and rig.speaker.state["volume"] == 25
    release.set()
    await rig.at(12.0)
    assert volumes(rig) == [(28, 0.0), (30, 3.0)] and rig.speaker.state["uri"] == "Spa Radio"


async def test_pausing_holds_the_breath_and_resuming_goes_on_where_it_was(make_rig: MakeRig) -> None:
    rig = breathing_rig(make_rig)
    await rig.send("start", routine="breathing")
    await rig.at(2.0)  # mid-inhale
    await rig.send("pause")
    await rig.at(40.0)
    assert len(scenes(rig)) == 1 and len(breaths(rig)) == 1  # held: nothing sent, nothing published
    assert rig.lights.state["1"]["bri"] == HIGH  # where the inhale went
    await rig.send("resume")  # held 38 s: every later edge moves by 38 s
    await rig.at(41.999)
    assert [b["breath"] for b in breaths(rig)] == ["inhale"]
    await rig.at(42.0)  # the hold, planned at 4 s
    await rig.at(43.0)  # the exhale, planned at 5 s
    assert [s.bri_254 for s in scenes(rig)] == [HIGH, LOW]
    assert [b["breath"] for b in breaths(rig)] == ["inhale", "hold", "exhale"]
    assert breaths(rig)[-1]["at"] == "2026-11-23T20:00:43.000Z"
    # The phase (60 s) ends 38 s later too.
    await rig.at(97.9)
    assert phase_names(rig.bus) == ["breathe"]
    await rig.at(98.0)
    assert phase_names(rig.bus) == ["breathe", "after"]


async def test_a_stop_mid_breath_sends_nothing_more_and_restores_the_room(make_rig: MakeRig) -> None:
    rig = breathing_rig(make_rig)
    await rig.send("start", routine="breathing")
    await rig.at(7.0)  # mid-exhale
    await rig.send("stop")
    assert rig.bus.names()[-1] == "room_restored"
    assert rig.lights.state == rig.original_lights and rig.speaker.state == rig.original_speaker
    sent = len(rig.lights.calls)
    await rig.at(60.0)
    assert len(rig.lights.calls) == sent and rig.lights.names()[-1] == "restore"
    assert len(breaths(rig)) == 3 and rig.engine.breath.due_at() is None


async def test_a_skip_from_a_breathing_phase_ends_the_breath(make_rig: MakeRig) -> None:
    rig = breathing_rig(make_rig)
    await rig.send("start", routine="breathing")
    await rig.at(6.0)
    await rig.send("skip")
    count = len(breaths(rig))
    await rig.at(29.0)
    assert phase_names(rig.bus) == ["breathe", "after"] and len(breaths(rig)) == count


async def test_an_edge_woken_up_too_late_is_left_out_and_the_next_is_on_time(make_rig: MakeRig) -> None:
    rig = breathing_rig(make_rig)
    await rig.send("start", routine="breathing")
    rig.clock.mono = T0 + 7.0  # the loop was held 2 s past the exhale (6 s long: a quarter is 1.5 s)
    rig.engine.check_devices()  # any input wakes the engine
    await rig.at(7.0)
    assert [s.bri_254 for s in scenes(rig)] == [HIGH]  # no late exhale: the next inhale at 12 s
    await rig.at(12.0)
    assert [s.bri_254 for s in scenes(rig)] == [HIGH, HIGH]
    assert [b["breath"] for b in breaths(rig)] == ["inhale", "rest", "inhale"]


async def test_lights_that_are_offline_miss_edges_and_come_back_with_the_breath(make_rig: MakeRig) -> None:
    rig = breathing_rig(make_rig)
    await rig.send("start", routine="breathing")
    rig.lights.fail = True
    await rig.at(5.0)
    assert rig.bus.of("device_unavailable")[0]["device"] == "lights"
    await rig.at(12.0)
    assert [b["lights"] for b in breaths(rig) if b["breath"] == "inhale"] == [True, False]
    rig.lights.fail = False
    await rig.at(20.0)  # the retry (every 10 s) found them back; its re-apply of the phase sends nothing
    assert rig.bus.of("device_available")
    await rig.at(24.0)
    assert scenes(rig)[-1].bri_254 == HIGH and breaths(rig)[-1]["lights"] is True


async def test_lights_away_when_the_breath_begins_join_it_once_they_are_back(make_rig: MakeRig) -> None:
    first = {"name": "first", "duration": "20s", "lights": {"brightness": "30%"}}
    routine = Routine.model_validate({"phases": [first, *BREATHING.model_dump()["phases"][:1]]})
    rig = make_rig(routines={"later": routine})
    await rig.send("start", routine="later")
    rig.lights.fail = True
    rig.engine.check_devices()  # the health check finds them away
    await rig.at(11.0)
    assert rig.bus.of("device_unavailable")
    await rig.at(20.0)  # the breathing phase begins without them
    assert breaths(rig)[0]["lights"] is False
    rig.lights.fail = False
    await rig.at(31.0)  # a retry (every 10 s) finds them back
    assert rig.bus.of("device_available")
    await rig.at(32.0)  # the next breath: followed
    assert breaths(rig)[-1]["breath"] == "inhale" and breaths(rig)[-1]["lights"] is True
    assert scenes(rig)[-1].bri_254 == HIGH

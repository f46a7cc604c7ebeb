"""Every kind of light in one room: a ct light whose state has no colormode, a colour-only light and a
dimmable light get what they can show, are restored exactly and are never taken for hand changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.adapters.hue.fit import LightInfo, ct_mired_to_xy, group_body
from relaxd.core.ports import LightScene
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import COLOR_ONLY, COLOR_TEMPERATURE_NO_MODE, DIMMABLE, EXTENDED_COLOR
from tests.hue_rig import COLOURED, WARM, call, err, group_puts, light_puts

STATE_FIELDS = ("on", "bri", "colormode", "xy", "ct", "hue", "sat")
EVENING = LightScene(bri_254=120, ct_mired=370, transition_s=0)


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    """Candle (ct, no colormode), Bloom (colour, no ct), Desk (dimmable) in the Room "Kinds"."""
    hub = HueBridgeSim(lights=0)
    hub.add_light(COLOR_TEMPERATURE_NO_MODE, "Candle", on=True, bri=200, ct=300)
    hub.add_light(COLOR_ONLY, "Bloom", on=True, bri=150, xy=[0.2, 0.3], colormode="xy")
    hub.add_light(DIMMABLE, "Desk", on=True, bri=100)
    hub.add_group("Kinds", ["1", "2", "3"])
    with hub:
        yield hub


@pytest.fixture
def room(sim: HueBridgeSim, calls: BlockingCalls) -> HueLights:
    return HueLights(HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2), group="Kinds")


def states(sim: HueBridgeSim) -> dict[str, dict[str, object]]:
    return {i: {k: v for k, v in sim.light_state(i).items() if k in STATE_FIELDS} for i in sim.light_ids()}


def test_the_simulated_models_are_what_bridges_report(sim: HueBridgeSim) -> None:
    assert "colormode" not in sim.light_state(1) and sim.light_state(1)["ct"] == 300
    assert "ct" not in sim.light_state(2) and sim.light(2)["capabilities"]["control"]["colorgamuttype"] == "A"
    assert set(sim.light_state(3)) == {"on", "bri", "alert", "mode", "reachable"}
    status, answer = call(sim, "PUT", f"/api/{sim.username}/lights/2/state", {"ct": 400})
    assert (status, answer) == (200, [err(6, "/lights/2/state/ct", "parameter, ct, not available")])
    call(sim, "PUT", f"/api/{sim.username}/lights/1/state", {"ct": 250})
    assert sim.light_state(1)["ct"] == 250 and "colormode" not in sim.light_state(1)


async def test_a_ct_scene_becomes_xy_for_a_colour_only_light_and_bri_for_a_dimmable(
    sim: HueBridgeSim, room: HueLights, calls: BlockingCalls
) -> None:
    warm_xy = list(ct_mired_to_xy(480))
    assert 0.5 < warm_xy[0] < 0.55  # a warm white, not the Bloom's own blue-green
    await room.snapshot()
    await room.apply(WARM)
    # One action fits all three: the candle takes ct (clamped to its range), the Bloom xy, the Desk bri.
    assert group_puts(sim) == [{"on": True, "bri": 80, "xy": warm_xy, "ct": 480, "transitiontime": 0}]
    assert {k: sim.light_state(1)[k] for k in ("bri", "ct")} == {"bri": 80, "ct": 454}
    assert (sim.light_state(2)["xy"], sim.light_state(2)["colormode"]) == (warm_xy, "xy")
    assert sim.light_state(3)["bri"] == 80
    globe = sim.add_light(EXTENDED_COLOR, "Globe", on=True, bri=60, xy=[0.6, 0.35], colormode="xy")
    sim.add_group("Mixed", ["2", globe], type="Zone")
    sim.clear_request_log()
    mixed = HueLights(HueBridge(sim.address, sim.username, calls=calls, https=False), group="Mixed")
    await mixed.apply(EVENING)
    # A group action with xy would make the Globe leave ct: one command per light instead.
    assert group_puts(sim) == []
    bodies = dict(light_puts(sim))
    assert bodies["2"] == {"on": True, "bri": 120, "xy": list(ct_mired_to_xy(370)), "transitiontime": 0}
    assert bodies[globe] == {"on": True, "bri": 120, "ct": 370, "transitiontime": 0}
    assert sim.light_state(globe)["colormode"] == "ct" and sim.light_state(2)["xy"] == list(ct_mired_to_xy(370))
    sim.clear_request_log()
    await room.apply(COLOURED)
    assert len(group_puts(sim)) == 1 and light_puts(sim) == []
    assert sim.light_state(2)["xy"] == [0.5123, 0.4123] and sim.light_state(1)["ct"] == 400
    assert set(sim.light_state(3)) == {"on", "bri", "alert", "mode", "reachable"}


async def test_every_kind_is_restored_exactly_and_never_taken_for_a_hand_change(
    sim: HueBridgeSim, room: HueLights
) -> None:
    before = states(sim)
    snapshot = await room.snapshot()
    assert snapshot["lights"]["1"]["ct"] == 300 and "colormode" not in snapshot["lights"]["1"]
    for scene in (WARM, EVENING, COLOURED, WARM):
        sim.clear_request_log()
        await room.apply(scene)
        touched = {light for light, _ in light_puts(sim)} | ({"1", "2", "3"} if group_puts(sim) else set())
        assert touched == {"1", "2", "3"}, scene  # nobody left alone: no hand change was seen
    assert sim.light_state(1)["ct"] == 454 and sim.light_state(3)["bri"] == 80
    report = await room.restore(snapshot)
    assert sorted(report.restored) == ["Bloom", "Candle", "Desk"] and report.left_alone == []
    assert states(sim) == before


async def test_a_real_hand_change_on_a_light_without_colormode_is_still_seen(
    sim: HueBridgeSim, room: HueLights
) -> None:
    snapshot = await room.snapshot()
    await room.apply(WARM)
    sim.set_light_by_hand(1, ct=200)
    sim.clear_request_log()
    await room.apply(EVENING)
    assert "1" not in {light for light, _ in light_puts(sim)} and sim.light_state(1)["ct"] == 200
    report = await room.restore(snapshot)
    assert report.left_alone == ["Candle"] and sim.light_state(1)["ct"] == 200
    assert sim.light_state(2)["xy"] == [0.2, 0.3] and sim.light_state(3)["bri"] == 100


def test_group_body_only_when_one_action_fits_every_light() -> None:
    colour = LightInfo("1", "Colour", True, True, (153, 500))
    bloom = LightInfo("2", "Bloom", True, True, None)
    white = LightInfo("3", "White", True, False, (153, 454))
    dim = LightInfo("4", "Dim", True, False, None)
    assert group_body([colour, white, dim], WARM) == {"on": True, "bri": 80, "ct": 480, "transitiontime": 0}
    assert group_body([colour, bloom], WARM) is None  # ct for one, xy for the other
    assert group_body([bloom, dim], WARM) is not None  # xy only: every light takes it or ignores it
    both = group_body([colour, bloom, white], COLOURED)
    assert both is not None and both["xy"] == [0.5123, 0.4123] and both["ct"] == 400

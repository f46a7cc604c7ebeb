"""The Hue adapter applying scenes: fitted to each light, one group command, paced to the bridge's
limits, and never fighting a hand in the Hue app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.adapters.hue.pacing import Window
from relaxd.core.ports import DeviceError, LightScene
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import DIMMABLE
from tests.hue_rig import COLOURED, WARM, every_kind_of_light, group_puts, light_puts, max_in_window


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    """Every kind of light in every colormode, on and off, in one Room."""
    with every_kind_of_light() as hub:
        yield hub


@pytest.fixture
def bridge(sim: HueBridgeSim, calls: BlockingCalls) -> HueBridge:
    return HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)


# -- scenes ---------------------------------------------------------------------------------------


async def test_scene_is_fitted_to_each_light(sim: HueBridgeSim, bridge: HueBridge) -> None:
    names = ["Ceiling", "Reading", "Hall", "Bedside"]  # not a group: one command per light
    await HueLights(bridge, names=names).apply(COLOURED)
    bodies = dict(light_puts(sim))
    assert group_puts(sim) == []
    assert bodies["1"] == {"on": True, "bri": 60, "xy": [0.5123, 0.4123], "transitiontime": 25}
    assert bodies["4"] == {"on": True, "bri": 60, "ct": 400, "transitiontime": 25}
    assert bodies["5"] == bodies["7"] == {"on": True, "bri": 60, "transitiontime": 25}
    assert sim.light_state(7)["on"] is True and sim.light_state(4)["colormode"] == "ct"
    sim.clear_request_log()
    await HueLights(bridge, names=["Reading"]).apply(LightScene(bri_254=300, ct_mired=600, transition_s=0))
    assert light_puts(sim) == [("4", {"on": True, "bri": 254, "ct": 454, "transitiontime": 0})]


async def test_group_room_uses_one_group_command(sim: HueBridgeSim, bridge: HueBridge) -> None:
    await HueLights(bridge, group="Massage Room").apply(COLOURED)
    assert light_puts(sim) == []
    assert group_puts(sim) == [{"on": True, "bri": 60, "xy": [0.5123, 0.4123], "ct": 400, "transitiontime": 25}]
    states = [sim.light_state(i) for i in sim.light_ids()]
    assert all(s["on"] and s["bri"] == 60 for s in states)
    assert (states[0]["colormode"], states[3]["ct"]) == ("xy", 400)


async def test_names_that_are_exactly_a_group_use_the_group(sim: HueBridgeSim, bridge: HueBridge) -> None:
    sim.add_group("Corner", ["5", "4"], type="Zone")
    await HueLights(bridge, names=["Reading", "Hall"]).apply(WARM)
    assert light_puts(sim) == [] and len(group_puts(sim)) == 1
    assert [e.path.split("/")[4] for e in sim.request_log() if e.method == "PUT"] == ["2"]


async def test_integer_ids_never_light_names(sim: HueBridgeSim, bridge: HueBridge) -> None:
    # phue reads a string id as a light name: light "2" must not be confused with a light NAMED "2".
    sim.set_light_by_hand(1, bri=254)
    await bridge.request("renaming", "read", [], lambda b: b.set_light(1, "name", "2"))
    assert sim.light(1)["name"] == "2"
    await bridge.set_light(2, {"bri": 33})
    assert sim.light_state(2)["bri"] == 33 and sim.light_state(1)["bri"] == 254


async def test_twenty_lights_by_name_are_paced_without_a_429(calls: BlockingCalls) -> None:
    with HueBridgeSim(lights=21) as sim:
        bridge = HueBridge(sim.address, sim.username, calls=calls, https=False)
        room = HueLights(bridge, names=sim.light_names()[:20])  # not a group: per-light commands
        await room.snapshot()
        await room.apply(WARM)
        assert sim.rate_limited_count == 0
        assert all(sim.light_state(i)["bri"] == 80 for i in sim.light_ids()[:20])
        assert sim.light_state(21) == HueBridgeSim(lights=21).light_state(21)
        times = [e.at_s for e in sim.request_log() if e.method == "PUT"]
        assert len(times) == 20 and group_puts(sim) == []
        assert max_in_window(times, 1.0) <= 10


async def test_a_429_is_retried_once_then_reported(sim: HueBridgeSim, bridge: HueBridge) -> None:
    sim.fail_next(1, http_status=429)
    await bridge.set_light(1, {"bri": 42})
    assert sim.light_state(1)["bri"] == 42
    sim.fail_next(2, http_status=429)
    with pytest.raises(DeviceError) as caught:
        await bridge.set_light(1, {"bri": 43})
    assert caught.value.code == 429 and sim.light_state(1)["bri"] == 42


async def test_the_wait_after_a_429_is_cancellable(sim: HueBridgeSim, bridge: HueBridge) -> None:
    sim.fail_next(1, http_status=429)  # the simulator asks for Retry-After: 1
    task = asyncio.create_task(bridge.set_light(1, {"bri": 42}))
    while not light_puts(sim):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began < 0.1
    await asyncio.sleep(1.2)
    assert len(light_puts(sim)) == 1 and sim.light_state(1)["bri"] != 42


# -- do not fight the user ------------------------------------------------------------------------


async def test_hand_changed_lights_are_left_alone_by_apply_and_restore(sim: HueBridgeSim, bridge: HueBridge) -> None:
    room = HueLights(bridge, group="Massage Room")
    snapshot = await room.snapshot()
    await room.apply(WARM)
    sim.set_light_by_hand(2, xy=[0.15, 0.06])  # a new colour in the app
    sim.set_light_by_hand(4, bri=200)  # brighter by hand
    sim.set_light_by_hand(5, on=False)  # switched off at the wall
    sim.clear_request_log()

    await room.apply(COLOURED)

    touched = {light_id for light_id, _ in light_puts(sim)}
    assert group_puts(sim) == [] and touched == {"1", "3", "6", "7"}
    assert sim.light_state(2)["xy"] == [0.15, 0.06] and sim.light_state(4)["bri"] == 200
    report = await room.restore(snapshot)
    assert sorted(report.left_alone) == ["Floor lamp", "Hall", "Reading"]
    assert (sim.light_state(2)["xy"], sim.light_state(4)["bri"], sim.light_state(5)["on"]) == (
        [0.15, 0.06],
        200,
        False,
    )
    assert sim.light_state(1)["ct"] == 181 and sim.light_state(6)["on"] is False


async def test_a_hand_change_during_the_session_start_is_also_respected(sim: HueBridgeSim, bridge: HueBridge) -> None:
    room = HueLights(bridge, group="Massage Room")
    snapshot = await room.snapshot()
    sim.set_light_by_hand(1, ct=300)
    await room.apply(WARM)
    assert sim.light_state(1)["ct"] == 300
    assert "Ceiling" in (await room.restore(snapshot)).left_alone


async def test_bridge_rounding_and_fades_are_not_hand_changes(sim: HueBridgeSim, bridge: HueBridge) -> None:
    room = HueLights(bridge, group="Massage Room")
    await room.snapshot()
    await room.apply(COLOURED)  # xy rounded to 4 decimals by the bridge, a 2.5 s fade
    sim.set_light_by_hand(1, bri=150)  # still on its way from 254 down to 60
    sim.set_light_by_hand(4, ct=398)  # ct rounding
    sim.clear_request_log()
    await room.apply(WARM)
    assert light_puts(sim) == [] and len(group_puts(sim)) == 1  # nobody became user-owned
    sim.set_light_by_hand(1, bri=20)  # outside the fade: a hand change
    sim.clear_request_log()
    await room.apply(COLOURED)
    assert "1" not in {i for i, _ in light_puts(sim)} and len(light_puts(sim)) == 6


async def test_the_fade_counts_from_the_answer_not_from_the_queueing(sim: HueBridgeSim, bridge: HueBridge) -> None:
    for i in range(10):
        sim.add_light(DIMMABLE, f"Other room {i}", on=True, bri=200)
    others = HueLights(bridge, names=[f"Other room {i}" for i in range(10)])
    room = HueLights(bridge, names=["Hall"])
    await room.snapshot()
    # The other room's ten commands fill the pacing window: the Hall's waits about a second.
    await asyncio.gather(others.apply(WARM), room.apply(LightScene(bri_254=40, transition_s=0.3)))
    assert light_puts(sim)[-1][0] == "5" and sim.rate_limited_count == 0
    # Past the settle window counted from the queueing, within the one counted from the answer: a
    # value on the way from 90 to 40 is still the fade, not a hand change.
    await asyncio.sleep(0.5)
    sim.set_light_by_hand(5, bri=60)
    sim.clear_request_log()
    await room.apply(LightScene(bri_254=120, transition_s=0))
    assert light_puts(sim) == [("5", {"on": True, "bri": 120, "transitiontime": 0})]


# -- the pacing window ----------------------------------------------------------------------------


def test_the_window_counts_from_the_send_and_an_unsent_command_counts_as_now() -> None:
    window = Window(2, 1.1)
    assert window.has_room(0.0)
    first, second = window.take(), window.take()
    assert not window.has_room(5.0) and window.free_at_s(5.0) is None  # unsent: only a send can tell
    first.sent_s, second.sent_s = 5.0, 5.5
    assert window.free_at_s(5.5) == pytest.approx(6.1)
    assert not window.has_room(6.09) and window.has_room(6.1)
    window.forget(second)  # admitted, but its caller left before it was started
    assert window.has_room(6.0)

"""The Hue adapter with the real phue against the simulated bridge on 127.0.0.1: pairing, snapshot
and restore, errors."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights, pair
from relaxd.core.ports import DeviceError
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import COLOR_TEMPERATURE
from tests.hue_rig import COLOURED, WARM, assert_restored, every_kind_of_light, light_puts


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    """Every kind of light in every colormode, on and off, in one Room."""
    with every_kind_of_light() as hub:
        yield hub


@pytest.fixture
def bridge(sim: HueBridgeSim, calls: BlockingCalls) -> HueBridge:
    return HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)


@pytest.fixture
def closed_address() -> str:
    gone = HueBridgeSim(lights=0)
    gone.start()
    gone.stop()
    return gone.address


# -- pairing --------------------------------------------------------------------------------------


def test_pair_polls_until_the_link_button_is_pressed(sim: HueBridgeSim, calls: BlockingCalls) -> None:
    ticks: list[float] = []

    def tick(left_s: float) -> None:
        ticks.append(left_s)
        sim.press_link_button()

    username = pair(sim.address, https=False, wait_s=5, on_tick=tick, poll_s=0.05).username
    posts = [e for e in sim.request_log() if e.method == "POST" and e.path == "/api"]
    assert len(posts) == 2 and len(ticks) == 1 and 0 < ticks[0] <= 5
    assert posts[0].body["devicetype"].startswith("relaxd#") and len(posts[0].body["devicetype"]) <= 40
    asyncio.run(HueBridge(sim.address, username, calls=calls, https=False).check())


def test_pair_gives_up_with_a_link_button_message(sim: HueBridgeSim) -> None:
    ticks: list[float] = []
    with pytest.raises(DeviceError, match="link button") as caught:
        pair(sim.address, https=False, wait_s=0.3, on_tick=ticks.append, poll_s=0.05, devicetype="relaxd#t")
    assert caught.value.code == 101 and caught.value.device == "lights"
    assert len(ticks) >= 3 and ticks == sorted(ticks, reverse=True)


def test_pair_does_not_wait_for_an_unreachable_bridge(closed_address: str) -> None:
    started_s = time.monotonic()
    with pytest.raises(DeviceError, match="refused"):
        pair(closed_address, https=False, wait_s=10)
    assert time.monotonic() - started_s < 2


# -- snapshot and restore -------------------------------------------------------------------------


async def test_snapshot_is_per_light_json_with_colormode_colour_and_capabilities(bridge: HueBridge) -> None:
    snapshot = await HueLights(bridge, group="Massage Room").snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    lights = snapshot["lights"]
    assert list(lights) == [str(i) for i in range(1, 8)]
    assert {k: lights["1"][k] for k in ("on", "bri", "colormode", "ct")} == {
        "on": True,
        "bri": 254,
        "colormode": "ct",
        "ct": 181,
    }
    assert "xy" not in lights["1"] and "hue" not in lights["1"]  # only the colour of its colormode
    assert (lights["2"]["colormode"], lights["2"]["xy"]) == ("xy", [0.2182, 0.1352])
    assert (lights["3"]["hue"], lights["3"]["sat"]) == (45000, 200)
    assert lights["4"]["ct_range"] == [153, 454] and lights["4"]["color"] is False
    assert "colormode" not in lights["5"] and lights["5"]["dimmable"] is True
    assert lights["7"]["name"] == "Bedside" and lights["7"]["on"] is False


async def test_restore_brings_back_every_kind_and_colormode(sim: HueBridgeSim, bridge: HueBridge) -> None:
    sim.add_light(COLOR_TEMPERATURE, "Desk", on=False, bri=200, ct=300)
    room = HueLights(bridge, names=sim.light_names())
    snapshot = await room.snapshot()
    await room.apply(WARM)
    assert all(sim.light_state(i)["on"] and sim.light_state(i)["bri"] == 80 for i in sim.light_ids())
    sim.clear_request_log()

    report = await room.restore(snapshot)

    assert sorted(report.restored) == sorted(e["name"] for e in snapshot["lights"].values())
    assert report.left_alone == [] and report.unrestorable == {}
    assert_restored(sim, snapshot)
    puts = light_puts(sim)
    offs = [i for i, (_, body) in enumerate(puts) if body.get("on") is False]
    assert sorted(puts[i][0] for i in offs) == ["6", "7", "8"]  # Globe, Bedside, Desk
    assert min(offs) > max(i for i, (_, body) in enumerate(puts) if body.get("on") is True)
    assert all(set(puts[i][1]) == {"on"} for i in offs)  # never off with a transition (bri-1 trap)
    sim.set_light_by_hand(7, on=True)
    assert sim.light_state(7)["bri"] == 30


async def test_restore_is_idempotent_and_skips_what_is_already_right(sim: HueBridgeSim, bridge: HueBridge) -> None:
    room = HueLights(bridge, group="Massage Room")
    snapshot = await room.snapshot()
    await room.apply(WARM)
    await room.restore(snapshot)
    sim.clear_request_log()
    again = await room.restore(snapshot)
    assert light_puts(sim) == [] and len(again.restored) == 7 and again.left_alone == []
    assert_restored(sim, snapshot)


async def test_restore_in_a_fresh_object_from_json_on_disk(
    sim: HueBridgeSim, bridge: HueBridge, calls: BlockingCalls, tmp_path: Path
) -> None:
    room = HueLights(bridge, group="Massage Room")
    (tmp_path / "room.json").write_text(json.dumps(await room.snapshot()))
    await room.apply(COLOURED)
    saved = json.loads((tmp_path / "room.json").read_text())
    # A new process: new bridge object, and the room's config no longer even resolves.
    fresh = HueLights(HueBridge(sim.address, sim.username, calls=calls, https=False), group="Renamed room")
    report = await fresh.restore(saved)
    assert len(report.restored) == 7
    assert_restored(sim, saved)


async def test_unreachable_light_fails_restore_and_a_retry_finishes_it(sim: HueBridgeSim, bridge: HueBridge) -> None:
    room = HueLights(bridge, group="Massage Room")
    snapshot = await room.snapshot()
    await room.apply(WARM)
    sim.set_reachable(2, False)
    with pytest.raises(DeviceError, match="Floor lamp") as caught:
        await room.restore(snapshot)
    assert "Ceiling" not in caught.value.message
    assert sim.light_state(1)["ct"] == 181  # the others were restored anyway
    sim.set_reachable(2, True)
    report = await room.restore(snapshot)
    assert "Floor lamp" in report.restored
    assert_restored(sim, snapshot)


async def test_deleted_light_is_reported_not_retried(bridge: HueBridge) -> None:
    snapshot = await HueLights(bridge, group="Massage Room").snapshot()
    snapshot["lights"]["99"] = {**snapshot["lights"]["1"], "name": "Gone"}
    report = await HueLights(bridge, group="Massage Room").restore(snapshot)
    assert report.unrestorable == {"Gone": "the light is no longer on the bridge"}


async def test_a_damaged_snapshot_is_a_device_error(bridge: HueBridge) -> None:
    with pytest.raises(DeviceError, match="not a Hue"):
        await HueLights(bridge, group="Massage Room").restore({"lights": {}})


# -- errors ---------------------------------------------------------------------------------------


async def test_unreachable_bridge_is_a_device_error(closed_address: str, calls: BlockingCalls) -> None:
    for https in (False, "auto"):
        bridge = HueBridge(closed_address, "someone", calls=calls, https=https, timeout_s=1)
        room = HueLights(bridge, group="Massage Room")
        actions: list[Callable[[], Awaitable[Any]]] = [room.check, room.snapshot, functools.partial(room.apply, WARM)]
        for action in actions:
            with pytest.raises(DeviceError) as caught:
                await action()
            assert caught.value.device == "lights"
            assert isinstance(caught.value.__cause__, OSError)


async def test_bridge_errors_are_device_errors_with_the_hue_code(
    sim: HueBridgeSim, bridge: HueBridge, calls: BlockingCalls
) -> None:
    room = HueLights(bridge, group="Massage Room")
    sim.fail_next(error_type=901)
    with pytest.raises(DeviceError) as caught:
        await room.snapshot()
    assert caught.value.code == 901
    sim.fail_next(http_status=503)
    with pytest.raises(DeviceError) as caught:
        await room.snapshot()
    assert caught.value.code == 503
    stranger = HueBridge(sim.address, "stranger", calls=calls, https=False)
    with pytest.raises(DeviceError) as caught:
        await HueLights(stranger, group="Massage Room").snapshot()
    assert caught.value.code == 1
    with pytest.raises(DeviceError) as caught:
        await stranger.check()
    assert caught.value.code == 1 and "pair" in caught.value.message
    with pytest.raises(DeviceError) as caught:
        await bridge.set_light(7, {"ct": 300})
    assert caught.value.code == 6


async def test_apply_sets_what_it_can_and_names_the_failed_lights(sim: HueBridgeSim, bridge: HueBridge) -> None:
    room = HueLights(bridge, names=["Ceiling", "Hall"])
    await room.snapshot()
    sim.fail_next(error_type=901, path_contains="/lights/5/state")
    with pytest.raises(DeviceError, match="could not set Hall") as caught:
        await room.apply(WARM)
    assert caught.value.code == 901 and "Ceiling" not in caught.value.message
    assert (sim.light_state(1)["bri"], sim.light_state(5)["bri"]) == (80, 90)
    await room.apply(WARM)  # a failed command is not mistaken for a hand change later
    assert sim.light_state(5)["bri"] == 80


async def test_a_slow_bridge_times_out_as_a_device_error(sim: HueBridgeSim, calls: BlockingCalls) -> None:
    sim.latency_ms = 800
    bridge = HueBridge(sim.address, sim.username, calls=calls, https="auto", timeout_s=0.2)
    started_s = time.monotonic()
    with pytest.raises(DeviceError, match=r"within 0\.2 s"):
        await HueLights(bridge, group="Massage Room").snapshot()
    assert time.monotonic() - started_s < 0.5  # one timeout, no HTTPS attempt after it


async def test_unknown_group_or_light_names_are_clear_errors(bridge: HueBridge) -> None:
    with pytest.raises(DeviceError, match=r"no Hue group named 'Spa' \(groups on the bridge: Massage Room\)"):
        await HueLights(bridge, group="Spa").snapshot()
    with pytest.raises(DeviceError, match="no Hue light named 'Sconce'"):
        await HueLights(bridge, names=["Ceiling", "Sconce"]).apply(WARM)


async def test_constructors_do_no_io(sim: HueBridgeSim, calls: BlockingCalls) -> None:
    bridge = HueBridge(sim.address, sim.username, calls=calls)
    HueLights(bridge, group="Massage Room")
    HueLights(HueBridge("127.0.0.1:9", "x", calls=calls), names=["a"])
    assert sim.request_log() == [] and calls.pool.started_threads == 0
    await bridge.check()
    assert [(e.method, e.path) for e in sim.request_log()] == [("GET", f"/api/{sim.username}/config")]

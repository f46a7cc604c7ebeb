"""The Hue adapter: the real phue against the simulated bridge on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights, pair
from relaxd.adapters.hue.pacing import Window
from relaxd.core.ports import DeviceError, LightScene
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import COLOR_TEMPERATURE, DIMMABLE, EXTENDED_COLOR

WARM = LightScene(bri_254=80, ct_mired=480, transition_s=0)
COLOURED = LightScene(bri_254=60, ct_mired=400, xy=(0.512345, 0.412345), transition_s=2.5)
SNAPSHOT_FIELDS = ("on", "bri", "colormode", "xy", "ct", "hue", "sat")


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    """Every kind of light in every colormode, on and off, in one Room."""
    hub = HueBridgeSim(lights=0)
    hub.add_light(EXTENDED_COLOR, "Ceiling", on=True, bri=254, ct=181, colormode="ct")
    hub.add_light(EXTENDED_COLOR, "Floor lamp", on=True, bri=140, xy=[0.2182, 0.1352], colormode="xy")
    hub.add_light(EXTENDED_COLOR, "Strip", on=True, bri=100, hue=45000, sat=200, colormode="hs")
    hub.add_light(COLOR_TEMPERATURE, "Reading", on=True, bri=150, ct=400)
    hub.add_light(DIMMABLE, "Hall", on=True, bri=90)
    hub.add_light(EXTENDED_COLOR, "Globe", on=False, bri=60, xy=[0.6, 0.35], colormode="xy")
    hub.add_light(DIMMABLE, "Bedside", on=False, bri=30)
    hub.add_group("Massage Room", hub.light_ids())
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture
def calls() -> Iterator[BlockingCalls]:
    pool = BlockingCalls(workers=4)
    yield pool
    pool.close()


@pytest.fixture
def bridge(sim: HueBridgeSim, calls: BlockingCalls) -> HueBridge:
    return HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)


@pytest.fixture
def closed_address() -> str:
    gone = HueBridgeSim(lights=0)
    gone.start()
    gone.stop()
    return gone.address


def light_puts(sim: HueBridgeSim) -> list[tuple[str, dict[str, Any]]]:
    """(light id, body) of every light command the bridge received, in order."""
    return [(e.path.split("/")[4], e.body) for e in sim.request_log() if e.method == "PUT" and "/lights/" in e.path]


def group_puts(sim: HueBridgeSim) -> list[dict[str, Any]]:
    return [e.body for e in sim.request_log() if e.method == "PUT" and e.path.endswith("/action")]


def assert_restored(sim: HueBridgeSim, snapshot: dict[str, Any]) -> None:
    for light_id, entry in snapshot["lights"].items():
        state = sim.light_state(light_id)
        for key in SNAPSHOT_FIELDS:
            if key in entry:
                assert state[key] == entry[key], (entry["name"], key)


# -- pairing --------------------------------------------------------------------------------------


def test_pair_polls_until_the_link_button_is_pressed(sim: HueBridgeSim, calls: BlockingCalls) -> None:
    ticks: list[float] = []

    def tick(left_s: float) -> None:
        ticks.append(left_s)
        sim.press_link_button()

    username = pair(sim.address, https=False, wait_s=5, on_tick=tick, poll_s=0.05)
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


# -- secrets and files ----------------------------------------------------------------------------


async def test_phue_never_touches_home(
    sim: HueBridgeSim, calls: BlockingCalls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    sim.press_link_button()
    username = await asyncio.to_thread(pair, sim.address, https=False, wait_s=1)
    room = HueLights(HueBridge(sim.address, username, calls=calls, https=False), group="Massage Room")
    await room.restore(await room.snapshot())
    assert list(home.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["home"]


async def test_the_username_never_reaches_the_logs(
    sim: HueBridgeSim, bridge: HueBridge, calls: BlockingCalls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.press_link_button()
    paired = await asyncio.to_thread(pair, sim.address, https=False, wait_s=1)
    assert logging.getLogger("phue").getEffectiveLevel() == logging.WARNING
    room = HueLights(bridge, group="Massage Room")
    snapshot = await room.snapshot()
    await room.apply(WARM)
    await room.restore(snapshot)
    sim.fail_next(error_type=1)
    with pytest.raises(DeviceError) as caught:
        await room.check()
    assert sim.username not in str(caught.value)
    sim.latency_ms = 500  # a timeout's message and log lines too
    with pytest.raises(DeviceError) as caught:
        await HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=0.1).lights()
    assert sim.username not in str(caught.value)
    assert caplog.records, "the adapter and simulator should have logged something at DEBUG"
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    assert sim.username not in logged and paired not in logged


# -- HTTPS ----------------------------------------------------------------------------------------


@pytest.fixture
def https_sim(tmp_path: Path) -> Iterator[HueBridgeSim]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=001788fffe000001"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    hub = HueBridgeSim(lights=2, ssl_context=context)
    hub.start()
    yield hub
    hub.stop()


async def test_https_only_bridge_with_https_true_and_auto(https_sim: HueBridgeSim, calls: BlockingCalls) -> None:
    secure = HueBridge(https_sim.address, https_sim.username, calls=calls, https=True, timeout_s=2)
    await HueLights(secure, group="Massage Room").apply(WARM)
    assert https_sim.light_state(1)["bri"] == 80
    auto = HueBridge(https_sim.address, https_sim.username, calls=calls, https="auto", timeout_s=2)
    assert (await HueLights(auto, group="Massage Room").snapshot())["lights"]["1"]["bri"] == 80
    await auto.check()  # HTTPS remembered after the plain request was reset
    with pytest.raises(DeviceError, match="reset"):
        await HueBridge(https_sim.address, https_sim.username, calls=calls, https=False, timeout_s=2).check()


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


def max_in_window(times: list[float], window_s: float) -> int:
    """The most events in any window_s (sliding)."""
    return max((sum(1 for t in times if start <= t < start + window_s) for start in times), default=0)

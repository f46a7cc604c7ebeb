"""Several Hue bridges: the config forms, rooms on one bridge or on two, each bridge paced on its own,
one bridge failing without the other, and every light restored exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue.build import build_lights
from relaxd.adapters.hue.lights import HueLights
from relaxd.adapters.hue.several import SeveralBridgesLights
from relaxd.core.config import Settings
from relaxd.core.hue_config import HueConfig, lights_problems
from relaxd.core.ports import DeviceError, LightScene, SnapshotUnusable
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import COLOR_TEMPERATURE, EXTENDED_COLOR
from relaxd.sim.hue_tls import SimCertificates
from tests.hue_rig import WARM, assert_restored, light_puts, max_in_window

PER_BRIDGE = 12  # more than one pacing window of light commands (10)


def bridge_with(names: list[str], **kwargs: Any) -> HueBridgeSim:
    sim = HueBridgeSim(lights=0, **kwargs)
    for index, name in enumerate(names):
        if index % 2:
            sim.add_light(COLOR_TEMPERATURE, name, on=True, bri=100 + index, ct=300 + index)
        else:
            sim.add_light(EXTENDED_COLOR, name, on=index % 4 == 0, bri=50 + index, xy=[0.3, 0.3], colormode="xy")
    return sim


@pytest.fixture
def bridges() -> Iterator[tuple[HueBridgeSim, HueBridgeSim]]:
    """main: "Studio" lamps and "Hall" (a group); annex: "Upstairs" (a group), "Studio corner" and more."""
    main = bridge_with([f"Studio {i}" for i in range(PER_BRIDGE)] + ["Hall A", "Hall B"])
    main.add_group("Hall", ["13", "14"])
    annex = bridge_with([f"Studio corner {i}" for i in range(PER_BRIDGE)] + ["Up A", "Up B"])
    annex.add_group("Upstairs", ["13", "14"])
    with main, annex:
        yield main, annex


def settings_for(main: HueBridgeSim, annex: HueBridgeSim, **annex_extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "hue": {
                "https": False,
                "timeout": "2s",
                "bridges": {
                    "main": {"host": main.address, "username": main.username},
                    "annex": {"host": annex.address, "username": annex.username, **annex_extra},
                },
            },
            "rooms": {
                "studio": {
                    "lights": [
                        {"bridge": "main", "names": [f"Studio {i}" for i in range(PER_BRIDGE)]},
                        {"bridge": "annex", "names": [f"Studio corner {i}" for i in range(PER_BRIDGE)]},
                    ]
                },
                "hall": {"lights": {"bridge": "main", "group": "Hall"}},
                "upstairs": {"lights": {"bridge": "annex", "group": "Upstairs"}},
            },
        }
    )


# -- the config -------------------------------------------------------------------------------------------


def test_the_single_bridge_form_is_still_valid_and_is_called_main() -> None:
    hue = HueConfig.model_validate({"host": "127.0.0.1:8443", "username": "u", "fingerprint": "ab" * 32})
    ((name, bridge),) = hue.bridge_settings().items()
    assert (name, bridge.host, bridge.https, bridge.timeout, bridge.verify) == (
        "main",
        "127.0.0.1:8443",
        "auto",
        5.0,
        True,
    )
    assert bridge.fingerprint == ":".join(["AB"] * 32)


def test_several_bridges_take_the_sections_defaults_and_their_own() -> None:
    hue = HueConfig.model_validate(
        {
            "timeout": "3s",
            "verify": False,
            "bridges": {
                "main": {"host": "a", "username": "u1"},
                "annex": {
                    "host": "b",
                    "username": "u2",
                    "https": True,
                    "verify": True,
                    "bridge_id": "001788fffeae1b58",
                },
            },
        }
    )
    found = hue.bridge_settings()
    assert (found["main"].timeout, found["main"].verify, found["main"].https) == (3.0, False, "auto")
    assert (found["annex"].verify, found["annex"].https, found["annex"].bridge_id) == (True, True, "001788FFFEAE1B58")


@pytest.mark.parametrize(
    ("hue", "problem"),
    [
        ({"host": "a"}, "give host and username"),
        ({"host": "a", "username": "u", "bridges": {"x": {"host": "b", "username": "v"}}}, "belong to each bridge"),
        ({"bridges": {"Main": {"host": "b", "username": "v"}}}, "bridge names"),
        ({"host": "a", "username": "u", "fingerprint": "12:34"}, "64 hex digits"),
        ({"host": "a", "username": "u", "bridge_id": "0017"}, "16 hex digits"),
        ({"host": "a", "username": "u", "ca_file": "/nonexistent/ca.pem"}, "no readable file"),
    ],
)
def test_bad_hue_sections_are_refused(hue: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        HueConfig.model_validate(hue)


def test_rooms_must_name_a_configured_bridge(bridges: tuple[HueBridgeSim, HueBridgeSim]) -> None:
    settings = settings_for(*bridges)
    assert lights_problems(settings.hue, settings.rooms) == []
    settings.rooms["hall"].lights.bridge = "cellar"  # type: ignore[union-attr]
    settings.rooms["upstairs"].lights.bridge = None  # type: ignore[union-attr]
    assert lights_problems(settings.hue, settings.rooms) == [
        "rooms.hall.lights.bridge: unknown bridge 'cellar' (bridges: main, annex)",
        "rooms.upstairs.lights: name the bridge (one of main, annex)",
    ]
    with pytest.raises(ValueError, match="cellar"):
        build_lights(settings, BlockingCalls(workers=1))


def test_the_example_of_several_bridges_in_the_readme_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Several Hue bridges and HTTPS", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    settings = Settings.model_validate(yaml.safe_load(block))
    assert settings.hue is not None and lights_problems(settings.hue, settings.rooms) == []
    assert set(settings.hue.bridge_settings()) == {"main", "annex"}


# -- sessions ---------------------------------------------------------------------------------------------


async def test_two_bridges_in_one_room_and_in_separate_rooms_are_restored_exactly(
    bridges: tuple[HueBridgeSim, HueBridgeSim], calls: BlockingCalls
) -> None:
    main, annex = bridges
    rooms = build_lights(settings_for(main, annex), calls)
    assert isinstance(rooms["studio"], SeveralBridgesLights)
    assert isinstance(rooms["hall"], HueLights) and isinstance(rooms["upstairs"], HueLights)
    snapshots = {room: json.loads(json.dumps(await lights.snapshot())) for room, lights in rooms.items() if lights}
    for lights in rooms.values():
        assert lights is not None
        await lights.apply(WARM)
    for sim in (main, annex):
        assert all(sim.light_state(i)["on"] and sim.light_state(i)["bri"] == 80 for i in sim.light_ids())
    for room, lights in rooms.items():
        assert lights is not None
        report = await lights.restore(snapshots[room])
        assert report.left_alone == [] and report.unrestorable == {}
    studio = snapshots["studio"]["bridges"]
    assert_restored(main, studio["main"])
    assert_restored(annex, studio["annex"])
    assert_restored(main, snapshots["hall"])
    assert_restored(annex, snapshots["upstairs"])
    assert main.light_state(1)["on"] is True and main.light_state(3)["on"] is False


async def test_each_bridge_is_paced_on_its_own(
    bridges: tuple[HueBridgeSim, HueBridgeSim], calls: BlockingCalls
) -> None:
    main, annex = bridges
    studio = build_lights(settings_for(main, annex), calls)["studio"]
    assert studio is not None
    await studio.snapshot()
    main.clear_request_log()
    annex.clear_request_log()
    await studio.apply(LightScene(bri_254=40, ct_mired=400, transition_s=0))
    times = {sim: [e.at_s for e in sim.request_log() if e.method == "PUT" and "/lights/" in e.path] for sim in bridges}
    assert [len(t) for t in times.values()] == [PER_BRIDGE, PER_BRIDGE]
    for sim, sent in times.items():
        assert max_in_window(sent, 1.0) <= 10 and sim.rate_limited_count == 0
    # Ten to each bridge at once: a pace shared by both would have allowed ten in all.
    assert max_in_window(sorted(times[main] + times[annex]), 1.0) >= 20
    assert {light for light, _ in light_puts(annex)} == {str(i) for i in range(1, PER_BRIDGE + 1)}


async def test_a_bridge_that_fails_does_not_stop_the_other(
    bridges: tuple[HueBridgeSim, HueBridgeSim], calls: BlockingCalls
) -> None:
    main, annex = bridges
    studio = build_lights(settings_for(main, annex), calls)["studio"]
    assert studio is not None
    snapshot = await studio.snapshot()
    annex_before = {i: annex.light_state(i) for i in annex.light_ids()}
    annex.stop()
    with pytest.raises(DeviceError, match="1 of 2 bridges") as caught:
        await studio.apply(WARM)
    assert "bridge annex" in caught.value.message and "bridge main" not in caught.value.message
    assert all(main.light_state(i)["bri"] == 80 for i in range(1, PER_BRIDGE + 1))
    with pytest.raises(DeviceError, match="bridge annex"):
        await studio.restore(snapshot)
    assert_restored(main, snapshot["bridges"]["main"])  # the reachable bridge is given back already
    annex.start()
    assert {i: annex.light_state(i) for i in annex.light_ids()} == annex_before
    report = await studio.restore(snapshot)
    assert len(report.restored) == 2 * PER_BRIDGE
    assert_restored(annex, snapshot["bridges"]["annex"])
    damaged = json.loads(json.dumps(snapshot))
    damaged["bridges"]["annex"]["lights"]["1"]["bri"] = 100000
    main.clear_request_log()
    with pytest.raises(SnapshotUnusable):
        await studio.restore(damaged)
    assert light_puts(main) == []  # a damaged part sends nothing to any bridge


async def test_one_bridge_over_https_with_its_identity_next_to_one_over_http(calls: BlockingCalls) -> None:
    certificates = SimCertificates()
    main = bridge_with(["Hall A", "Hall B"])
    main.add_group("Hall", ["1", "2"])
    annex = bridge_with(["Up A", "Up B"], https=True, certificates=certificates)
    annex.add_group("Upstairs", ["1", "2"])
    try:
        with main, annex:
            settings = Settings.model_validate(
                {
                    "hue": {
                        "bridges": {
                            "main": {"host": main.address, "username": main.username, "https": False},
                            "annex": {
                                "host": annex.address,
                                "username": annex.username,
                                "bridge_id": annex.bridge_id,
                                "fingerprint": annex.fingerprint.replace(":", "").lower(),
                            },
                        }
                    },
                    "rooms": {
                        "both": {
                            "lights": {
                                "parts": [{"bridge": "main", "group": "Hall"}, {"bridge": "annex", "group": "Upstairs"}]
                            }
                        }
                    },
                }
            )
            both = build_lights(settings, calls)["both"]
            assert both is not None
            snapshot = await both.snapshot()
            await both.apply(WARM)
            assert annex.light_state(1)["bri"] == 80 and main.light_state(2)["bri"] == 80
            await both.restore(snapshot)
            assert_restored(annex, snapshot["bridges"]["annex"])
            assert annex.redirected() == []
    finally:
        certificates.close()

"""The simulated Hue bridge honours the v1 facts relaxd relies on (shared/reference/hue-v1-facts.md):
error objects, pairing, colour, groups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from relaxd.sim.hue_bridge import HueBridgeSim
from tests.hue_rig import api, call, err, three_lights


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    with three_lights() as bridge:
        yield bridge


# -- error objects: HTTP 200 with the bridge's exact shapes -------------------------------------


def test_unknown_user_gets_error_1(sim: HueBridgeSim) -> None:
    assert call(sim, "GET", "/api/nobody/lights") == (200, [err(1, "/lights", "unauthorized user")])
    status, body = call(sim, "PUT", "/api/nobody/lights/1/state", {"on": False})
    assert (status, body) == (200, [err(1, "/lights/1/state", "unauthorized user")])
    assert sim.light_state(1)["on"] is True


def test_unknown_user_reads_only_the_public_config(sim: HueBridgeSim) -> None:
    status, public = call(sim, "GET", "/api/nobody/config")
    assert status == 200 and "bridgeid" in public and "whitelist" not in public
    assert sim.username in call(sim, "GET", api(sim, "/config"))[1]["whitelist"]


def test_invalid_json_is_error_2(sim: HueBridgeSim) -> None:
    status, body = call(sim, "PUT", api(sim, "/lights/1/state"), raw='{"on": tru')
    assert (status, body) == (200, [err(2, "/lights/1/state", "body contains invalid json")])


def test_unknown_resource_is_error_3(sim: HueBridgeSim) -> None:
    assert call(sim, "GET", api(sim, "/lights/99")) == (
        200,
        [err(3, "/lights/99", "resource, /lights/99, not available")],
    )
    assert call(sim, "PUT", api(sim, "/groups/42/action"), {"on": True})[1][0]["error"]["type"] == 3


def test_wrong_method_is_error_4(sim: HueBridgeSim) -> None:
    assert call(sim, "DELETE", api(sim, "/lights/1/state")) == (
        200,
        [err(4, "/lights/1/state", "method, DELETE, not available for resource, /lights/1/state")],
    )
    assert call(sim, "POST", api(sim, "/lights/1"), {})[1][0]["error"]["type"] == 4


def test_parameter_not_available_is_error_6(sim: HueBridgeSim) -> None:
    status, body = call(sim, "PUT", api(sim, "/lights/3/state"), {"on": True, "ct": 300})
    assert status == 200
    assert body == [
        {"success": {"/lights/3/state/on": True}},
        err(6, "/lights/3/state/ct", "parameter, ct, not available"),
    ]
    assert call(sim, "PUT", api(sim, "/lights/2/state"), {"xy": [0.3, 0.3]})[1] == [
        err(6, "/lights/2/state/xy", "parameter, xy, not available")
    ]
    assert call(sim, "PUT", api(sim, "/lights/1/state"), {"sparkle": 1})[1][0]["error"]["type"] == 6


@pytest.mark.parametrize(
    ("light", "body", "key"),
    [
        (1, {"bri": 300}, "bri"),
        (1, {"bri": 0}, "bri"),
        (1, {"bri": "high"}, "bri"),
        (1, {"bri": True}, "bri"),
        (1, {"on": "yes"}, "on"),
        (1, {"ct": 501}, "ct"),
        (2, {"ct": 480}, "ct"),  # a white-ambiance lamp stops at 454
        (1, {"xy": [0.3]}, "xy"),
        (1, {"transitiontime": -1}, "transitiontime"),
    ],
)
def test_invalid_value_is_error_7(sim: HueBridgeSim, light: int, body: dict[str, Any], key: str) -> None:
    before = sim.light_state(light)
    status, reply = call(sim, "PUT", api(sim, f"/lights/{light}/state"), body)
    value = body[key]
    assert status == 200
    assert reply == [err(7, f"/lights/{light}/state/{key}", f"invalid value, {value}, for parameter, {key}")]
    assert sim.light_state(light) == before


def test_setting_an_off_light_is_error_201_unless_switched_on(sim: HueBridgeSim) -> None:
    status, body = call(sim, "PUT", api(sim, "/lights/3/state"), {"bri": 60})
    assert (status, body) == (
        200,
        [err(201, "/lights/3/state/bri", "parameter, bri, is not modifiable. Device is set to off.")],
    )
    assert sim.light_state(3)["bri"] == 120
    assert call(sim, "PUT", api(sim, "/lights/3/state"), {"on": True, "bri": 60})[1] == [
        {"success": {"/lights/3/state/on": True}},
        {"success": {"/lights/3/state/bri": 60}},
    ]
    assert sim.light_state(3)["bri"] == 60


def test_mixed_success_and_error_applies_the_good_fields(sim: HueBridgeSim) -> None:
    _, body = call(sim, "PUT", api(sim, "/lights/1/state"), {"bri": 80, "ct": 999, "transitiontime": 20})
    assert body == [
        {"success": {"/lights/1/state/bri": 80}},
        err(7, "/lights/1/state/ct", "invalid value, 999, for parameter, ct"),
        {"success": {"/lights/1/state/transitiontime": 20}},
    ]
    assert sim.light_state(1)["bri"] == 80
    assert sim.light_state(1)["ct"] == 300


# -- pairing ------------------------------------------------------------------------------------


def test_pairing_needs_the_link_button_within_30_s(sim: HueBridgeSim) -> None:
    request = {"devicetype": "relaxd#test"}
    assert call(sim, "POST", "/api", request) == (200, [err(101, "", "link button not pressed")])
    sim.press_link_button(ago_s=31)
    assert call(sim, "POST", "/api", request)[1][0]["error"]["type"] == 101
    sim.press_link_button()
    status, body = call(sim, "POST", "/api", request)
    username = body[0]["success"]["username"]
    assert status == 200 and len(username) == 40 and username != sim.username
    assert isinstance(call(sim, "GET", f"/api/{username}/lights")[1], dict)


def test_link_button_over_the_api_and_bad_pairing_bodies(sim: HueBridgeSim) -> None:
    assert call(sim, "PUT", "/api/anyone/config", {"linkbutton": True})[1] == [
        {"success": {"/config/linkbutton": True}}
    ]
    assert "success" in call(sim, "POST", "/api", {"devicetype": "x#y"})[1][0]
    assert call(sim, "POST", "/api", raw="{")[1] == [err(2, "/", "body contains invalid json")]
    assert call(sim, "POST", "/api", {"name": "x"})[1][0]["error"]["type"] == 5


# -- colour -------------------------------------------------------------------------------------


def test_colormode_priority_is_xy_over_ct_over_hs(sim: HueBridgeSim) -> None:
    call(sim, "PUT", api(sim, "/lights/1/state"), {"hue": 1000, "sat": 200, "ct": 250, "xy": [0.2, 0.3]})
    state = sim.light_state(1)
    assert (state["colormode"], state["xy"]) == ("xy", [0.2, 0.3])
    call(sim, "PUT", api(sim, "/lights/1/state"), {"hue": 1000, "sat": 200, "ct": 250})
    assert (sim.light_state(1)["colormode"], sim.light_state(1)["ct"]) == ("ct", 250)
    call(sim, "PUT", api(sim, "/lights/1/state"), {"hue": 1000, "sat": 200})
    state = sim.light_state(1)
    assert (state["colormode"], state["hue"], state["sat"]) == ("hs", 1000, 200)


def test_ct_moves_xy_and_xy_is_stored_to_4_decimals(sim: HueBridgeSim) -> None:
    call(sim, "PUT", api(sim, "/lights/1/state"), {"ct": 500})
    warm = sim.light_state(1)["xy"]
    call(sim, "PUT", api(sim, "/lights/1/state"), {"ct": 153})
    cool = sim.light_state(1)["xy"]
    assert warm[0] > 0.5 > 0.35 > cool[0]
    call(sim, "PUT", api(sim, "/lights/1/state"), {"xy": [0.123456, 0.654321]})
    assert sim.light_state(1)["xy"] == [0.1235, 0.6543]


def test_models_have_real_types_and_ct_ranges(sim: HueBridgeSim) -> None:
    lights = call(sim, "GET", api(sim, "/lights"))[1]
    assert [lights[i]["type"] for i in "123"] == [
        "Extended color light",
        "Color temperature light",
        "Dimmable light",
    ]
    assert lights["1"]["capabilities"]["control"]["ct"] == {"min": 153, "max": 500}
    assert lights["2"]["capabilities"]["control"]["ct"] == {"min": 153, "max": 454}
    assert "ct" not in lights["3"]["capabilities"]["control"]
    assert set(lights["3"]["state"]) == {"on", "bri", "alert", "mode", "reachable"}
    assert "xy" not in lights["2"]["state"] and lights["2"]["state"]["colormode"] == "ct"
    assert call(sim, "PUT", api(sim, "/lights/2/state"), {"ct": 454})[1] == [{"success": {"/lights/2/state/ct": 454}}]
    assert call(sim, "PUT", api(sim, "/lights/1/state"), {"ct": 500})[1] == [{"success": {"/lights/1/state/ct": 500}}]


def test_off_with_a_transition_comes_back_at_bri_1(sim: HueBridgeSim) -> None:
    call(sim, "PUT", api(sim, "/lights/2/state"), {"on": False})
    call(sim, "PUT", api(sim, "/lights/2/state"), {"on": True})
    assert sim.light_state(2)["bri"] == 150  # a plain off keeps the brightness
    call(sim, "PUT", api(sim, "/lights/2/state"), {"on": False, "transitiontime": 20})
    call(sim, "PUT", api(sim, "/lights/2/state"), {"on": True})
    assert sim.light_state(2)["bri"] == 1
    call(sim, "PUT", api(sim, "/lights/2/state"), {"on": False, "transitiontime": 20})
    call(sim, "PUT", api(sim, "/lights/2/state"), {"on": True, "bri": 150})
    assert sim.light_state(2)["bri"] == 150


# -- groups -------------------------------------------------------------------------------------


def test_group_action_reflects_the_last_command_not_the_lights(sim: HueBridgeSim) -> None:
    group = call(sim, "GET", api(sim, "/groups/1"))[1]
    assert (group["name"], group["type"], group["lights"]) == ("Massage Room", "Room", ["1", "2", "3"])
    assert group["state"] == {"any_on": True, "all_on": False}
    reply = call(sim, "PUT", api(sim, "/groups/1/action"), {"on": True, "bri": 90, "ct": 480})[1]
    assert reply == [{"success": {f"/groups/1/action/{k}": v}} for k, v in (("on", True), ("bri", 90), ("ct", 480))]
    assert [sim.light_state(i)["bri"] for i in (1, 2, 3)] == [90, 90, 90]
    assert (sim.light_state(1)["ct"], sim.light_state(2)["ct"]) == (480, 454)  # clamped per model
    sim.set_light_by_hand(1, bri=10)
    group = call(sim, "GET", api(sim, "/groups/1"))[1]
    assert group["action"]["bri"] == 90 and group["state"] == {"any_on": True, "all_on": True}
    assert "0" not in call(sim, "GET", api(sim, "/groups"))[1]
    assert call(sim, "GET", api(sim, "/groups/0"))[1]["lights"] == ["1", "2", "3"]


def test_group_action_skips_colour_on_off_members(sim: HueBridgeSim) -> None:
    call(sim, "PUT", api(sim, "/groups/1/action"), {"bri": 33})
    assert sim.light_state(3) == {**sim.light_state(3), "on": False, "bri": 120}
    assert sim.light_state(1)["bri"] == 33


# -- group attributes: which lights a group holds ----------------------------------------------------


def test_put_group_sets_its_lights_name_and_class(sim: HueBridgeSim) -> None:
    reply = call(sim, "PUT", api(sim, "/groups/1"), {"lights": ["1", "3"], "name": "Spa", "class": "Bedroom"})[1]
    assert reply == [
        {"success": {"/groups/1/lights": ["1", "3"]}},
        {"success": {"/groups/1/name": "Spa"}},
        {"success": {"/groups/1/class": "Bedroom"}},
    ]
    group = call(sim, "GET", api(sim, "/groups/1"))[1]
    assert (group["name"], group["lights"], group["class"]) == ("Spa", ["1", "3"], "Bedroom")
    assert group["state"] == {"any_on": True, "all_on": False}  # light 3 is off
    # Not a group command: neither rate-limited nor applied to the lights; logged as a request.
    assert call(sim, "PUT", api(sim, "/groups/1"), {"lights": ["1", "2", "3"]})[0] == 200
    assert sim.rate_limited_count == 0 and sim.group_lights("Spa") == ["1", "2", "3"]
    assert [(e.method, e.path) for e in sim.request_log()][-1] == ("PUT", api(sim, "/groups/1"))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"lights": ["1", "9"], "name": "Spa"}, err(7, "/groups/1/lights", "invalid value, 9, for parameter, lights")),
        ({"lights": ["1", "1"]}, err(7, "/groups/1/lights", "invalid value, 1, for parameter, lights")),
        ({"lights": [1, 2]}, err(7, "/groups/1/lights", "invalid value, 1, for parameter, lights")),
        ({"lights": "1"}, err(7, "/groups/1/lights", "invalid value, 1, for parameter, lights")),
        ({"name": "", "lights": ["1"]}, err(7, "/groups/1/name", "invalid value, , for parameter, name")),
        ({"sensors": []}, err(6, "/groups/1/sensors", "parameter, sensors, not available")),
        ({}, err(5, "/groups/1", "invalid/missing parameters in body")),
    ],
)
def test_an_invalid_group_attribute_is_an_error_and_changes_nothing(
    sim: HueBridgeSim, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert call(sim, "PUT", api(sim, "/groups/1"), body) == (200, [expected])
    assert sim.group_names() == ["Massage Room"] and sim.group_lights("Massage Room") == ["1", "2", "3"]


def test_group_attribute_rules_per_type(sim: HueBridgeSim) -> None:
    kitchen = sim.add_group("Kitchen", ["3"])
    lamps = sim.add_group("Lamps", ["1"], type="LightGroup")
    # A light is in one Room at most: put in the Massage Room, it leaves the Kitchen.
    assert "success" in call(sim, "PUT", api(sim, "/groups/1"), {"lights": ["2", "3"]})[1][0]
    assert (sim.group_lights("Massage Room"), sim.group_json(kitchen)["lights"]) == (["2", "3"], [])
    # A Room may be empty, a LightGroup may not, and has no class.
    assert "success" in call(sim, "PUT", api(sim, f"/groups/{kitchen}"), {"lights": []})[1][0]
    assert call(sim, "PUT", api(sim, f"/groups/{lamps}"), {"lights": []})[1] == [
        err(7, f"/groups/{lamps}/lights", "invalid value, [], for parameter, lights")
    ]
    assert call(sim, "PUT", api(sim, f"/groups/{lamps}"), {"class": "Office"})[1][0]["error"]["type"] == 6
    # Group 0 (every light) cannot be changed; an unknown group is not available.
    assert call(sim, "PUT", api(sim, "/groups/0"), {"lights": ["1"]})[1][0]["error"]["type"] == 4
    assert call(sim, "PUT", api(sim, "/groups/42"), {"lights": ["1"]})[1][0]["error"]["type"] == 3
    assert sim.group_lights("Lamps") == ["1"] and len(sim.group_json(0)["lights"]) == 3


def test_set_group_lights_is_the_hue_app_moving_lights(sim: HueBridgeSim) -> None:
    kitchen = sim.add_group("Kitchen", ["3"])
    corner = sim.add_group("Corner", ["3"], type="Zone")
    sim.set_group_lights("Massage Room", [1, "2"])  # by name; ids as numbers or strings
    assert sim.group_lights("Massage Room") == ["1", "2"]
    sim.set_group_lights(1, ["1", "2", "3"])  # by id: light 3 leaves the Kitchen, stays in the Zone
    assert (sim.group_lights("Kitchen"), sim.group_lights("Corner")) == ([], ["3"])
    sim.set_group_lights(corner, ["1", "3"])  # a Zone overlaps Rooms
    assert sim.group_lights("Massage Room") == ["1", "2", "3"] and sim.group_lights("Corner") == ["1", "3"]
    assert sim.request_log() == [] and sim.hand_log() == []
    with pytest.raises(KeyError):
        sim.set_group_lights("Attic", ["1"])
    with pytest.raises(ValueError, match="invalid value, 9, for parameter, lights"):
        sim.set_group_lights(kitchen, ["1", "9"])
    with pytest.raises(ValueError, match="group 0"):
        sim.set_group_lights(0, ["1"])
    assert sim.group_lights("Massage Room") == ["1", "2", "3"] and sim.group_lights("Kitchen") == []

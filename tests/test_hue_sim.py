"""The simulated Hue bridge honours the v1 facts relaxd relies on (shared/reference/hue-v1-facts.md)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import phue
import pytest

from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_http import SlidingWindow
from relaxd.sim.hue_model import COLOR_TEMPERATURE, DIMMABLE, EXTENDED_COLOR


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    bridge = HueBridgeSim(lights=0)
    bridge.add_light(EXTENDED_COLOR, "Colour", on=True, bri=200, ct=300, colormode="ct")
    bridge.add_light(COLOR_TEMPERATURE, "White", on=True, bri=150, ct=400)
    bridge.add_light(DIMMABLE, "Dim", on=False, bri=120)
    bridge.add_group("Massage Room", ["1", "2", "3"])
    bridge.start()
    yield bridge
    bridge.stop()


def call(sim: HueBridgeSim, method: str, path: str, body: Any = None, raw: str | None = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    connection.request(method, path, body=data)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload) if response.status == 200 else payload


def api(sim: HueBridgeSim, path: str = "") -> str:
    return f"/api/{sim.username}{path}"


def err(error_type: int, address: str, description: str) -> dict[str, Any]:
    return {"error": {"type": error_type, "address": address, "description": description}}


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


# -- rate limits, latency, faults, restart --------------------------------------------------------


def test_more_than_10_light_commands_a_second_get_429(sim: HueBridgeSim) -> None:
    started_s = time.monotonic()
    statuses = [call(sim, "PUT", api(sim, "/lights/1/state"), {"bri": 10 + n})[0] for n in range(11)]
    assert time.monotonic() - started_s < 1.0
    assert statuses == [200] * 10 + [429]
    assert sim.rate_limited_count == 1
    assert sim.light_state(1)["bri"] == 19  # the refused command changed nothing


def test_more_than_1_group_command_a_second_gets_429(sim: HueBridgeSim) -> None:
    assert call(sim, "PUT", api(sim, "/groups/1/action"), {"bri": 50})[0] == 200
    status, body = call(sim, "PUT", api(sim, "/groups/1/action"), {"bri": 60})
    assert status == 429 and body == b"Too Many Requests"
    assert sim.rate_limited_count == 1 and sim.light_state(1)["bri"] == 50


def test_sliding_window_counts_only_admitted_events() -> None:
    window = SlidingWindow(2, 1.0)
    assert [window.admit(t) for t in (0.0, 0.1, 0.5, 1.0, 1.05, 1.1)] == [
        True,
        True,
        False,
        True,
        False,
        True,
    ]


def test_hand_changes_are_not_rate_limited_and_logged_apart(sim: HueBridgeSim) -> None:
    for bri in range(20, 40):
        sim.set_light_by_hand(1, bri=bri)
    assert sim.rate_limited_count == 0 and sim.request_log() == []
    assert [c.fields for c in sim.hand_log()][-1] == {"bri": 39}
    with pytest.raises(ValueError, match="not modifiable"):
        sim.set_light_by_hand(3, bri=10)


def test_request_log_keeps_method_path_body_and_clears(sim: HueBridgeSim) -> None:
    call(sim, "PUT", api(sim, "/lights/1/state"), {"on": False, "transitiontime": 7})
    call(sim, "GET", api(sim, "/lights"))
    log = sim.request_log()
    assert [(e.method, e.path, e.body) for e in log] == [
        ("PUT", api(sim, "/lights/1/state"), {"on": False, "transitiontime": 7}),
        ("GET", api(sim, "/lights"), None),
    ]
    assert log[0].at_s <= log[1].at_s
    sim.clear_request_log()
    assert sim.request_log() == []


def test_latency_delays_every_answer(sim: HueBridgeSim) -> None:
    sim.latency_ms = 150
    started_s = time.monotonic()
    assert call(sim, "GET", api(sim, "/config"))[0] == 200
    assert time.monotonic() - started_s >= 0.15


def test_injected_faults_answer_the_next_requests_only(sim: HueBridgeSim) -> None:
    sim.fail_next(2, error_type=901)
    assert call(sim, "GET", api(sim, "/lights/1"))[1] == [err(901, "/lights/1", "Internal error, 404")]
    assert call(sim, "GET", api(sim, "/config"))[1][0]["error"]["type"] == 901
    sim.fail_next(http_status=503)
    assert call(sim, "GET", api(sim, "/config"))[0] == 503
    assert call(sim, "GET", api(sim, "/config"))[0] == 200
    sim.fail_next(error_type=3, path_contains="/lights/2")
    assert call(sim, "GET", api(sim, "/lights/1"))[0] == 200
    assert call(sim, "GET", api(sim, "/lights/2"))[1] == [err(3, "/lights/2", "resource, /lights/2, not available")]
    assert call(sim, "GET", api(sim, "/lights/2"))[1]["name"] == "White"


def test_restart_on_the_same_port_keeps_state(sim: HueBridgeSim) -> None:
    port = sim.port
    call(sim, "PUT", api(sim, "/lights/1/state"), {"bri": 42})
    sim.stop()
    with pytest.raises(ConnectionRefusedError):
        call(sim, "GET", api(sim, "/lights"))
    sim.start()
    assert sim.port == port and sim.address == f"127.0.0.1:{port}"
    assert call(sim, "GET", api(sim, "/lights/1"))[1]["state"]["bri"] == 42


def test_unreachable_flag_shows_in_state(sim: HueBridgeSim) -> None:
    sim.set_reachable(2, False)
    assert call(sim, "GET", api(sim, "/lights/2"))[1]["state"]["reachable"] is False


# -- phue, unchanged, against the simulator ------------------------------------------------------


def test_phue_talks_to_the_sim(sim: HueBridgeSim, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    bridge = phue.Bridge(sim.address, sim.username)
    assert bridge.get_light(1, "name") == "Colour"
    assert bridge.set_light(2, {"bri": 77}) == [[{"success": {"/lights/2/state/bri": 77}}]]
    assert bridge.get_group(1, "name") == "Massage Room"
    api_state = bridge.get_api()
    assert set(api_state) >= {"lights", "groups", "config", "sensors", "scenes", "schedules"}
    assert bridge.get_sensor(1)["type"] == "Daylight"
    assert sim.light_state(2)["bri"] == 77


def test_demo_room_and_default_mix() -> None:
    demo = HueBridgeSim.demo_room()
    assert demo.group_names() == ["Massage Room"] and demo.group_lights("Massage Room") == ["1", "2", "3"]
    states = [demo.light_state(i) for i in (1, 2, 3)]
    assert (states[0]["on"], states[0]["colormode"], states[0]["bri"]) == (True, "ct", 254)
    assert states[0]["ct"] < 200  # bright and cool
    assert (states[1]["on"], states[1]["colormode"]) == (True, "xy")
    assert states[2]["on"] is False
    mixed = HueBridgeSim(lights=6)
    kinds = {mixed.light(i)["type"] for i in mixed.light_ids()}
    assert kinds == {"Extended color light", "Color temperature light", "Dimmable light"}
    assert mixed.group_names() == ["Massage Room"] and len(mixed.group_lights("Massage Room")) == 6
    assert mixed.address.endswith(":0")  # nothing bound before start()

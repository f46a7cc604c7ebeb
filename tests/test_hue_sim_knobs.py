"""The simulated Hue bridge's knobs: rate limits, requests in flight, hand changes, the request log,
latency, faults, restart; and phue against it."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from typing import Any

import phue
import pytest

from relaxd.sim.hue_bridge import GROUP_COMMANDS_PER_S, LIGHT_COMMANDS_PER_S, HueBridgeSim, RateLimits
from relaxd.sim.hue_http import SlidingWindow
from tests.hue_rig import api, call, err, three_lights
from tests.mosquitto import wait_until


@pytest.fixture
def sim() -> Iterator[HueBridgeSim]:
    with three_lights() as bridge:
        yield bridge


# -- rate limits ------------------------------------------------------------------------------------


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


def test_rate_limits_are_the_real_bridge_s_unless_given() -> None:
    assert HueBridgeSim().rate_limits == RateLimits(LIGHT_COMMANDS_PER_S, GROUP_COMMANDS_PER_S, 1.0) == (10, 1, 1.0)
    for bad, field in ((RateLimits(light_commands=0), "light_commands"), (RateLimits(window_s=0), "window_s")):
        with pytest.raises(ValueError, match=field):
            HueBridgeSim(rate_limits=bad)
    sim = HueBridgeSim(rate_limits=RateLimits(group_commands=2))
    with pytest.raises(ValueError, match="group_commands"):
        sim.rate_limits = RateLimits(group_commands=True)
    assert sim.rate_limits == RateLimits(10, 2, 1.0)  # a refused setting changes nothing


def test_shorter_rate_limit_windows_and_a_change_taking_effect_at_once() -> None:
    with HueBridgeSim(lights=1, rate_limits=RateLimits(light_commands=2, group_commands=1, window_s=0.5)) as sim:

        def put_light() -> int:
            return call(sim, "PUT", api(sim, "/lights/1/state"), {"bri": 50})[0]

        assert [put_light() for _ in range(3)] == [200, 200, 429]
        assert [call(sim, "PUT", api(sim, "/groups/1/action"), {"bri": 60})[0] for _ in range(2)] == [200, 429]
        # Three in any 5 s: the two admitted still count, one more goes through.
        sim.rate_limits = RateLimits(light_commands=3, window_s=5.0)
        assert [put_light(), put_light()] == [200, 429]
        sim.rate_limits = RateLimits(light_commands=2, window_s=0.5)
        time.sleep(0.55)  # the short window has passed
        assert put_light() == 200 and sim.rate_limited_count == 3


# -- requests in flight -------------------------------------------------------------------------------


def test_in_flight_counts_requests_being_answered_and_keeps_the_most(sim: HueBridgeSim) -> None:
    assert (sim.in_flight, sim.max_in_flight) == (0, 0)
    sim.latency_ms = 300
    callers = [threading.Thread(target=call, args=(sim, "GET", api(sim, f"/lights/{i % 3 + 1}"))) for i in range(4)]
    for caller in callers:
        caller.start()
    assert wait_until(lambda: sim.in_flight == 4, 2.0)
    for caller in callers:
        caller.join(5)
    # Out of flight before the client has the answer: at once, no wait.
    assert (sim.in_flight, sim.max_in_flight) == (0, 4)
    sim.latency_ms = 0
    sim.reset_max_in_flight()
    assert sim.max_in_flight == 0
    call(sim, "GET", api(sim, "/config"))
    assert sim.max_in_flight == 1


def test_a_slow_or_trickled_answer_is_in_flight_until_it_is_sent(sim: HueBridgeSim) -> None:
    sim.slow_next(delay_s=0.5, path_contains="/lights/2/state")
    caller = threading.Thread(target=call, args=(sim, "PUT", api(sim, "/lights/2/state"), {"bri": 99}))
    caller.start()
    assert wait_until(lambda: sim.light_state(2)["bri"] == 99, 0.4)  # carried out on arrival
    assert sim.in_flight == 1
    caller.join(5)
    assert sim.in_flight == 0
    sim.trickle_next(interval_s=0.01, chunk_bytes=200, path_contains="/config")
    assert call(sim, "GET", api(sim, "/config"))[1]["name"] == "Philips hue"
    assert sim.in_flight == 0 and sim.max_in_flight == 1
    # A client that gives up on a slow answer: the bridge notices and stops counting it.
    sim.slow_next(delay_s=10, path_contains="/lights/1")
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=0.2)
    connection.request("GET", api(sim, "/lights/1"))
    with pytest.raises(TimeoutError):
        connection.getresponse()
    connection.close()
    assert wait_until(lambda: sim.in_flight == 0, 2.0)


# -- hand changes, the request log, latency, faults, restart ---------------------------------------


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
    assert bridge.set_group(1, "lights", [1, 2]) == [[{"success": {"/groups/1/lights": ["1", "2"]}}]]
    assert sim.group_lights("Massage Room") == ["1", "2"]
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

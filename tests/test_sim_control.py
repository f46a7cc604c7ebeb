"""The simulators' control API: every knob changes what a real client sees."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import phue
import pytest
import requests
import soco
from soco.exceptions import SoCoUPnPException

from relaxd.sim.control import ControlServer
from relaxd.sim.faults import SENT, PacedAnswer
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import wait_until
from tests.sim_control_rig import ask
from tests.sonos_rig import SPA_RADIO

QUICK_S = 0.5


@pytest.fixture
def hue() -> Iterator[HueBridgeSim]:
    with HueBridgeSim(lights=3) as bridge:
        yield bridge


@pytest.fixture
def speaker() -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim.demo() as sim:
        yield sim


@pytest.fixture
def control(hue: HueBridgeSim, speaker: SonosSpeakerSim) -> Iterator[ControlServer]:
    with ControlServer(hue, {"massage_room": speaker}) as server:
        yield server


@pytest.fixture
def bridge(hue: HueBridgeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HOME", str(tmp_path))  # phue's config file stays out of the real home
    return phue.Bridge(hue.address, hue.username)


def post(control: ControlServer, path: str, body: Any = None) -> Any:
    status, answer, _ = ask(control.port, "POST", path, body)
    assert status == 200 and answer["ok"] is True, answer
    return answer


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    began_s = time.monotonic()
    result = call()
    return result, time.monotonic() - began_s


def device(speaker: SonosSpeakerSim) -> Any:
    return soco.SoCo("127.0.0.1", speaker.port)


def sent_answer(sim: HueBridgeSim | SonosSpeakerSim) -> PacedAnswer:
    """The one paced answer, once sent (logged just after the client may have read it all)."""
    assert wait_until(lambda: [a.outcome for a in sim.paced_answers()] == [SENT], 2.0), sim.paced_answers()
    return sim.paced_answers()[0]


def chunks(total_bytes: int, chunk_bytes: int) -> int:
    return -(-total_bytes // chunk_bytes)


# -- the Hue knobs -----------------------------------------------------------------------------------


def test_hue_stop_refuses_connections_and_start_brings_it_back(
    control: ControlServer, hue: HueBridgeSim, bridge: Any
) -> None:
    port = hue.port
    assert post(control, "/hue/stop")["running"] is False
    with pytest.raises(ConnectionRefusedError):
        bridge.get_light(1)
    assert ask(control.port, "GET", "/hue")[1]["running"] is False
    assert post(control, "/hue/start", {})["running"] is True
    assert hue.port == port and bridge.get_light(1, "name") == "Light 1"


def test_hue_fail_reaches_phue(control: ControlServer, bridge: Any) -> None:
    answer = post(control, "/hue/fail", {"count": 2, "error_type": 901, "path_contains": "/lights"})
    assert answer["pending_faults"] == [
        {"kind": "fail", "error_type": 901, "http_status": 200, "path_contains": "/lights", "count": 2}
    ]
    assert bridge.get_api()["config"]["name"] == "Philips hue"  # not a light request
    for _ in range(2):
        assert bridge.get_light(1)[0]["error"]["type"] == 901
    assert bridge.get_light(1, "name") == "Light 1"


def test_hue_slow_makes_phue_wait_while_the_light_already_changed(
    control: ControlServer, hue: HueBridgeSim, bridge: Any
) -> None:
    post(control, "/hue/slow", {"delay_s": 1.0, "path_contains": "/lights/2/state"})
    results: list[Any] = []
    caller = threading.Thread(target=lambda: results.append(timed(lambda: bridge.set_light(2, "bri", 99))))
    caller.start()
    assert wait_until(lambda: hue.light_state(2)["bri"] == 99, 0.8) and caller.is_alive()
    caller.join(10)
    ((reply, took_s),) = results
    assert reply == [[{"success": {"/lights/2/state/bri": 99}}]] and 0.95 <= took_s < 1.0 + 3


def test_hue_trickle_stretches_an_answer(control: ControlServer, hue: HueBridgeSim, bridge: Any) -> None:
    answer = post(control, "/hue/trickle", {"interval_s": 0.05, "chunk_bytes": 40, "path_contains": "/config"})
    assert answer["pending_faults"][0] == {
        "kind": "trickle",
        "interval_s": 0.05,
        "chunk_bytes": 40,
        "path_contains": "/config",
        "count": 1,
    }
    config, took_s = timed(lambda: bridge.request("GET", f"/api/{hue.username}/config"))
    assert config["name"] == "Philips hue"
    paced = sent_answer(hue)
    assert paced.total_bytes > 40 * 10 and took_s >= (chunks(paced.total_bytes, 40) - 1) * 0.05


def test_hue_latency_delays_every_request(control: ControlServer, bridge: Any) -> None:
    assert post(control, "/hue/latency", {"ms": 300})["latency_ms"] == 300
    assert timed(lambda: bridge.get_light(1))[1] >= 0.3
    post(control, "/hue/latency", {"ms": 0})
    assert timed(lambda: bridge.get_light(1))[1] < QUICK_S


def test_hue_link_button_opens_pairing(control: ControlServer, hue: HueBridgeSim) -> None:
    def pair() -> Any:
        connection = http.client.HTTPConnection(hue.host, hue.port, timeout=5)
        connection.request("POST", "/api", json.dumps({"devicetype": "relaxd#test"}))
        return json.loads(connection.getresponse().read())[0]

    assert pair()["error"]["type"] == 101
    assert post(control, "/hue/link-button")["link_button_pressed"] is True
    assert len(pair()["success"]["username"]) == 40


def test_hue_clear_forgets_every_pending_fault(control: ControlServer, hue: HueBridgeSim, bridge: Any) -> None:
    post(control, "/hue/fail", {"count": 3})
    post(control, "/hue/slow", {"delay_s": 30})
    post(control, "/hue/trickle", {"interval_s": 1})
    assert len(ask(control.port, "GET", "/hue")[1]["pending_faults"]) == 3
    assert post(control, "/hue/clear")["forgotten"] == 5
    assert timed(lambda: bridge.get_light(1, "name"))[0] == "Light 1" and hue.pending_faults() == 0


def test_hue_hand_change_is_what_phue_then_reads(control: ControlServer, hue: HueBridgeSim, bridge: Any) -> None:
    answer = post(control, "/hue/lights/1/hand", {"bri": 100, "xy": [0.3, 0.3]})
    assert answer["state"]["bri"] == 100 and answer["state"]["colormode"] == "xy"
    assert bridge.get_light(1)["state"]["bri"] == 100
    assert hue.hand_log()[-1].fields == {"bri": 100, "xy": [0.3, 0.3]} and hue.request_log()[-1].method == "GET"
    # Light 3 is off: the bridge refuses bri.
    status, refused, _ = ask(control.port, "POST", "/hue/lights/3/hand", {"bri": 10})
    assert status == 400 and refused["error"].startswith("bri: ") and "not modifiable" in refused["error"]
    # Light 2 has no colour: xy is refused, and a refused hand change changes nothing at all.
    status, refused, _ = ask(control.port, "POST", "/hue/lights/2/hand", {"bri": 10, "xy": [0.3, 0.3]})
    assert (status, refused["error"]) == (400, "xy: parameter, xy, not available")
    assert hue.light_state(2)["bri"] == 150 and hue.light_state(3)["bri"] == 254


def test_hue_reachable_flag(control: ControlServer, bridge: Any) -> None:
    assert post(control, "/hue/lights/2/reachable", {"reachable": False})["state"]["reachable"] is False
    assert bridge.get_light(2)["state"]["reachable"] is False


# -- the Sonos knobs ---------------------------------------------------------------------------------


def test_sonos_stop_and_start(control: ControlServer, speaker: SonosSpeakerSim) -> None:
    assert post(control, "/sonos/massage_room/stop")["running"] is False
    with pytest.raises(requests.ConnectionError):
        device(speaker).volume  # noqa: B018 - the property read is the request
    post(control, "/sonos/massage_room/start")
    assert device(speaker).volume == 25


def test_sonos_fail_reaches_soco(control: ControlServer, speaker: SonosSpeakerSim) -> None:
    answer = post(control, "/sonos/massage_room/fail", {"action": "Play", "code": 701})
    assert answer["pending_faults"] == [{"kind": "fail", "action": "Play", "code": 701, "times": 1}]
    with pytest.raises(SoCoUPnPException) as error:
        device(speaker).play()
    assert error.value.error_code == "701"
    device(speaker).play()


def test_sonos_slow_makes_soco_wait(control: ControlServer, speaker: SonosSpeakerSim) -> None:
    post(control, "/sonos/massage_room/slow", {"action": "SetVolume", "delay_s": 1.0})
    player = device(speaker)
    _, took_s = timed(lambda: setattr(player, "volume", 11))
    assert 0.95 <= took_s < 1.0 + 3 and speaker.state().volume == 11
    assert timed(lambda: player.volume)[1] < QUICK_S  # used up


def test_sonos_trickle_stretches_soco_s_call(control: ControlServer, speaker: SonosSpeakerSim) -> None:
    post(control, "/sonos/massage_room/trickle", {"action": "*", "interval_s": 0.05, "chunk_bytes": 50})
    mute, took_s = timed(lambda: device(speaker).mute)
    paced = sent_answer(speaker)
    assert mute is False and took_s >= (chunks(paced.total_bytes, 50) - 1) * 0.05 >= 0.3


def test_sonos_latency_and_clear(control: ControlServer, speaker: SonosSpeakerSim) -> None:
    post(control, "/sonos/massage_room/latency", {"ms": 300})
    assert timed(lambda: device(speaker).volume)[1] >= 0.3
    post(control, "/sonos/massage_room/latency", {"ms": 0})
    post(control, "/sonos/massage_room/slow", {"delay_s": 30, "times": 4})
    assert post(control, "/sonos/massage_room/clear")["forgotten"] == 4
    assert timed(lambda: device(speaker).volume)[1] < QUICK_S


def test_sonos_hand_acts_as_the_sonos_app(control: ControlServer, speaker: SonosSpeakerSim) -> None:
    assert post(control, "/sonos/massage_room/hand", {"volume": 40})["volume"] == 40
    assert device(speaker).volume == 40
    answer = post(control, "/sonos/massage_room/hand", {"play_uri": SPA_RADIO, "title": "Spa Radio", "mute": True})
    assert (answer["uri"], answer["transport_state"], answer["mute"]) == (SPA_RADIO, "PLAYING", True)
    assert device(speaker).get_current_media_info()["uri"] == SPA_RADIO
    assert post(control, "/sonos/massage_room/hand", {"pause": True})["transport_state"] == "PAUSED_PLAYBACK"
    assert device(speaker).get_current_transport_info()["current_transport_state"] == "PAUSED_PLAYBACK"

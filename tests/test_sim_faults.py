"""Slow and trickled answers of the simulators: carried out on arrival, answered late, stoppable."""

from __future__ import annotations

import functools
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import phue
import pytest
import soco
from soco.exceptions import SoCoUPnPException

from relaxd.sim.faults import CLIENT_GONE, SENT, STOPPED, PacedAnswer
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import wait_until

# Generous upper bounds (a loaded 2-core machine); the lower bounds are what the faults promise.
QUICK_S = 0.5
PROMPT_STOP_S = 0.5
SOAP_GET_VOLUME = (
    b"POST /MediaRenderer/RenderingControl/Control HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b'SOAPACTION: "urn:schemas-upnp-org:service:RenderingControl:1#GetVolume"\r\nContent-Length: %d\r\n\r\n%s'
)
GET_VOLUME_BODY = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    b'<u:GetVolume xmlns:u="urn:schemas-upnp-org:service:RenderingControl:1">'
    b"<InstanceID>0</InstanceID><Channel>Master</Channel></u:GetVolume></s:Body></s:Envelope>"
)


@pytest.fixture
def hue() -> Iterator[HueBridgeSim]:
    with HueBridgeSim(lights=3) as bridge:
        yield bridge


@pytest.fixture
def speaker() -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim.demo() as sim:
        yield sim


@pytest.fixture
def bridge(hue: HueBridgeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """phue, unchanged, on the simulator (its config file kept out of the real home)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return phue.Bridge(hue.address, hue.username)


class Timed(threading.Thread):
    """Runs call in the background; result, error and how long it took."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self.result: Any = None
        self.error: BaseException | None = None
        self.took_s = -1.0

    def run(self) -> None:
        started_s = time.monotonic()
        try:
            self.result = self._call()
        except BaseException as exc:
            self.error = exc
        self.took_s = time.monotonic() - started_s


def hue_get(hue: HueBridgeSim, path: str) -> tuple[int, Any, float]:
    started_s = time.monotonic()
    connection = http.client.HTTPConnection(hue.host, hue.port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data), time.monotonic() - started_s


def raw_request(port: int, request: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request)
    return sock


def last_answer(sim: HueBridgeSim | SonosSpeakerSim, outcome: str, timeout_s: float) -> PacedAnswer:
    assert wait_until(lambda: any(a.outcome == outcome for a in sim.paced_answers()), timeout_s), sim.paced_answers()
    return [a for a in sim.paced_answers() if a.outcome == outcome][-1]


# -- slow answers ---------------------------------------------------------------------------------


def test_hue_slow_answer_is_carried_out_on_arrival_and_answered_late(hue: HueBridgeSim, bridge: Any) -> None:
    hue.slow_next(delay_s=1.5, path_contains="/lights/1/state")
    call = Timed(lambda: bridge.set_light(1, "bri", 77))
    call.start()
    # The light changed and the request is logged while phue still waits for the answer.
    assert wait_until(lambda: hue.light_state(1)["bri"] == 77, 1.0)
    assert call.is_alive() and [e.path for e in hue.request_log()][-1].endswith("/lights/1/state")
    # Meanwhile other connections are answered at once, other lights included.
    status, light, took_s = hue_get(hue, f"/api/{hue.username}/lights/2")
    assert status == 200 and light["name"] == "Light 2" and took_s < QUICK_S
    call.join(10)
    assert call.error is None and call.result == [[{"success": {"/lights/1/state/bri": 77}}]]
    assert 1.45 <= call.took_s < 1.5 + 3
    # Logged once sent, which may be just after phue has read it all.
    answer = last_answer(hue, SENT, 2.0)
    assert answer.sent_bytes == answer.total_bytes > 0 and len(hue.paced_answers()) == 1
    assert hue.pending_faults() == 0


def test_hue_slow_answer_counts_for_the_rate_limit_on_arrival(hue: HueBridgeSim) -> None:
    hue.slow_next(10, delay_s=2.0, path_contains="/state")
    calls = [Timed(functools.partial(hue_put, hue, "/lights/1/state", {"bri": 10 + n})) for n in range(11)]
    for call in calls:
        call.start()
    # The 11th command in the second is refused at arrival although ten answers are still due.
    assert wait_until(lambda: hue.rate_limited_count == 1, 1.5)
    assert sum(c.is_alive() for c in calls) >= 9
    for call in calls:
        call.join(10)
    assert sorted(c.result for c in calls) == [200] * 10 + [429]


def hue_put(hue: HueBridgeSim, path: str, body: Any) -> int:
    connection = http.client.HTTPConnection(hue.host, hue.port, timeout=10)
    connection.request("PUT", f"/api/{hue.username}{path}", json.dumps(body))
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status


def test_hue_slow_combines_with_an_injected_error(hue: HueBridgeSim) -> None:
    hue.fail_next(error_type=901, path_contains="/config")
    hue.slow_next(delay_s=0.6, path_contains="/config")
    hue.slow_next(delay_s=0.6, path_contains="/groups")
    assert [f["kind"] for f in hue.fault_summary()] == ["fail", "slow", "slow"]
    status, body, took_s = hue_get(hue, f"/api/{hue.username}/config")
    assert status == 200 and body[0]["error"]["type"] == 901 and took_s >= 0.55
    # The one for /groups is still waiting; a light request is not delayed.
    assert hue_get(hue, f"/api/{hue.username}/lights")[2] < QUICK_S
    assert hue.fault_summary() == [{"kind": "slow", "delay_s": 0.6, "path_contains": "/groups", "count": 1}]
    hue.clear_faults()
    assert hue.pending_faults() == 0 and hue_get(hue, f"/api/{hue.username}/groups")[2] < QUICK_S


def test_sonos_slow_set_volume_with_soco(speaker: SonosSpeakerSim) -> None:
    speaker.slow_next("SetVolume", 1.5)
    device = soco.SoCo("127.0.0.1", speaker.port)
    call = Timed(lambda: setattr(device, "volume", 20))
    call.start()
    assert wait_until(lambda: speaker.state().volume == 20, 1.0)
    assert call.is_alive() and speaker.requests("SetVolume")[-1].args["DesiredVolume"] == "20"
    # Another call on another connection is not held up by the slow one.
    began_s = time.monotonic()
    assert device.mute is False and time.monotonic() - began_s < QUICK_S
    call.join(10)
    assert call.error is None and 1.45 <= call.took_s < 1.5 + 3
    assert last_answer(speaker, SENT, 2.0) and len(speaker.paced_answers()) == 1


def test_sonos_faults_match_their_action_and_combine(speaker: SonosSpeakerSim) -> None:
    speaker.fail_next("Play", 701)
    speaker.slow_next("Play", 0.6)
    speaker.slow_next("GetMute", 0.6, times=2)
    assert speaker.pending_faults() == 4
    device = soco.SoCo("127.0.0.1", speaker.port)
    began_s = time.monotonic()
    with pytest.raises(SoCoUPnPException) as error:
        device.play()  # after the zone group calls, which are not delayed
    assert error.value.error_code == "701" and 0.55 <= time.monotonic() - began_s < 0.6 + 3
    # The description documents are not actions: never delayed, nothing used up.
    began_s = time.monotonic()
    assert device.get_speaker_info(refresh=True)["zone_name"] == "Massage Room"
    assert time.monotonic() - began_s < QUICK_S
    assert speaker.fault_summary() == [{"kind": "slow", "delay_s": 0.6, "action": "GetMute", "times": 2}]
    speaker.clear_faults()
    assert speaker.pending_faults() == 0 and speaker.fault_summary() == []


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        (lambda h, s: h.slow_next(delay_s=-1), "delay_s"),
        (lambda h, s: h.slow_next(-1, delay_s=1), "count"),
        (lambda h, s: h.trickle_next(interval_s=0), "interval_s"),
        (lambda h, s: h.trickle_next(interval_s=float("nan")), "interval_s"),
        (lambda h, s: h.trickle_next(interval_s=1, chunk_bytes=0), "chunk_bytes"),
        (lambda h, s: s.slow_next("Play", float("inf")), "delay_s"),
        (lambda h, s: s.trickle_next("Play", 1, times=-2), "times"),
    ],
)
def test_nonsense_paces_are_refused(arm: Callable[[HueBridgeSim, SonosSpeakerSim], None], message: str) -> None:
    hue, speaker = HueBridgeSim(lights=1), SonosSpeakerSim()
    with pytest.raises(ValueError, match=message):
        arm(hue, speaker)
    assert hue.pending_faults() == speaker.pending_faults() == 0


# -- trickled answers ------------------------------------------------------------------------------


def test_hue_trickle_sends_a_chunk_per_interval_headers_included(hue: HueBridgeSim) -> None:
    interval_s, chunk = 0.2, 8
    hue.trickle_next(interval_s=interval_s, chunk_bytes=chunk)
    sent_s = time.monotonic()
    sock = raw_request(hue.port, f"GET /api/{hue.username}/config HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = b""
    with sock:
        while len(received) < 6 * chunk:
            data = sock.recv(4096)
            assert data
            received += data
            elapsed_s = time.monotonic() - sent_s
            # Never ahead of the pace: chunk n (from 0) leaves the bridge n intervals after the first.
            assert len(received) <= chunk * (int(elapsed_s / interval_s) + 1)
    assert received.startswith(b"HTTP/1.0 200 ")  # the status line trickles too
    assert 5 * interval_s <= elapsed_s < 5 * interval_s + 3
    answer = last_answer(hue, CLIENT_GONE, 2.0)
    assert 6 * chunk <= answer.sent_bytes < answer.total_bytes


def test_sonos_trickle_reaches_soco_whole_but_late(speaker: SonosSpeakerSim) -> None:
    speaker.trickle_next("GetVolume", 0.05, chunk_bytes=64)
    device = soco.SoCo("127.0.0.1", speaker.port)
    began_s = time.monotonic()
    assert device.volume == 25
    took_s = time.monotonic() - began_s
    answer = last_answer(speaker, SENT, 2.0)
    chunks = -(-answer.total_bytes // 64)
    assert chunks >= 5 and took_s >= (chunks - 1) * 0.05


def test_a_client_closing_early_ends_the_trickle(hue: HueBridgeSim) -> None:
    hue.trickle_next(interval_s=0.1)  # one byte at a time: a whole answer would take ~40 s
    sock = raw_request(hue.port, b"GET /api/nobody/config HTTP/1.0\r\n\r\n")
    assert sock.recv(1) == b"H"
    sock.close()
    answer = last_answer(hue, CLIENT_GONE, 3.0)
    assert answer.sent_bytes < 40 < answer.total_bytes and answer.ended_s - answer.started_s < 3.0


def test_a_client_closing_during_a_delay_ends_the_wait(speaker: SonosSpeakerSim) -> None:
    speaker.slow_next("GetVolume", 60)
    sock = raw_request(speaker.port, SOAP_GET_VOLUME % (len(GET_VOLUME_BODY), GET_VOLUME_BODY))
    assert wait_until(lambda: len(speaker.requests("GetVolume")) == 1, 2.0)
    sock.close()
    answer = last_answer(speaker, CLIENT_GONE, 3.0)
    assert answer.sent_bytes == 0 and answer.ended_s - answer.started_s < 3.0


@pytest.mark.parametrize("kind", ["slow", "trickle"])
def test_hue_stop_is_prompt_during_a_paced_answer_and_the_port_comes_back(hue: HueBridgeSim, kind: str) -> None:
    if kind == "slow":
        hue.slow_next(delay_s=60)
    else:
        hue.trickle_next(interval_s=1.0)
    port = hue.port
    sock = raw_request(port, b"GET /api/nobody/config HTTP/1.0\r\n\r\n")
    assert wait_until(lambda: len(hue.request_log()) == 1, 2.0)
    began_s = time.monotonic()
    hue.stop()
    assert time.monotonic() - began_s < PROMPT_STOP_S
    assert last_answer(hue, STOPPED, 2.0).sent_bytes < 5
    with sock:
        sock.settimeout(3)
        rest = b"".join(iter(lambda: sock.recv(4096), b""))  # the bridge closed the connection
    assert len(rest) < 5
    hue.start()
    assert hue.port == port and hue_get(hue, "/api/nobody/config")[0] == 200


@pytest.mark.parametrize("kind", ["slow", "trickle"])
def test_sonos_stop_is_prompt_during_a_paced_answer_and_the_port_comes_back(
    speaker: SonosSpeakerSim, kind: str
) -> None:
    if kind == "slow":
        speaker.slow_next("*", 60)
    else:
        speaker.trickle_next("*", 1.0)
    port = speaker.port
    sock = raw_request(port, SOAP_GET_VOLUME % (len(GET_VOLUME_BODY), GET_VOLUME_BODY))
    assert wait_until(lambda: len(speaker.requests()) == 1, 2.0)
    began_s = time.monotonic()
    speaker.stop()
    assert time.monotonic() - began_s < PROMPT_STOP_S
    assert last_answer(speaker, STOPPED, 2.0).outcome == STOPPED
    sock.close()
    speaker.start()
    assert speaker.port == port and soco.SoCo("127.0.0.1", port).volume == 25

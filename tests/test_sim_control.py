"""The simulators' control API: every knob changes what a real client sees; strict JSON in and out."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phue
import pytest
import requests
import soco
import yaml
from soco.exceptions import SoCoUPnPException

from relaxd.sim.control import MAX_BODY_BYTES, ControlServer
from relaxd.sim.faults import SENT, PacedAnswer
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "sim.md"
CURL = Path("/usr/bin/curl")
QUICK_S = 0.5
SPA_RADIO = "x-sonosapi-stream:s24146?sid=254&flags=8224&sn=0"


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


def ask(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, http.client.HTTPResponse]:
    """One request to a control API; (status, parsed JSON answer, response)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    connection.request(method, path, body=data, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload) if payload else None, response


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


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset after the answer counts as closing)."""
    data = b""
    while True:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not piece:
            return data
        data += piece


# -- status ----------------------------------------------------------------------------------------


def test_status_shows_both_devices_and_never_the_username(
    control: ControlServer, hue: HueBridgeSim, speaker: SonosSpeakerSim
) -> None:
    status, answer, response = ask(control.port, "GET", "/")
    assert status == 200 and response.getheader("Content-Type") == "application/json"
    assert answer["hue"]["address"] == hue.address and answer["hue"]["running"] is True
    assert answer["hue"]["lights"]["1"]["state"] == hue.light_state(1) and answer["hue"]["pending_faults"] == []
    assert answer["speakers"]["massage_room"] == {
        "room_name": "Massage Room",
        "address": speaker.address,
        "running": True,
        "latency_ms": 0,
        "volume": 25,
        "mute": False,
        "transport_state": "PLAYING",
        "uri": speaker.state().uri,
        "pending_faults": [],
    }
    for path in ("/", "/hue", "/sonos", "/sonos/massage_room"):
        _, text, _ = ask(control.port, "GET", path)
        assert hue.username not in json.dumps(text)
    assert ask(control.port, "GET", "/sonos/massage_room")[1]["volume"] == 25


def test_a_control_server_binds_loopback_only_and_nothing_before_start(hue: HueBridgeSim) -> None:
    server = ControlServer(hue, {})
    assert server.port == 0  # nothing bound yet
    with server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
        assert server.url == f"http://127.0.0.1:{server.port}/"
        other = [a for a in _local_addresses() if a != "127.0.0.1"]
        for address in other[:1]:
            with pytest.raises(OSError):
                socket.create_connection((address, server.port), timeout=2).close()
    with pytest.raises(ValueError, match="speaker name"):
        ControlServer(None, {"a/b": SonosSpeakerSim()})


def _local_addresses() -> list[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: it only picks the interface
            return [probe.getsockname()[0]]
        except OSError:
            return []


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


# -- strict input, one JSON answer per request ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/hue/slow", {}, "delay_s: required"),
        ("/hue/slow", {"delay_s": 1, "dely": 2}, "dely: unknown field"),
        ("/hue/slow", {"delay_s": "12"}, "delay_s: must be a number"),
        ("/hue/slow", {"delay_s": -1}, "delay_s: must be above 0"),
        ("/hue/slow", {"delay_s": 0}, "delay_s: must be above 0"),
        ("/hue/slow", {"delay_s": 3601}, "delay_s: must be above 0 and at most 3600"),
        ("/hue/fail", {"count": 10_001}, "count: must be between 1 and 10000"),
        ("/hue/fail", {"count": True}, "count: must be an integer"),
        ("/hue/fail", {"count": 1.5}, "count: must be an integer"),
        ("/hue/fail", {"http_status": 99}, "http_status: must be between 200 and 599"),
        ("/hue/trickle", {"interval_s": 1, "chunk_bytes": 0}, "chunk_bytes: must be between 1 and 65536"),
        ("/hue/trickle", {"interval_s": None}, "interval_s: must be a number, not null"),
        ("/hue/latency", {"ms": 1e9}, "ms: must be at least 0 and at most 60000"),
        ("/hue/stop", {"now": True}, "now: unknown field (known: none"),
        ("/hue/stop", [], "body: must be a JSON object"),
        ("/hue/lights/1/hand", {}, "body: give at least one of"),
        ("/hue/lights/1/hand", {"bri": 300}, "bri: must be between 1 and 254"),
        ("/hue/lights/1/hand", {"xy": [0.1]}, "xy: must be a list of two numbers"),
        ("/hue/lights/1/reachable", {"reachable": "no"}, "reachable: must be true or false"),
        ("/sonos/massage_room/fail", {"action": "Plya"}, "action: unknown value 'Plya' (did you mean Play"),
        ("/sonos/massage_room/slow", {"action": "Play"}, "delay_s: required"),
        ("/sonos/massage_room/hand", {"volume": 101}, "volume: must be between 0 and 100"),
        ("/sonos/massage_room/hand", {"pause": False}, "pause: must be true"),
        ("/sonos/massage_room/hand", {"title": "x"}, "title: goes with play_uri"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(
    control: ControlServer, hue: HueBridgeSim, speaker: SonosSpeakerSim, path: str, body: Any, error: str
) -> None:
    status, answer, _ = ask(control.port, "POST", path, body)
    assert status == 400 and answer["error"].startswith(error), answer
    assert hue.pending_faults() == speaker.pending_faults() == 0 and hue.running and speaker.running
    assert speaker.state().volume == 25 and hue.light_state(1)["bri"] == 200 and hue.latency_ms == 0


@pytest.mark.parametrize(
    ("raw", "error"),
    [(b"{bad json", "body: not valid JSON"), (b"NaN", "body: must be a JSON object"), (b"[" * 5000, "body: not valid")],
)
def test_bodies_that_are_not_json_objects_are_400(control: ControlServer, raw: bytes, error: str) -> None:
    status, answer, _ = ask(control.port, "POST", "/hue/slow", raw=raw)
    assert status == 400 and answer["error"].startswith(error)


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/nothing", 404, "path: unknown"),
        ("POST", "/hue/explode", 404, "path: unknown Hue path"),
        ("POST", "/hue/lights/9/hand", 404, "light: no light '9'"),
        ("POST", "/sonos/kitchen/stop", 404, "speaker: no speaker 'kitchen' (speakers: massage_room)"),
        ("POST", "/sonos/massage_room/dance", 404, "path: unknown speaker path"),
        ("GET", "/hue/stop", 405, "method: GET not allowed here (allowed: POST)"),
        ("POST", "/", 405, "method: POST not allowed here (allowed: GET)"),
        ("DELETE", "/sonos/massage_room", 405, "method: DELETE not allowed"),
        ("BREW", "/", 501, "request: Unsupported method"),
    ],
)
def test_unknown_paths_and_wrong_methods(
    control: ControlServer, method: str, path: str, status: int, error: str
) -> None:
    got, answer, response = ask(control.port, method, path)
    assert got == status and answer["error"].startswith(error), answer
    if status == 405:
        assert response.getheader("Allow") in ("GET", "POST")


def test_oversized_chunked_and_garbage_requests_get_one_json_answer(control: ControlServer) -> None:
    status, answer, _ = ask(control.port, "POST", "/hue/clear", raw=b"x" * (MAX_BODY_BYTES + 1))
    assert status == 413 and answer["error"].startswith("body: 65537 bytes")
    status, answer, _ = ask(
        control.port, "POST", "/hue/clear", raw=b"2\r\n{}\r\n0\r\n\r\n", headers={"Transfer-Encoding": "chunked"}
    )
    assert status == 411
    for garbage in (
        b"\x00\xff garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", control.port), timeout=5) as sock:
            sock.sendall(garbage)
            reply = read_all(sock)
        # A request line that is not HTTP/1.x is answered as HTTP/0.9: the body alone.
        status_line, _, body = reply.partition(b"\r\n\r\n") if reply.startswith(b"HTTP/") else (b"", b"", reply)
        assert json.loads(body)["error"].startswith("request: "), reply
        assert not status_line or status_line.split()[1] == b"414"
    assert ask(control.port, "HEAD", "/")[0] == 405
    assert ask(control.port, "GET", "/")[0] == 200  # still serving


def test_without_a_hue_bridge_its_paths_are_404(speaker: SonosSpeakerSim) -> None:
    with ControlServer(None, {"spa": speaker}) as server:
        status, answer, _ = ask(server.port, "POST", "/hue/stop")
        assert status == 404 and answer["error"].startswith("hue: ")
        assert ask(server.port, "GET", "/")[1]["hue"] is None
        assert ask(server.port, "POST", "/sonos/spa/hand", {"volume": 5})[1]["volume"] == 5


# -- `relaxd sim` ------------------------------------------------------------------------------------


@dataclass
class SimProcess:
    """`relaxd sim` running as a subprocess; output: its header and config snippet."""

    process: subprocess.Popen[str]
    output: str
    config: dict[str, Any]
    control_url: str

    @property
    def hue_address(self) -> str:
        return str(self.config["hue"]["host"])

    @property
    def sonos_port(self) -> int:
        return int(self.config["rooms"]["massage_room"]["speaker"]["host"].rpartition(":")[2])

    @property
    def control_port(self) -> int:
        return int(self.control_url.rstrip("/").rpartition(":")[2])


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@contextlib.contextmanager
def run_sim(ports: list[int], stderr_path: Path) -> Iterator[SimProcess]:
    """Start `relaxd sim` on ports (Hue, Sonos, control), wait for its output (printed once
    everything listens), and SIGTERM it afterwards."""
    hue_port, sonos_port, control_port = ports
    command = [sys.executable, "-m", "relaxd", "sim", "--hue-port", str(hue_port), "--sonos-port", str(sonos_port)]
    command += ["--control-port", str(control_port)]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or ():
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    output = ""
    try:
        deadline_s = time.monotonic() + 20
        while "max_volume:" not in output:
            try:
                output += lines.get(timeout=max(0.01, deadline_s - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"relaxd sim printed {output!r}; stderr: {stderr_path.read_text()}")
        match = re.search(r"^# fault control: (http://127\.0\.0\.1:(\d+)/)  \(see docs/sim\.md\)$", output, re.M)
        assert match is not None, output
        yield SimProcess(process, output, yaml.safe_load(output), match.group(1))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(10) == 0, stderr_path.read_text()
        finally:
            process.kill()


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    with run_sim(distinct_free_ports(3), tmp_path_factory.mktemp("sim") / "stderr") as process:
        yield process


def test_relaxd_sim_prints_the_control_url_and_serves_it(sim_process: SimProcess) -> None:
    header = [line for line in sim_process.output.splitlines() if line.startswith("#")]
    assert len(header) == 3 and sim_process.output.startswith("#")
    control_port = sim_process.control_port
    status, answer, _ = ask(control_port, "GET", "/")
    assert status == 200 and answer["hue"]["address"] == sim_process.hue_address
    assert answer["speakers"]["massage_room"]["address"].endswith(f":{sim_process.sonos_port}")
    # The knobs act on the devices the snippet points at.
    assert ask(control_port, "POST", "/hue/stop")[0] == 200
    host, _, port = sim_process.hue_address.partition(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5).close()
    assert ask(control_port, "POST", "/hue/start")[0] == 200
    username = sim_process.config["hue"]["username"]
    assert ask(control_port, "POST", "/hue/lights/2/hand", {"bri": 42})[0] == 200
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", f"/api/{username}/lights/2")
    assert json.loads(connection.getresponse().read())["state"]["bri"] == 42


def test_relaxd_sim_control_port_0_picks_a_free_one(tmp_path: Path) -> None:
    with run_sim([*distinct_free_ports(2), 0], tmp_path / "stderr") as process:
        assert process.control_port > 0 and ask(process.control_port, "GET", "/")[0] == 200


# -- docs/sim.md: every shell block runs as written ----------------------------------------------------


def shell_blocks() -> list[str]:
    return re.findall(r"^```shell\n(.*?)^```$", DOC.read_text(), re.S | re.M)


def test_the_docs_rehearsals_run_and_do_what_they_say(sim_process: SimProcess) -> None:
    assert CURL.exists(), "the docs' examples use curl"
    blocks = shell_blocks()
    titles = [block.splitlines()[0].removeprefix("# ").partition(":")[0] for block in blocks]
    checks = DocChecks(sim_process)
    assert titles == list(checks.by_title()), "every shell block in docs/sim.md needs its check here"
    env = {
        **os.environ,
        "SIM": sim_process.control_url.rstrip("/"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    for index, (title, block) in enumerate(zip(titles, blocks, strict=True)):
        # Each block on its own, after the first one, which sets the variables.
        script = block if index == 0 else f"{blocks[0]}\n{block}"
        began_s = time.monotonic()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=30
        )
        took_s = time.monotonic() - began_s
        assert done.returncode == 0, f"{title}: {done.stderr}"
        checks.by_title()[title](done.stdout, took_s)


class DocChecks:
    """What each shell block of docs/sim.md says it does, checked with real clients."""

    def __init__(self, sim: SimProcess) -> None:
        self.sim = sim
        host, _, port = sim.hue_address.partition(":")
        self.hue_host, self.hue_port = host, int(port)
        self.username = sim.config["hue"]["username"]
        self.control_port = sim.control_port

    def by_title(self) -> dict[str, Callable[[str, float], None]]:
        return {
            "setup": self.setup,
            "status": self.status,
            "bridge down, then up": self.bridge_down_then_up,
            "a bridge that errors": self.bridge_errors,
            "a speaker that refuses to play": self.speaker_refuses,
            "a slow speaker": self.slow_speaker,
            "a trickling bridge": self.trickling_bridge,
            "hand changes": self.hand_changes,
            "pairing": self.pairing,
            "all clear": self.all_clear,
        }

    def state(self) -> Any:
        return ask(self.control_port, "GET", "/")[1]

    def light(self, light_id: int) -> Any:
        connection = http.client.HTTPConnection(self.hue_host, self.hue_port, timeout=10)
        connection.request("GET", f"/api/{self.username}/lights/{light_id}")
        return json.loads(connection.getresponse().read())

    def player(self) -> Any:
        return soco.SoCo("127.0.0.1", self.sim.sonos_port)

    def setup(self, out: str, took_s: float) -> None:
        assert out == f"bridge at {self.sim.hue_address}, speaker at 127.0.0.1:{self.sim.sonos_port}\n"

    def status(self, out: str, took_s: float) -> None:
        shown = json.loads(out.partition("\n")[2])  # after the setup block's line
        assert shown["hue"]["address"] == self.sim.hue_address and "massage_room" in shown["speakers"]

    def bridge_down_then_up(self, out: str, took_s: float) -> None:
        assert "no bridge (curl exit 7)" in out and out.endswith("Philips hue\n")
        assert self.state()["hue"]["running"] is True and self.light(1)["name"] == "Light 1"

    def bridge_errors(self, out: str, took_s: float) -> None:
        assert "'kind': 'fail'" in out and "'count': 2" in out
        assert [self.light(1)[0]["error"]["type"] for _ in range(2)] == [901, 901]
        assert self.light(1)["name"] == "Light 1"

    def speaker_refuses(self, out: str, took_s: float) -> None:
        with pytest.raises(SoCoUPnPException) as error:
            self.player().play()
        assert error.value.error_code == "701"
        self.player().play()

    def slow_speaker(self, out: str, took_s: float) -> None:
        answered = re.search(r"answered after ([\d.]+) s", out)
        assert answered is not None and float(answered.group(1)) >= 1.95 and took_s >= 1.95
        assert out.endswith("\n12\n") and self.player().volume == 12

    def trickling_bridge(self, out: str, took_s: float) -> None:
        assert "curl gave up after 2 s (exit 28)" in out and out.endswith("Philips hue\n")
        assert self.state()["hue"]["pending_faults"] == [] and took_s >= 2

    def hand_changes(self, out: str, took_s: float) -> None:
        assert out.endswith("\n60\n40\n")
        assert self.light(1)["state"]["bri"] == 60 and self.player().volume == 40

    def pairing(self, out: str, took_s: float) -> None:
        reply = json.loads(out.splitlines()[-1])
        assert len(reply[0]["success"]["username"]) == 40

    def all_clear(self, out: str, took_s: float) -> None:
        state = self.state()
        assert state["hue"]["pending_faults"] == [] and state["hue"]["latency_ms"] == 0
        assert state["speakers"]["massage_room"]["pending_faults"] == []


def test_the_docs_name_the_flags_and_defaults_of_relaxd_sim() -> None:
    from relaxd.app.cli import build_parser

    args = build_parser().parse_args(["sim"])
    text = DOC.read_text()
    for flag, default in (("--hue-port", args.hue_port), ("--sonos-port", args.sonos_port)):
        assert f"| `{flag}` | {default} |" in text
    assert f"| `--control-port` | {args.control_port} |" in text and args.control_port == 8099
    assert f"SIM=${{SIM:-http://127.0.0.1:{args.control_port}}}" in text

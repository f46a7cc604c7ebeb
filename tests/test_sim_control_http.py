"""The simulators' control API as an HTTP server: status, loopback only, strict JSON in, one JSON
answer per request whatever comes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from relaxd.sim.control import MAX_BODY_BYTES, ControlServer
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.sim_control_rig import ask


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
        # Bound to loopback only: no other interface of this machine can reach it (checked on the
        # listening socket itself, so the test needs no address but 127.0.0.1).
        assert server._server is not None and server._server.socket.getsockname() == ("127.0.0.1", server.port)
    with pytest.raises(ValueError, match="speaker name"):
        ControlServer(None, {"a/b": SonosSpeakerSim()})


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

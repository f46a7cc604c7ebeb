"""`relaxd demo` as a user runs it: a subprocess on the simulators, checked from its output."""

from __future__ import annotations

import subprocess
import sys

from relaxd.core.routines import builtin_routines
from tests.mosquitto import Collector, Mosquitto


def run_demo(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaxd", "demo", "--speed", "1200", *extra],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def check_output(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for phase in builtin_routines()["classic"].phases:
        assert f'"phase": "{phase.name}"' in out
    assert "mqtt event session_started" in out and "mqtt event room_restored" in out
    assert "room restored exactly" in out and "NOT restored" not in out
    assert "\x1b" not in out  # not a terminal: no control codes
    assert "ERROR" not in result.stderr and "Traceback" not in result.stderr


def test_demo_runs_every_phase_over_the_embedded_broker_and_restores_the_room() -> None:
    result = run_demo()
    check_output(result)
    assert "embedded MQTT broker (amqtt)" in result.stdout


def test_demo_works_with_mosquitto_as_the_broker(mosquitto: Mosquitto) -> None:
    with Collector(mosquitto, ["relaxd_demo/#"]) as watcher:
        result = run_demo("--broker", f"{mosquitto.host}:{mosquitto.port}")
        check_output(result)
        assert f"MQTT broker {mosquitto.host}:{mosquitto.port}" in result.stdout
        # A real broker saw the button press and the room's events: the demo did not take a shortcut.
        assert any(m.topic == "relaxd_demo/button" for m in watcher.snapshot())
        assert any(m.topic == "relaxd_demo/massage_room/event" for m in watcher.snapshot())


def test_demo_rejects_bad_arguments() -> None:
    for args, message in (
        (["--routine", "nope"], "unknown routine 'nope'"),
        (["--broker", "localhost"], "--broker must be HOST:PORT"),
        (["--speed", "0"], "--speed must be positive"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "relaxd", "demo", *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)

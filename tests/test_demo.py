"""`relaxd demo` as a user runs it: a subprocess on the simulators, checked from its output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys

from relaxd.core.routines import builtin_routines
from tests.mosquitto import Collector, Mosquitto, Received


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
    assert "cleared the demo's 3 retained message(s) from the broker" in result.stdout
    assert retained_left(mosquitto) == []


def retained_left(broker: Mosquitto) -> list[Received]:
    """What a fresh subscriber to the demo's topics (and discovery's) is handed as retained."""
    with Collector(broker, ["relaxd_demo/#", "homeassistant/#"]) as fresh:
        # Retained messages come right after the subscription's acknowledgement, before anything
        # published later: once this probe is back, every retained message has arrived.
        fresh.publish("relaxd_demo/probe", b"probe")
        fresh.wait_for_message("relaxd_demo/probe", "probe")
        return [m for m in fresh.snapshot() if m.retain]


def test_an_interrupted_demo_gives_the_room_back_and_clears_the_broker(mosquitto: Mosquitto) -> None:
    with Collector(mosquitto, ["relaxd_demo/#"]) as watcher:
        demo = subprocess.Popen(
            [sys.executable, "-m", "relaxd", "demo", "--broker", f"{mosquitto.host}:{mosquitto.port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            watcher.wait_for(lambda msgs: any(b'"phase_started"' in m.payload for m in msgs), timeout_s=30)
            # Mid-session the broker holds the demo's status, state and phase, as a real daemon's.
            assert {m.topic for m in retained_left(mosquitto)} == {
                "relaxd_demo/status",
                "relaxd_demo/massage_room/state",
                "relaxd_demo/massage_room/phase",
            }
            demo.send_signal(signal.SIGINT)  # Ctrl-C
            out, err = demo.communicate(timeout=60)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.communicate()
        events = [json.loads(m.payload)["event"] for m in watcher.on("relaxd_demo/massage_room/event")]
    assert demo.returncode == 1, out + err
    assert events[-2:] == ["session_stopped", "room_restored"], events
    assert "cleared the demo's 3 retained message(s)" in out, out + err
    assert retained_left(mosquitto) == []
    assert "Traceback" not in err


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


def test_the_embedded_broker_starts_from_a_thread_without_an_event_loop() -> None:
    # After an asyncio test the main thread's loop is unset; amqtt makes futures in its constructor.
    from relaxd.sim.broker import EmbeddedBroker

    asyncio.set_event_loop(None)
    broker = EmbeddedBroker().start()
    try:
        with socket.create_connection((broker.host, broker.port), timeout=5):
            pass
    finally:
        broker.stop()

"""Shared knobs and helpers of the reliability tests: the CI profile, or the long one (RELAXD_LONG_TESTS=1)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from relaxd.core.events import CommandRejected, parse_command
from relaxd.core.units import percent_to_bri_254
from tests.mosquitto import Collector, Received
from tests.test_e2e_run import Rig

# RELAXD_LONG_TESTS=1 turns the CI profile (minutes for the whole suite) into the long one:
# outages as long as the issue describes and ten times the fuzzing.
LONG = os.environ.get("RELAXD_LONG_TESTS", "").strip() not in ("", "0", "false", "no")


def scaled(ci: int, long: int) -> int:
    """A count for this profile (hypothesis examples, fuzzed payloads, storm sizes)."""
    return long if LONG else ci


BROKER_OUTAGE_S = 30.0 if LONG else 3.0  # how long Mosquitto stays dead mid-session
DEVICE_OUTAGE_S = 30.0 if LONG else 2.0  # how long a simulator stays stopped mid-session
CONFIG_FUZZ_EXAMPLES = scaled(500, 5000)
COMMAND_FUZZ_BATCHES = scaled(25, 250)  # hypothesis examples, each a batch of fuzzed commands
COMMAND_FUZZ_BATCH = 60  # payloads per batch, at most
TRIGGER_FUZZ_BATCHES = scaled(10, 100)
DEVICE_FUZZ_EXAMPLES = scaled(120, 1200)
STORM_COMMANDS = scaled(1000, 5000)
# pytest-timeout's limit per test (pyproject: 120 s); the long profile's tests run for minutes.
TEST_TIMEOUT_S = 1800 if LONG else 120


# (brightness %, colour temperature K, volume) of phase i of a routine made by phases().
LEVELS = [(40, 2400, 12), (30, 2200, 14), (15, 2000, 8), (25, 2300, 10), (35, 2500, 11)]


def phases(*seconds: float, transition: str = "0s") -> dict[str, Any]:
    """A routine with one phase per duration, each with its own light and volume level."""
    out = []
    for i, duration in enumerate(seconds):
        bri, kelvin, volume = LEVELS[i % len(LEVELS)]
        out.append(
            {
                "name": f"phase{i + 1}",
                "duration": f"{duration:g}s",
                "lights": {"brightness": f"{bri}%", "color_temp": f"{kelvin}K", "transition": transition},
                "music": {"volume": volume, "ramp": "0s"},
            }
        )
    return {"phases": out}


def shows_phase(rig: Rig, index: int, device: str, room: str = "room1") -> bool:
    """The room's lights or speaker (as the simulators see them) show phase index of phases()."""
    bri, _, volume = LEVELS[index % len(LEVELS)]
    if device == "lights":
        return bool(rig.hue.light(_light_id(rig, f"{room} ceiling"))["state"]["bri"] == percent_to_bri_254(bri))
    return bool(rig.speakers[room].state().volume == volume)


def _light_id(rig: Rig, name: str) -> str:
    return next(i for i in rig.hue.light_ids() if rig.hue.light(i)["name"] == name)


def same_room_after(before: dict[str, Any], rig: Rig, outage_s: float) -> None:
    """same_room, for a speaker that was given back (and played on) up to outage_s before the end."""
    after = rig.before()
    assert after["lights"] == before["lights"]
    for room, state in before["speakers"].items():
        now = after["speakers"][room]
        assert {k: v for k, v in now.items() if k != "position_s"} == {
            k: v for k, v in state.items() if k != "position_s"
        }
        # Restored to the snapshot's position, then playing on while the other device was away.
        assert -5 < now["position_s"] - state["position_s"] < 15 + outage_s


def reconfigure(rig: Rig, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Rewrite the rig's config file (before start_daemon); returns the new config."""
    config: dict[str, Any] = yaml.safe_load(rig.config.read_text())
    change(config)
    rig.config.write_text(yaml.safe_dump(config))
    return config


def room_events(msgs: list[Received], room: str = "room1") -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in msgs if m.topic == f"relaxd/{room}/event"]


def event_names(msgs: list[Received], room: str = "room1") -> list[str]:
    return [e["event"] for e in room_events(msgs, room)]


def count(msgs: list[Received], name: str, room: str = "room1") -> int:
    return event_names(msgs, room).count(name)


def last_state(msgs: list[Received], room: str = "room1") -> dict[str, Any] | None:
    states = [m for m in msgs if m.topic == f"relaxd/{room}/state"]
    return json.loads(states[-1].payload) if states else None


def wait_online(mqtt: Collector, rooms: int = 1, timeout_s: float = 20) -> None:
    """The daemon is up: online, and every room's first state (after start-up recovery) is out."""
    mqtt.wait_for_message("relaxd/status", "online", timeout_s=timeout_s)
    mqtt.wait_for(lambda m: all(last_state(m, f"room{i + 1}") is not None for i in range(rooms)), timeout_s=timeout_s)


@dataclass
class RoomModel:
    """What room1 must say for each command, from the state machine of DESIGN.md."""

    phase_counts: dict[str, int]
    default_routine: str = "test"
    state: str = "idle"
    phase: int = 0
    phase_count: int = 0
    expected: list[str] = field(default_factory=list)  # event names of room1, in order
    rejected_tx: list[str | None] = field(default_factory=list)

    def command(self, payload: bytes) -> None:
        try:
            cmd = parse_command(payload)
        except CommandRejected as exc:
            self._reject(exc.transaction)
            return
        self.do(cmd.action, cmd.routine, cmd.transaction)

    def do(self, action: str, routine: str | None = None, transaction: str | None = None) -> None:
        if action == "toggle":
            action = "start" if self.state == "idle" else "stop"
        allowed = {
            "start": ("idle",),
            "stop": ("running", "paused"),
            "pause": ("running",),
            "resume": ("paused",),
            "skip": ("running",),
            "extend": ("running", "paused"),
        }[action]
        if self.state not in allowed:
            self._reject(transaction)
        elif action == "start":
            name = routine or self.default_routine
            if name not in self.phase_counts:
                self._reject(transaction)
                return
            self.state, self.phase, self.phase_count = "running", 0, self.phase_counts[name]
            self.expected += ["session_started", "phase_started"]
        elif action == "stop":
            self.state = "idle"
            self.expected += ["session_stopped", "room_restored"]
        elif action in ("pause", "resume"):
            self.state = "paused" if action == "pause" else "running"
            self.expected.append(f"session_{action}d")
        elif action == "extend":
            self.expected.append("session_extended")
        elif self.phase + 1 < self.phase_count:  # skip
            self.phase += 1
            self.expected.append("phase_started")
        else:
            self.state = "idle"
            self.expected += ["session_finished", "room_restored"]

    def _reject(self, transaction: str | None) -> None:
        self.expected.append("command_rejected")
        self.rejected_tx.append(transaction)

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
CONFIG_RUN_EXAMPLES = scaled(15, 200)  # generated configs: check-config's verdict, then a real start
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
class Sent:
    """One command as published to a room: its action, or None when it cannot even be parsed."""

    action: str | None
    routine: str | None = None
    transaction: str | int | float | None = None

    @classmethod
    def of(cls, payload: bytes) -> Sent:
        try:
            cmd = parse_command(payload)
        except CommandRejected as exc:
            return cls(None, None, exc.transaction)
        return cls(cmd.action, cmd.routine, cmd.transaction)


_TRANSITIONAL = ("starting", "restoring")


@dataclass
class RoomModel:
    """A room's lifecycle (docs/lifecycle.md), replayed over the commands sent and the events seen.

    A start is over when its snapshot is saved and a stop when the room is restored; when that
    happens, between which commands, is the devices' business. So the replay takes the end of a
    start or a restore wherever the events show it, and holds every other event to what the table
    says the command in hand must give. check() returns the state the room is in after the events.
    """

    phase_counts: dict[str, int]
    default_routine: str = "test"
    sent: list[Sent] = field(default_factory=list)
    start_state: str = "idle"  # where the room was when `sent` began

    def restart_from(self, state: str) -> None:
        """Forget the commands so far; the next ones meet the room in state (not mid-start or restore)."""
        self.sent = []
        self.start_state = state

    def command(self, payload: bytes) -> None:
        if payload:  # an empty payload clears a retained command: relaxd answers nothing
            self.sent.append(Sent.of(payload))

    def do(self, action: str, routine: str | None = None, transaction: str | None = None) -> None:
        self.sent.append(Sent(action, routine, transaction))

    def check(self, events: list[dict[str, Any]], *, complete: bool = True) -> str:
        """Raise AssertionError (with where) unless events are exactly what the commands explain."""
        replay = _Replay(self.phase_counts, self.default_routine, events)
        replay.state = self.start_state
        for n, sent in enumerate(self.sent):
            replay.finish_transition()
            try:
                replay.apply(sent)
            except AssertionError as exc:
                raise AssertionError(f"command {n} {sent}: {exc}") from None
        replay.finish_transition()
        if complete:
            left = [e["event"] for e in events[replay.at :]]
            assert left == [], f"events nobody asked for: {left}"
        return replay.state


class _Replay:
    def __init__(self, counts: dict[str, int], default_routine: str, events: list[dict[str, Any]]) -> None:
        self.counts = counts
        self.default_routine = default_routine
        self.events = events
        self.at = 0
        self.state = "idle"
        self.phase = 0
        self.phase_count = 0
        self.stop_pending = False

    def _take(self, names: list[str]) -> bool:
        got = [e["event"] for e in self.events[self.at : self.at + len(names)]]
        if got == names:
            self.at += len(names)
            return True
        return False

    def _expect(self, names: list[str]) -> None:
        if not self._take(names):
            got = [e["event"] for e in self.events[self.at : self.at + len(names) + 3]]
            raise AssertionError(f"in {self.state} (stop pending: {self.stop_pending}): expected {names}, got {got}")

    def finish_transition(self) -> None:
        if self.state == "starting":
            # Stopped while starting: the snapshot is then dropped, which is a (short) restore.
            after = ["session_started", "session_stopped"] if self.stop_pending else None
            if after is not None and self._take(after):
                self.state, self.stop_pending = "restoring", False
                self.finish_transition()
            elif after is None and self._take(["session_started", "phase_started"]):
                self.state = "running"
        elif self.state == "restoring" and self._take(["room_restored"]):
            self.state = "idle"

    def apply(self, sent: Sent) -> None:
        action = sent.action
        if action is None:
            return self._reject(sent)
        if action == "toggle":
            action = "start" if self.state == "idle" else "stop"
        state = self.state
        if state == "idle" and action == "start":
            routine = sent.routine or self.default_routine
            if routine not in self.counts:
                return self._reject(sent)
            self.state, self.phase, self.phase_count = "starting", 0, self.counts[routine]
        elif state == "starting" and action == "stop" and not self.stop_pending:
            self.stop_pending = True  # nothing to see until the snapshot is saved
        elif state in ("running", "paused") and action == "stop":
            self._expect(["session_stopped"])
            self.state = "restoring"
        elif (state, action) == ("running", "pause"):
            self._expect(["session_paused"])
            self.state = "paused"
        elif (state, action) == ("paused", "resume"):
            self._expect(["session_resumed"])
            self.state = "running"
        elif state in ("running", "paused") and action == "extend":
            self._expect(["session_extended"])
        elif (state, action) == ("running", "skip"):
            if self.phase + 1 < self.phase_count:
                self.phase += 1
                self._expect(["phase_started"])
            else:
                self._expect(["session_finished"])
                self.state = "restoring"
        else:
            self._reject(sent)
        return None

    def _reject(self, sent: Sent) -> None:
        self._expect(["command_rejected"])
        got = self.events[self.at - 1].get("transaction")
        want = sent.transaction[:256] if isinstance(sent.transaction, str) else sent.transaction
        assert got == want, f"rejection echoed {got!r}, not {want!r}"


def settle_and_check(
    mqtt: Collector, model: RoomModel, room: str, tag: str, timeout_s: float = 30
) -> tuple[str, list[dict[str, Any]]]:
    """Send a last command that always answers (resume with a transaction), wait until its answer
    and any start or restore in progress are in, then check every event of the room against the
    model. Returns the room's state and its events."""
    tx = f"end-{tag}"
    payload = json.dumps({"action": "resume", "transaction": tx}).encode()
    mqtt.publish(f"relaxd/{room}/set", payload)
    model.command(payload)

    def done(msgs: list[Received]) -> bool:
        got = room_events(msgs, room)
        if not any(e.get("transaction") == tx for e in got):
            return False
        try:
            return model.check(got, complete=False) not in _TRANSITIONAL
        except AssertionError:
            return False  # events still on their way

    try:
        msgs = mqtt.wait_for(done, timeout_s=timeout_s)
    except AssertionError:
        msgs = mqtt.snapshot()
    got = room_events(msgs, room)
    return model.check(got), got

"""`relaxd demo`: a whole session on simulated devices, shown live, then the room compared."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from relaxd.clock import SystemClock
from relaxd.config import Settings
from relaxd.configfile import all_routines
from relaxd.daemon import Daemon, build_devices
from relaxd.events import Command
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from relaxd.units import format_duration

ROOM = "massage_room"
SPEAKER_FIELDS = ("uri", "track", "transport_state", "volume", "mute")
POSITION_TOLERANCE_S = 5.0


class DemoBus:
    """Collects state and events in memory (the demo's own stand-in for MQTT)."""

    def __init__(self) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.state: dict[str, Any] = {}

    def publish_state(self, room: str, state: dict[str, Any], phase: str) -> None:
        self.state = state

    def publish_event(self, room: str, event: dict[str, Any]) -> None:
        self.events.put(event)


def light_states(hue: HueBridgeSim) -> dict[str, dict[str, Any]]:
    """Per light: on, bri and the colour of its colormode (what a restore promises to bring back)."""
    out: dict[str, dict[str, Any]] = {}
    for light_id in hue.light_ids():
        light = hue.light(light_id)
        state = light["state"]
        mode = state.get("colormode")
        colour = {"hs": ("hue", "sat"), "xy": ("xy",), "ct": ("ct",)}.get(mode, ())
        out[light["name"]] = {k: state[k] for k in ("on", "bri", "colormode", *colour) if k in state}
    return out


def speaker_state(sonos: SonosSpeakerSim) -> dict[str, Any]:
    state = sonos.state()
    out = {k: getattr(state, k) for k in SPEAKER_FIELDS}
    out["position_s"] = round(state.position_s, 1)
    return out


def _describe_light(state: dict[str, Any]) -> str:
    if not state.get("on"):
        return "off"
    colour = ""
    if state.get("colormode") == "ct" and "ct" in state:
        colour = f" {round(1_000_000 / state['ct'])}K"
    elif state.get("colormode") == "xy" and "xy" in state:
        colour = f" xy {state['xy'][0]:.3f},{state['xy'][1]:.3f}"
    return f"on {round(state['bri'] * 100 / 254)}%{colour}"


def _describe_speaker(state: dict[str, Any]) -> str:
    kind = "queue" if str(state["uri"]).startswith("x-rincon-queue:") else "radio"
    return f"{state['transport_state'].lower()} vol {state['volume']}, {kind} track {state['track']}"


class Screen:
    """Live progress: one redrawn line on a terminal, plain lines in a pipe (no control codes)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_plain = 0.0
        self._status = ""

    def event(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K")
        self.out.write(text + "\n")
        if self.tty and self._status:
            self.out.write(self._status)
        self.out.flush()

    def status(self, text: str) -> None:
        if self.tty:
            self._status = text
            self.out.write("\r\x1b[2K" + text)
            self.out.flush()
        elif time.monotonic() - self._last_plain >= 5.0:
            self._last_plain = time.monotonic()
            self.out.write(text + "\n")
            self.out.flush()

    def done(self) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K")
            self.out.flush()


def _bar(fraction: float, width: int = 24) -> str:
    filled = int(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def run_demo(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.speed <= 0:
        print("relaxd demo: --speed must be positive", file=sys.stderr)
        return 2
    if args.broker:
        print("relaxd demo: --broker is not supported yet; the demo uses no MQTT broker", file=sys.stderr)
        return 2
    hue = HueBridgeSim.demo_room()
    sonos = SonosSpeakerSim.demo()
    hue.start()
    sonos.start()
    try:
        with tempfile.TemporaryDirectory(prefix="relaxd-demo-") as state_dir:
            return _run(args, out, hue, sonos, Path(state_dir))
    finally:
        hue.stop()
        sonos.stop()


def _settings(hue: HueBridgeSim, sonos: SonosSpeakerSim, state_dir: Path) -> Settings:
    return Settings.model_validate({
        "state_dir": state_dir,
        "mqtt": {"discovery_prefix": None},
        "hue": {"host": hue.address, "username": hue.username, "https": False, "timeout": "5s"},
        "rooms": {ROOM: {"lights": {"group": "Massage Room"}, "speaker": {"host": sonos.address},
                         "music": {"favorite": "Spa Radio"}, "max_volume": 30, "restore_fade": "5s"}},
    })


def _run(args: argparse.Namespace, out: TextIO, hue: HueBridgeSim, sonos: SonosSpeakerSim,
         state_dir: Path) -> int:
    settings = _settings(hue, sonos, state_dir)
    routines = all_routines(settings)
    if args.routine not in routines:
        print(f"relaxd demo: unknown routine {args.routine!r}; known: {', '.join(routines)}", file=sys.stderr)
        return 2
    routine = routines[args.routine]
    bus = DemoBus()
    clock = SystemClock(args.speed)
    daemon = Daemon(settings, clock=clock, devices=build_devices(settings), bus_factory=lambda d: bus)
    daemon.build()
    engine = daemon.engines[ROOM]
    screen = Screen(out)
    real_s = routine.duration_s / args.speed
    print(f"relaxd demo: routine {args.routine} ({format_duration(routine.duration_s)}, "
          f"{len(routine.phases)} phases) at {args.speed:g}x: about {real_s:.0f} s", file=out)
    print(f"simulated Hue bridge on {hue.address}, simulated Sonos speaker on {sonos.address}", file=out)
    before = {"lights": light_states(hue), "speaker": speaker_state(sonos)}
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), name="demo-room", daemon=True)
    thread.start()
    print("pressing the massage button (toggle)...", file=out)
    engine.submit(Command(action="toggle", routine=args.routine, source="demo"))
    during: dict[str, Any] = {}
    final = _follow(bus, screen, hue, sonos, routine.duration_s, clock, during, deadline_s=real_s * 3 + 60)
    stop.set()
    engine.wake.set()
    thread.join(timeout=30)
    screen.done()
    after = {"lights": light_states(hue), "speaker": speaker_state(sonos)}
    return _report(out, before, during, after, final)


def _follow(bus: DemoBus, screen: Screen, hue: HueBridgeSim, sonos: SonosSpeakerSim, total_s: float,
            clock: SystemClock, during: dict[str, Any], deadline_s: float) -> dict[str, Any] | None:
    """Show events and progress until room_restored or restore_failed (or the deadline)."""
    started = time.monotonic()
    session_start: float | None = None
    while time.monotonic() - started < deadline_s:
        try:
            event = bus.events.get(timeout=0.2)
        except queue.Empty:
            event = None
        if event is not None:
            name = event["event"]
            detail = {k: event[k] for k in ("phase", "technique", "intensity", "reason", "device")
                      if k in event}
            screen.event(f"  event {name:<18} {json.dumps(detail) if detail else ''}".rstrip())
            if name == "session_started":
                session_start = clock.monotonic()
            if name == "phase_started" and event.get("phase_index") == 1:
                time.sleep(0.3)  # let the first fades settle before sampling the room "during"
                during.update(lights=light_states(hue), speaker=speaker_state(sonos))
            if name in ("room_restored", "restore_failed"):
                return event
        state = bus.state
        if session_start is not None and state.get("state") == "running":
            elapsed = clock.monotonic() - session_start
            lights = ", ".join(_describe_light(s) for s in light_states(hue).values())
            screen.status(f"{_bar(elapsed / total_s)} {format_duration(round(elapsed))}/"
                          f"{format_duration(total_s)} phase {state['phase_index'] + 1}/{state['phase_count']} "
                          f"{state['phase']:<18} lights: {lights}; volume {sonos.state().volume}")
    return None


def _report(out: TextIO, before: dict[str, Any], during: dict[str, Any], after: dict[str, Any],
            final: dict[str, Any] | None) -> int:
    print("\nthe room before, during and after:", file=out)
    width = 30
    print(f"  {'device':<14} {'before':<{width}} {'during':<{width}} {'after':<{width}}", file=out)
    for name in before["lights"]:
        cells = [_describe_light(part["lights"][name]) if part else "-" for part in (before, during, after)]
        print(f"  {name:<14} " + " ".join(f"{c:<{width}}" for c in cells), file=out)
    cells = [_describe_speaker(part["speaker"]) if part else "-" for part in (before, during, after)]
    print(f"  {'speaker':<14} " + " ".join(f"{c:<{width}}" for c in cells), file=out)
    problems: list[str] = []
    if final is None or final["event"] != "room_restored":
        problems.append(f"the session did not end with room_restored ({final and final.get('reason')})")
    for name, state in before["lights"].items():
        if after["lights"].get(name) != state:
            problems.append(f"light {name}: {state} became {after['lights'].get(name)}")
    for key in SPEAKER_FIELDS:
        if before["speaker"][key] != after["speaker"][key]:
            problems.append(f"speaker {key}: {before['speaker'][key]} became {after['speaker'][key]}")
    drift = after["speaker"]["position_s"] - before["speaker"]["position_s"]
    if not -1.0 <= drift <= POSITION_TOLERANCE_S:
        problems.append(f"speaker position moved by {drift:+.1f} s")
    if problems:
        print("\nNOT restored exactly:", file=out)
        for problem in problems:
            print(f"  - {problem}", file=out)
        return 1
    print("\nroom restored exactly: every light field, the speaker's source, track, position (within "
          f"{POSITION_TOLERANCE_S:g} s), volume, mute and play state are as before.", file=out)
    return 0

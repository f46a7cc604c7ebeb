"""What `relaxd demo` shows: the room's devices in words, live progress, the before/after table."""

from __future__ import annotations

import time
from typing import Any, TextIO

from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim

SPEAKER_FIELDS = ("uri", "track", "transport_state", "volume", "mute")
POSITION_TOLERANCE_S = 5.0


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


def describe_light(state: dict[str, Any]) -> str:
    if not state.get("on"):
        return "off"
    colour = ""
    if state.get("colormode") == "ct" and "ct" in state:
        colour = f" {round(1_000_000 / state['ct'])}K"
    elif state.get("colormode") == "xy" and "xy" in state:
        colour = f" xy {state['xy'][0]:.3f},{state['xy'][1]:.3f}"
    return f"on {round(state['bri'] * 100 / 254)}%{colour}"


def describe_breath(edge: dict[str, Any] | None) -> str:
    """The breath as the progress line shows it: `; breathe in 4s (lights follow)`, or nothing."""
    if edge is None:
        return ""
    words = {"inhale": "breathe in", "hold": "hold", "exhale": "breathe out", "rest": "rest"}
    step = words.get(str(edge.get("breath")), str(edge.get("breath")))
    lights = " (lights follow)" if edge.get("lights") else ""
    return f"; {step} {edge.get('duration_s', 0):g}s{lights}"


def describe_speaker(state: dict[str, Any]) -> str:
    kind = "queue" if str(state["uri"]).startswith("x-rincon-queue:") else "radio"
    return f"{state['transport_state'].lower()} vol {state['volume']}, {kind} track {state['track']}"


def bar(fraction: float, width: int = 24) -> str:
    filled = int(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class Screen:
    """Live progress: one redrawn line on a terminal, plain lines in a pipe (no control codes)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_plain = 0.0
        self._status = ""

    def line(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K")
        self.out.write(text + "\n")
        if self.tty and self._status:
            self.out.write(self._status)
        self.out.flush()

    def status(self, text: str, *, now: bool = False) -> None:
        """Redraw the line; in a pipe, a line every 5 s (now: at once, e.g. the breath's first edge)."""
        if self.tty:
            self._status = text
            self.out.write("\r\x1b[2K" + text)
            self.out.flush()
        elif now or time.monotonic() - self._last_plain >= 5.0:
            self._last_plain = time.monotonic()
            self.out.write(text + "\n")
            self.out.flush()

    def done(self) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K")
            self.out.flush()


def report(
    out: TextIO, before: dict[str, Any], during: dict[str, Any], after: dict[str, Any], final: dict[str, Any] | None
) -> int:
    """Print the room before, during and after side by side; 0 only if restored exactly."""
    print("\nthe room before, during and after:", file=out)
    width = 30
    print(f"  {'device':<14} {'before':<{width}} {'during':<{width}} {'after':<{width}}".rstrip(), file=out)
    for name in before["lights"]:
        cells = [describe_light(part["lights"][name]) if part else "-" for part in (before, during, after)]
        print((f"  {name:<14} " + " ".join(f"{c:<{width}}" for c in cells)).rstrip(), file=out)
    cells = [describe_speaker(part["speaker"]) if part else "-" for part in (before, during, after)]
    print((f"  {'speaker':<14} " + " ".join(f"{c:<{width}}" for c in cells)).rstrip(), file=out)
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
    print(
        "\nroom restored exactly: every light (on, brightness, colour of its colormode) and the speaker's "
        f"source, track, position (within {POSITION_TOLERANCE_S:g} s), volume, mute and play state.",
        file=out,
    )
    return 0

"""Benchmark rooms on the simulators: lights, speakers, routines, config and exact state comparison."""

from __future__ import annotations

import time
from typing import Any

from relaxd.core.units import kelvin_to_mired, percent_to_bri_254
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import COLOR_TEMPERATURE, DIMMABLE, EXTENDED_COLOR
from relaxd.sim.sonos_speaker import SonosSpeakerSim

FAVORITE = "Spa Radio"
POSITION_TOLERANCE_S = 5.0
SPEAKER_FIELDS = (
    "uri",
    "uri_metadata",
    "transport_state",
    "queue",
    "track",
    "track_uri",
    "volume",
    "mute",
    "bass",
    "treble",
    "loudness",
    "play_mode",
    "crossfade",
)


def phase(
    name: str,
    duration: str,
    bri: int = 40,
    kelvin: int = 2400,
    volume: int = 12,
    transition: str = "0s",
    ramp: str = "0s",
) -> dict[str, Any]:
    return {
        "name": name,
        "duration": duration,
        "lights": {"brightness": f"{bri}%", "color_temp": f"{kelvin}K", "transition": transition},
        "music": {"volume": volume, "ramp": ramp},
    }


def scene_body(bri: int = 40, kelvin: int = 2400) -> dict[str, Any]:
    """The group command relaxd sends for phase(bri, kelvin) with a 0 s transition."""
    return {"on": True, "bri": percent_to_bri_254(bri), "ct": kelvin_to_mired(kelvin), "transitiontime": 0}


def add_two_lights(
    hue: HueBridgeSim, prefix: str, group: bool = True, lamp_on: bool = False
) -> tuple[list[str], str | None]:
    """A ceiling light on in ct and a lamp in xy (off unless lamp_on), optionally in a group of their own."""
    a = hue.add_light(EXTENDED_COLOR, f"{prefix} ceiling", on=True, bri=254, ct=181, colormode="ct")
    b = hue.add_light(EXTENDED_COLOR, f"{prefix} lamp", on=lamp_on, bri=90, xy=[0.3, 0.3], colormode="xy")
    gid = hue.add_group(f"{prefix} group", [a, b]) if group else None
    return [a, b], gid


def add_mixed_lights(hue: HueBridgeSim, count: int = 20) -> tuple[list[str], str]:
    """count lights in mixed models, colormodes and states (about a third off), in one group."""
    ids: list[str] = []
    for i in range(count):
        name = f"spa {i + 1:02d}"
        kind = i % 7
        on = i % 3 != 2
        bri = 20 + (i * 37) % 230
        if kind == 0:
            ids.append(hue.add_light(EXTENDED_COLOR, name, on=on, bri=bri, ct=160 + 17 * i, colormode="ct"))
        elif kind == 1:
            ids.append(
                hue.add_light(
                    EXTENDED_COLOR,
                    name,
                    on=on,
                    bri=bri,
                    xy=[round(0.2 + 0.01 * i, 4), round(0.15 + 0.012 * i, 4)],
                    colormode="xy",
                )
            )
        elif kind == 2:
            ids.append(
                hue.add_light(
                    EXTENDED_COLOR, name, on=on, bri=bri, hue=(4000 * i) % 65535, sat=100 + 5 * i, colormode="hs"
                )
            )
        elif kind in (3, 4):
            ids.append(hue.add_light(COLOR_TEMPERATURE, name, on=on, bri=bri, ct=200 + 13 * i))
        else:
            ids.append(hue.add_light(DIMMABLE, name, on=on, bri=bri))
    return ids, hue.add_group("Spa", ids)


def demo_speaker(latency_ms: float, room_name: str = "Massage Room") -> SonosSpeakerSim:
    """Playing everyday music from its queue (track 2 at 41 s), volume 25; not started yet."""
    return SonosSpeakerSim.demo(room_name=room_name, latency_ms=latency_ms)


def reset_speaker(sim: SonosSpeakerSim) -> None:
    """Back to what demo_speaker() set up (for the reference scripts, which do not restore)."""
    sim.load_queue(track=2, position_s=41.0)
    with sim.lock:
        sim.set_volume(25)
        sim.mute = False


def room_config(
    *, group: str | None = None, names: list[str] | None = None, speaker: str | None = None, routine: str = "bench"
) -> dict[str, Any]:
    room: dict[str, Any] = {"routine": routine, "restore_fade": "0s"}
    if group is not None:
        room["lights"] = {"group": group}
    elif names is not None:
        room["lights"] = {"names": names}
    if speaker is not None:
        room["speaker"] = {"host": speaker}
        room["music"] = {"favorite": FAVORITE}
    return room


def light_fields(hue: HueBridgeSim, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per light: on, bri, colormode and the colour of that colormode (what a restore promises)."""
    out: dict[str, dict[str, Any]] = {}
    for light_id in ids:
        state = hue.light_state(light_id)
        mode = state.get("colormode")
        colour = {"hs": ("hue", "sat"), "xy": ("xy",), "ct": ("ct",)}.get(str(mode), ())
        out[light_id] = {k: state[k] for k in ("on", "bri", "colormode", *colour) if k in state}
    return out


def speaker_fields(sim: SonosSpeakerSim) -> dict[str, Any]:
    """The speaker's state; a playing position is taken back to the last Play (where a restore put it),
    so that a room compared long after its restore is not penalised for the music playing on."""
    plays = sim.requests("Play")
    now = time.monotonic()
    state = sim.state()
    out = {k: getattr(state, k) for k in SPEAKER_FIELDS}
    out["position_s"] = state.position_s
    if plays and state.transport_state == "PLAYING":
        out["position_s"] = state.position_s - (now - plays[-1].at)
    return out


def compare(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> tuple[int, int, list[str]]:
    """(fields equal, fields compared, what differs) between two {device: {field: value}} maps."""
    equal = total = 0
    diffs: list[str] = []
    for device, fields in before.items():
        now = after.get(device, {})
        for key, value in fields.items():
            total += 1
            if key == "position_s":
                ok = abs(float(now.get(key, -1e9)) - float(value)) <= POSITION_TOLERANCE_S
            else:
                ok = now.get(key) == value
            if ok:
                equal += 1
            else:
                diffs.append(f"{device}.{key}: {value!r} -> {now.get(key)!r}")
    return equal, total, diffs

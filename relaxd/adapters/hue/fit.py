"""Pure Hue light logic: capabilities, fitting a scene, snapshot entries, spotting hand changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from relaxd.core.ports import LightScene

# Leniency for bridge rounding (xy to 4 decimals, ct and bri steps); a hand change is far bigger.
BRI_TOLERANCE = 5
CT_TOLERANCE_MIRED = 5
XY_TOLERANCE = 0.01
HUE_TOLERANCE = 700
SAT_TOLERANCE = 5
# After a command, reported values may sit anywhere between the old and new value this long.
SETTLE_MARGIN_S = 1.0
DEFAULT_CT_RANGE = (153, 500)


@dataclass(frozen=True)
class LightInfo:
    """What a light can do, from GET /lights (or a snapshot entry)."""

    light_id: str
    name: str
    dimmable: bool
    color: bool
    ct_range: tuple[int, int] | None

    @classmethod
    def from_json(cls, light_id: str, data: dict[str, Any]) -> LightInfo:
        state = data.get("state", {})
        control = data.get("capabilities", {}).get("control", {})
        ct = control.get("ct")
        ct_range = (int(ct["min"]), int(ct["max"])) if isinstance(ct, dict) else None
        if ct_range is None and "ct" in state:
            ct_range = DEFAULT_CT_RANGE
        color = "xy" in state or "colorgamut" in control
        return cls(str(light_id), str(data.get("name", light_id)), "bri" in state, color, ct_range)


def xy_to_ct_mired(xy: tuple[float, float]) -> int:
    """McCamy's approximation, for white-only lights when a scene only gives a colour."""
    x, y = xy
    n = (x - 0.3320) / (0.1858 - y) if y != 0.1858 else 0.0
    kelvin = 449 * n**3 + 3525 * n**2 + 6823.3 * n + 5520.33
    return round(1_000_000 / max(kelvin, 1000.0))


def ct_mired_to_xy(ct_mired: int) -> tuple[float, float]:
    """CIE xy of a black body at ct_mired (Kim et al. cubic fit), for colour lights without ct."""
    kelvin = max(1667.0, min(25000.0, 1_000_000 / max(ct_mired, 1)))
    t = 1000.0 / kelvin
    if kelvin <= 4000:
        x = -0.2661239 * t**3 - 0.2343589 * t**2 + 0.8776956 * t + 0.179910
    else:
        x = -3.0258469 * t**3 + 2.1070379 * t**2 + 0.2226347 * t + 0.240390
    if kelvin <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif kelvin <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return round(x, 4), round(y, 4)


def scene_ct_mired(scene: LightScene) -> int | None:
    if scene.ct_mired is not None:
        return scene.ct_mired
    return xy_to_ct_mired(scene.xy) if scene.xy is not None else None


def transitiontime(transition_s: float) -> int:
    """Hue transition times are deciseconds."""
    return max(0, min(65535, round(transition_s * 10)))


def fit_scene(info: LightInfo, scene: LightScene) -> dict[str, Any]:
    """The command that brings one light to scene, within what the light can do."""
    body: dict[str, Any] = {"on": True}
    if info.dimmable:
        body["bri"] = max(1, min(254, scene.bri_254))
    ct_mired = scene_ct_mired(scene)
    if info.color and scene.xy is not None:
        body["xy"] = [round(scene.xy[0], 4), round(scene.xy[1], 4)]
    elif info.ct_range is not None and ct_mired is not None:
        body["ct"] = max(info.ct_range[0], min(info.ct_range[1], ct_mired))
    elif info.color and ct_mired is not None:
        # A colour light without colour temperature (Bloom, LightStrip): the same white as xy.
        body["xy"] = list(ct_mired_to_xy(ct_mired))
    body["transitiontime"] = transitiontime(scene.transition_s)
    return body


def _group_colour(info: LightInfo, body: dict[str, Any]) -> str | None:
    """The colour field a member takes from a group action (the bridge: xy over ct, what it can do)."""
    if "xy" in body and info.color:
        return "xy"
    if "ct" in body and info.ct_range is not None:
        return "ct"
    return None


def group_body(infos: list[LightInfo], scene: LightScene) -> dict[str, Any] | None:
    """One group action giving every member what fit_scene() would (the bridge picks xy over ct), or
    None when no single action can (a colour-only light needs xy where the others need ct)."""
    bodies = [fit_scene(info, scene) for info in infos]
    body: dict[str, Any] = {"on": True}
    if any("bri" in b for b in bodies):
        body["bri"] = max(1, min(254, scene.bri_254))
    if any("xy" in b for b in bodies):
        body["xy"] = next(b["xy"] for b in bodies if "xy" in b)
    ct_mired = scene_ct_mired(scene)
    if any("ct" in b for b in bodies) and ct_mired is not None:
        body["ct"] = max(DEFAULT_CT_RANGE[0], min(DEFAULT_CT_RANGE[1], ct_mired))
    body["transitiontime"] = transitiontime(scene.transition_s)
    for info, own in zip(infos, bodies, strict=True):
        wanted = next((k for k in ("xy", "ct") if k in own), None)
        if _group_colour(info, body) != wanted or (wanted == "xy" and body["xy"] != own["xy"]):
            return None
    return body


def colour_of(state: dict[str, Any]) -> dict[str, Any]:
    """The colour fields of the light's colormode; for a light that reports no colormode, its only
    colour field (a colour temperature light's ct), else nothing."""
    mode = state.get("colormode")
    if mode is None:
        present = [k for k in ("xy", "ct", "hue") if k in state]
        mode = {"xy": "xy", "ct": "ct", "hue": "hs"}[present[0]] if len(present) == 1 else None
    if mode == "xy" and "xy" in state:
        return {"xy": [float(v) for v in state["xy"]]}
    if mode == "ct" and "ct" in state:
        return {"ct": int(state["ct"])}
    if mode == "hs" and "hue" in state and "sat" in state:
        return {"hue": int(state["hue"]), "sat": int(state["sat"])}
    return {}


def snapshot_entry(info: LightInfo, data: dict[str, Any]) -> dict[str, Any]:
    """One light as JSON-able data: on, bri, colormode and its colour, name and capabilities."""
    state = data.get("state", {})
    entry: dict[str, Any] = {
        "name": info.name,
        "type": data.get("type"),
        "modelid": data.get("modelid"),
        "dimmable": info.dimmable,
        "color": info.color,
        "ct_range": list(info.ct_range) if info.ct_range else None,
        "on": bool(state.get("on")),
    }
    if "bri" in state:
        entry["bri"] = int(state["bri"])
    if state.get("colormode") in ("xy", "ct", "hs"):
        entry["colormode"] = state["colormode"]
    entry.update(colour_of(state))
    return entry


def restore_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """bri and the colour of the saved colormode (no on/off)."""
    fields: dict[str, Any] = {}
    if entry.get("bri") is not None:
        fields["bri"] = int(entry["bri"])
    fields.update(colour_of(entry))
    return fields


def matches(entry: dict[str, Any], state: dict[str, Any]) -> bool:
    """Whether state already shows bri, colormode and colour of entry (exactly, as the bridge stores)."""
    wanted = restore_fields(entry)
    if "colormode" in entry and state.get("colormode") != entry["colormode"]:
        return False
    for key, value in wanted.items():
        current = state.get(key)
        if key == "xy":
            current = [round(float(v), 4) for v in current or []]
            value = [round(float(v), 4) for v in value]
        if current != value:
            return False
    return True


@dataclass
class Expected:
    """What relaxd last set on a light, and the state just before it (for transitions)."""

    on: bool
    fields: dict[str, Any] = field(default_factory=dict)
    colormode: str | None = None
    before: dict[str, Any] = field(default_factory=dict)
    settle_at_s: float = 0.0

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Expected:
        """The light as it is: anything different later was done by someone else."""
        fields = {"bri": state["bri"]} if "bri" in state else {}
        fields.update(colour_of(state))
        return cls(bool(state.get("on")), fields, state.get("colormode"))

    @classmethod
    def from_command(cls, body: dict[str, Any], before: dict[str, Any], settle_at_s: float) -> Expected:
        fields = {k: v for k, v in body.items() if k in ("bri", "xy", "ct", "hue", "sat")}
        mode = next(({"xy": "xy", "ct": "ct"}.get(k, "hs") for k in ("xy", "ct", "hue") if k in body), None)
        on = bool(body.get("on", before.get("on")))
        return cls(on, fields, mode or before.get("colormode"), dict(before), settle_at_s)


def _near(key: str, actual: Any, target: Any, before: Any, moving: bool) -> bool:
    tolerance = {"bri": BRI_TOLERANCE, "ct": CT_TOLERANCE_MIRED, "hue": HUE_TOLERANCE, "sat": SAT_TOLERANCE}
    if key == "xy":
        if not isinstance(actual, list) or len(actual) != 2:
            return False
        start = before if moving and isinstance(before, list) and len(before) == 2 else None
        return all(
            _near_number(float(a), float(t), float(start[i]) if start else None, XY_TOLERANCE)
            for i, (a, t) in enumerate(zip(actual, target, strict=True))
        )
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return False
    if key == "hue":
        distance = abs(int(actual) - int(target)) % 65536
        return min(distance, 65536 - distance) <= HUE_TOLERANCE
    start_value = float(before) if moving and isinstance(before, int | float) else None
    return _near_number(float(actual), float(target), start_value, tolerance[key])


def _near_number(actual: float, target: float, before: float | None, tolerance: float) -> bool:
    if abs(actual - target) <= tolerance:
        return True
    if before is None:
        return False
    # Mid-transition a bridge may report any value on the way from before to target.
    low, high = sorted((before, target))
    return low - tolerance <= actual <= high + tolerance


def changed_by_user(expected: Expected, state: dict[str, Any], now_s: float) -> bool:
    """Whether state clearly differs from what relaxd last set (lenient about rounding and fades)."""
    if bool(state.get("on")) != expected.on:
        return True
    if not expected.on:
        return False
    # A field the bridge does not report (colormode of some ct lights) says nothing about hands.
    if expected.colormode is not None and "colormode" in state and state["colormode"] != expected.colormode:
        return True
    moving = now_s < expected.settle_at_s
    return any(
        not _near(key, state.get(key), target, expected.before.get(key), moving)
        for key, target in expected.fields.items()
        if key in state
    )

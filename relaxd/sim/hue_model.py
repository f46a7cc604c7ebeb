"""Light models and the Hue v1 state rules (validation, colormode, the bri-1 trap) for the simulator."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

ErrorEntry = dict[str, Any]
Response = list[dict[str, Any]]

# Fields that only make sense on a light that is (or is being switched) on: error 201 otherwise.
_NEED_ON = ("bri", "hue", "sat", "xy", "ct", "effect")
_KNOWN_FIELDS = ("on", "bri", "hue", "sat", "xy", "ct", "alert", "effect", "transitiontime")
_GROUP_CT_RANGE = (153, 500)


@dataclass(frozen=True)
class LightModel:
    """A Hue product with its real capabilities."""

    type: str
    modelid: str
    productname: str
    color: bool
    ct_range: tuple[int, int] | None
    maxlumen: int = 806
    # Some bridges report some colour temperature lights without a colormode.
    reports_colormode: bool = True

    def capabilities(self) -> dict[str, Any]:
        control: dict[str, Any] = {"mindimlevel": 1000, "maxlumen": self.maxlumen}
        if self.color and self.ct_range is None:  # the older colour-only lights: gamut A
            control["colorgamuttype"] = "A"
            control["colorgamut"] = [[0.704, 0.296], [0.2151, 0.7106], [0.138, 0.08]]
        elif self.color:
            control["colorgamuttype"] = "C"
            control["colorgamut"] = [[0.6915, 0.3083], [0.17, 0.7], [0.1532, 0.0475]]
        if self.ct_range is not None:
            control["ct"] = {"min": self.ct_range[0], "max": self.ct_range[1]}
        return {
            "certified": True,
            "control": control,
            "streaming": {"renderer": self.color, "proxy": self.color},
        }

    def fields(self) -> tuple[str, ...]:
        """The state fields a command may set on this model."""
        base = ("on", "bri", "alert", "transitiontime")
        colour = ("hue", "sat", "xy", "effect") if self.color else ()
        return (*base, *colour, *(("ct",) if self.ct_range is not None else ()))


EXTENDED_COLOR = LightModel("Extended color light", "LCT015", "Hue color lamp", True, (153, 500))
COLOR_TEMPERATURE = LightModel("Color temperature light", "LTW001", "Hue white ambiance lamp", False, (153, 454))
DIMMABLE = LightModel("Dimmable light", "LWB010", "Hue white lamp", False, None)
# A colour light without colour temperature (Hue Bloom, LivingColors).
COLOR_ONLY = LightModel("Color light", "LLC011", "Hue bloom", True, None, maxlumen=120)
# A colour temperature light whose state has no colormode (as some bridges report some of them).
COLOR_TEMPERATURE_NO_MODE = LightModel(
    "Color temperature light", "LTW012", "Hue ambiance candle", False, (153, 454), reports_colormode=False
)
MODELS: tuple[LightModel, ...] = (EXTENDED_COLOR, COLOR_TEMPERATURE, DIMMABLE)
EVERY_MODEL: tuple[LightModel, ...] = (*MODELS, COLOR_ONLY, COLOR_TEMPERATURE_NO_MODE)


def ct_to_xy(ct_mired: int) -> list[float]:
    """Approximate CIE xy of a black body (Kim et al. cubic fit); good enough for a simulator."""
    kelvin = max(1667.0, min(25000.0, 1_000_000 / ct_mired))
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
    return [round(x, 4), round(y, 4)]


def error(error_type: int, address: str, description: str) -> ErrorEntry:
    return {"error": {"type": error_type, "address": address, "description": description}}


def _invalid(address: str, key: str, value: Any) -> ErrorEntry:
    return error(7, f"{address}/{key}", f"invalid value, {value}, for parameter, {key}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_value(key: str, value: Any, ct_range: tuple[int, int] | None) -> bool:
    """Whether value is valid for key (ct against ct_range when given)."""
    if key == "on":
        return isinstance(value, bool)
    if key == "alert":
        return value in ("none", "select", "lselect")
    if key == "effect":
        return value in ("none", "colorloop")
    if key == "xy":
        return isinstance(value, list) and len(value) == 2 and all(_is_number(v) and 0 <= v <= 1 for v in value)
    if not _is_int(value):
        return False
    low, high = {
        "bri": (1, 254),
        "hue": (0, 65535),
        "sat": (0, 254),
        "transitiontime": (0, 65535),
        "ct": ct_range or _GROUP_CT_RANGE,
    }[key]
    return bool(low <= value <= high)


@dataclass
class SimLight:
    """One simulated light: the bridge's view of it."""

    light_id: str
    name: str
    model: LightModel
    state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, light_id: str, name: str, model: LightModel, **state: Any) -> SimLight:
        base: dict[str, Any] = {"on": False, "bri": 254, "alert": "none"}
        if model.color:
            base.update(hue=8402, sat=140, effect="none", xy=[0.4575, 0.4099])
        if model.ct_range is not None:
            base["ct"] = 366
        if model.reports_colormode and (model.color or model.ct_range is not None):
            base["colormode"] = "ct" if model.ct_range is not None else "xy"
        base.update(mode="homeautomation", reachable=True)
        light = cls(light_id, name, model, base)
        light.force(state)
        return light

    def to_json(self) -> dict[str, Any]:
        return {
            "state": copy.deepcopy(self.state),
            "swupdate": {"state": "noupdates", "lastinstall": "2024-01-01T00:00:00"},
            "type": self.model.type,
            "name": self.name,
            "modelid": self.model.modelid,
            "manufacturername": "Signify Netherlands B.V.",
            "productname": self.model.productname,
            "capabilities": self.model.capabilities(),
            "config": {"archetype": "classicbulb", "function": "mixed", "direction": "omnidirectional"},
            "uniqueid": f"00:17:88:01:00:00:{int(self.light_id):02x}:0b-0b",
            "swversion": "1.104.2",
        }

    def force(self, fields: dict[str, Any]) -> None:
        """Set fields without the bridge's rules (initial state, hand changes after validation)."""
        for key, value in fields.items():
            if key not in self.state:
                raise ValueError(f"light {self.light_id} ({self.model.type}) has no field {key!r}")
            self.state[key] = list(value) if key == "xy" else value
        if "ct" in fields and self.model.color and "xy" not in fields:
            self.state["xy"] = ct_to_xy(int(fields["ct"]))

    def command(self, body: dict[str, Any], address: str) -> Response:
        """PUT /lights/<id>/state: validate field by field like the bridge, apply what passed."""
        allowed = self.model.fields()
        ok: dict[str, Any] = {}
        rejected: dict[str, ErrorEntry] = {}
        for key, value in body.items():
            if key not in allowed:
                rejected[key] = error(6, f"{address}/{key}", f"parameter, {key}, not available")
            elif not check_value(key, value, self.model.ct_range):
                rejected[key] = _invalid(address, key, value)
            else:
                ok[key] = value
        will_be_on = ok.get("on", self.state["on"])
        for key in ok:
            if key in _NEED_ON and not will_be_on:
                message = f"parameter, {key}, is not modifiable. Device is set to off."
                rejected[key] = error(201, f"{address}/{key}", message)
        # The bridge answers field by field in the order of the request.
        results: Response = [rejected.get(key, {"success": {f"{address}/{key}": value}}) for key, value in body.items()]
        applied = {k: v for k, v in ok.items() if will_be_on or k not in _NEED_ON}
        self.apply(applied)
        return results

    def apply(self, fields: dict[str, Any]) -> None:
        """Apply already-valid fields: colormode priority xy > ct > hs, the off-with-transition trap."""
        for key in ("on", "bri", "alert", "effect"):
            if key in fields:
                self.state[key] = fields[key]
        colour = next((k for k in ("xy", "ct", "hue", "sat") if k in fields), None)
        if colour == "xy":
            self.state["xy"] = [round(float(v), 4) for v in fields["xy"]]
        elif colour == "ct":
            self.state["ct"] = fields["ct"]
            if self.model.color:
                self.state["xy"] = ct_to_xy(fields["ct"])
        elif colour is not None:
            for key in ("hue", "sat"):
                if key in fields:
                    self.state[key] = fields[key]
        if colour is not None and self.model.reports_colormode:
            self.state["colormode"] = {"xy": "xy", "ct": "ct"}.get(colour, "hs")
        if fields.get("on") is False and fields.get("transitiontime", 0) > 0:
            # The bridge fades bri down to 1 before switching off and keeps it: the next "on"
            # without a bri comes back at 1 (the trap restore must avoid).
            self.state["bri"] = 1

    def group_apply(self, fields: dict[str, Any]) -> None:
        """A group action reaching this member: unsupported fields ignored, ct clamped to the model."""
        allowed = self.model.fields()
        mine = {k: v for k, v in fields.items() if k in allowed}
        if "ct" in mine and self.model.ct_range is not None:
            low, high = self.model.ct_range
            mine["ct"] = max(low, min(high, mine["ct"]))
        if not mine.get("on", self.state["on"]):
            mine = {k: v for k, v in mine.items() if k not in _NEED_ON}
        self.apply(mine)


def validate_group_action(body: dict[str, Any], address: str) -> tuple[Response, dict[str, Any]]:
    """PUT /groups/<id>/action: (response entries, fields that passed)."""
    results: Response = []
    ok: dict[str, Any] = {}
    for key, value in body.items():
        if key not in _KNOWN_FIELDS:
            results.append(error(6, f"{address}/{key}", f"parameter, {key}, not available"))
        elif not check_value(key, value, None):
            results.append(_invalid(address, key, value))
        else:
            ok[key] = value
            results.append({"success": {f"{address}/{key}": value}})
    return results, ok


GroupType = Literal["Room", "Zone", "LightGroup"]


@dataclass
class SimGroup:
    """A Room, Zone or LightGroup; action only mirrors the last command (as on the bridge)."""

    group_id: str
    name: str
    light_ids: list[str]
    type: GroupType = "Room"
    room_class: str = "Living room"
    action: dict[str, Any] = field(
        default_factory=lambda: {"on": False, "bri": 254, "alert": "none", "ct": 366, "colormode": "ct"}
    )

    def to_json(self, lights: dict[str, SimLight]) -> dict[str, Any]:
        members = [lights[i].state["on"] for i in self.light_ids if i in lights]
        data: dict[str, Any] = {
            "name": self.name,
            "lights": list(self.light_ids),
            "sensors": [],
            "type": self.type,
            "state": {"all_on": bool(members) and all(members), "any_on": any(members)},
            "recycle": False,
            "action": copy.deepcopy(self.action),
        }
        if self.type in ("Room", "Zone"):
            data["class"] = self.room_class
        return data

    def record_action(self, fields: dict[str, Any]) -> None:
        self.action.update({k: v for k, v in fields.items() if k != "transitiontime"})
        colour = next((k for k in ("xy", "ct", "hue", "sat") if k in fields), None)
        if colour is not None:
            self.action["colormode"] = {"xy": "xy", "ct": "ct"}.get(colour, "hs")

"""Shape checks of what a Hue bridge (or a snapshot file) says, before any of it is used."""

from __future__ import annotations

from typing import Any

# Light state fields relaxd reads, and the JSON types the v1 API gives them.
_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "on": (bool,),
    "reachable": (bool,),
    "colormode": (str,),
    "bri": (int,),
    "ct": (int,),
    "hue": (int,),
    "sat": (int,),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def state_problem(state: Any) -> str | None:
    """Why a light state (or a snapshot entry's fields) cannot be used, or None."""
    if not isinstance(state, dict):
        return "is not an object"
    for key, types in _STATE_TYPES.items():
        value = state.get(key)
        if value is None:
            continue
        if int in types and not _is_int(value):
            return f"{key} is {_shown(value)}, not a whole number"
        if not isinstance(value, types):
            return f"{key} is {_shown(value)}, not a {types[0].__name__}"
    xy = state.get("xy")
    if xy is not None and not (isinstance(xy, list) and len(xy) == 2 and all(_is_number(v) for v in xy)):
        return f"xy is {_shown(xy)}, not two numbers"
    return None


# What a light's values may be in the v1 API (ct generously: models differ), for snapshot entries.
_RANGES: dict[str, tuple[int, int]] = {"bri": (1, 254), "ct": (50, 1000), "hue": (0, 65535), "sat": (0, 254)}


def entry_problem(entry: Any) -> str | None:
    """Why a snapshot entry cannot be restored (its types, then its ranges), or None."""
    problem = state_problem(entry)
    if problem is not None:
        return problem
    for key, (low, high) in _RANGES.items():
        value = entry.get(key)
        if value is not None and not low <= value <= high:
            return f"{key} is {_shown(value)}, outside {low}..{high}"
    xy = entry.get("xy")
    if xy is not None and not all(0.0 <= v <= 1.0 for v in xy):
        return f"xy is {_shown(xy)}, outside 0..1"
    return None


def lights_problem(lights: dict[str, Any]) -> str | None:
    """Why GET /lights cannot be used (ids, names, states, capabilities), or None."""
    for light_id, light in lights.items():
        if not str(light_id).isdigit():
            return f"light id {_shown(light_id)} is not a number"
        if not isinstance(light, dict):
            return f"light {light_id} is not an object"
        if not isinstance(light.get("name", ""), str):
            return f"light {light_id} has a name that is not text"
        if "state" not in light:
            return f"light {light_id} has no state"
        problem = state_problem(light["state"])
        if problem is not None:
            return f"light {light_id}: state {problem}"
        capabilities = light.get("capabilities", {})
        control = capabilities.get("control", {}) if isinstance(capabilities, dict) else None
        if not isinstance(control, dict):
            return f"light {light_id}: capabilities are not an object"
        ct = control.get("ct")
        if isinstance(ct, dict) and not (_is_int(ct.get("min")) and _is_int(ct.get("max"))):
            return f"light {light_id}: the colour temperature range is not two whole numbers"
    return None


def groups_problem(groups: dict[str, Any]) -> str | None:
    """Why GET /groups cannot be used (ids, member lists), or None."""
    for group_id, group in groups.items():
        if not str(group_id).isdigit():
            return f"group id {_shown(group_id)} is not a number"
        if not isinstance(group, dict):
            return f"group {group_id} is not an object"
        members = group.get("lights", [])
        if not isinstance(members, list) or not all(
            isinstance(m, str | int) and not isinstance(m, bool) for m in members
        ):
            return f"group {group_id}: lights is not a list of light ids"
    return None

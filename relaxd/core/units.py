"""Human units in config and routines: durations, brightness percent, colour temperature."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from `90`, `90s`, `8m`, `1h30m`, `1h 30m 15s`; numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90s, 8m or 1h30m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        match = _DURATION_RE.match(text)
        if not text or match is None or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration; use e.g. 90s, 8m or 1h30m")
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ValueError("expected a duration like 90s, 8m or 1h30m")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """`1h30m`, `8m`, `90s` -> the shortest exact human form."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def parse_percent(value: Any) -> float:
    """Percent from `35%` or a number 0..100."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage like 35%")
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage; use e.g. 35%") from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise ValueError("expected a percentage like 35%")
    if not 0 <= number <= 100:
        raise ValueError("a percentage must be between 0% and 100%")
    return number


def parse_kelvin(value: Any) -> int:
    """Kelvin from `2200K` or a number, limited to what Hue lights can show (2000..6500 K)."""
    if isinstance(value, bool):
        raise ValueError("expected a colour temperature like 2200K")
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("K").strip()
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a colour temperature; use e.g. 2200K") from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise ValueError("expected a colour temperature like 2200K")
    if not 2000 <= number <= 6500:
        raise ValueError("a colour temperature must be between 2000K and 6500K")
    return round(number)


def percent_to_bri_254(percent: float) -> int:
    """Hue brightness 1..254 from percent (0% still means the dimmest on-state, not off)."""
    return max(1, min(254, round(percent * 254 / 100)))


def kelvin_to_mired(kelvin: int) -> int:
    """Hue `ct` is in mired (10^6 / kelvin)."""
    return round(1_000_000 / kelvin)


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
Percent = Annotated[float, BeforeValidator(parse_percent), PlainSerializer(lambda v: f"{v:g}%", return_type=str)]
Kelvin = Annotated[int, BeforeValidator(parse_kelvin), PlainSerializer(lambda v: f"{v}K", return_type=str)]

"""The built-in routines for the guide's deep breathing and its problem areas (as plain config data)."""

from __future__ import annotations

from typing import Any


def _phase(
    name: str, technique: str, duration: str, intensity: float, bri: str, kelvin: str, volume: int, **more: Any
) -> dict[str, Any]:
    """One phase as config data; `more` takes transition, ramp and breathing, and the rest are its cues."""
    transition, ramp = more.pop("transition", "20s"), more.pop("ramp", "20s")
    phase: dict[str, Any] = {
        "name": name,
        "technique": technique,
        "duration": duration,
        "intensity": intensity,
        "lights": {"brightness": bri, "color_temp": kelvin, "transition": transition},
        "music": {"volume": volume, "ramp": ramp},
    }
    breathing = more.pop("breathing", None)
    if breathing is not None:
        phase["breathing"] = breathing
    phase["cues"] = more
    return phase


# About six breaths a minute: in for 4 s, out for 6 s (the slow breathing the guide pairs with massage).
SLOW_BREATH = {"inhale": "4s", "exhale": "6s", "brightness": ["15%", "35%"], "volume_swell": 2}
# A calmer, shallower breath for the end of a massage.
CALM_BREATH = {"inhale": "4s", "exhale": "6s", "brightness": ["10%", "20%"]}

BREATHE: dict[str, Any] = {
    "description": "Guided slow breathing of about fifteen minutes: settle, six breaths a minute, a calm finish.",
    "phases": [
        _phase("settle", "rest", "3m", 0.1, "35%", "2200K", 10, ramp="30s", diffuser="on", focus="breath"),
        _phase(
            "slow_breathing",
            "breathing",
            "9m",
            0.1,
            "25%",
            "2200K",
            10,
            breathing=SLOW_BREATH,
            focus="breath",
            guide="in through the nose for 4, out through the mouth for 6",
        ),
        _phase(
            "calm_finish",
            "rest",
            "3m",
            0.1,
            "15%",
            "2000K",
            8,
            transition="30s",
            ramp="30s",
            diffuser="off",
            focus="breath",
        ),
    ],
}

# Desk stiffness: longer petrissage and friction on the upper back and shoulders.
SHOULDERS: dict[str, Any] = {
    "description": "Upper back and shoulders (desk stiffness): longer kneading and friction there, about 40 minutes.",
    "check_in_every": "10m",
    "phases": [
        _phase("settle", "rest", "3m", 0.1, "40%", "2400K", 12, focus="upper_back", table_heat="warm"),
        _phase("effleurage", "effleurage", "7m", 0.3, "35%", "2200K", 14, focus="upper_back", stroke="long gliding"),
        _phase(
            "petrissage",
            "petrissage",
            "12m",
            0.6,
            "30%",
            "2200K",
            14,
            ramp="10s",
            focus="upper_back",
            stroke="kneading the shoulders and the top of the back",
        ),
        _phase(
            "friction",
            "friction",
            "10m",
            0.8,
            "30%",
            "2300K",
            12,
            ramp="10s",
            focus="upper_back",
            stroke="circular, along the shoulder blades",
        ),
        _phase(
            "calming_effleurage",
            "effleurage",
            "8m",
            0.2,
            "15%",
            "2000K",
            8,
            transition="30s",
            ramp="30s",
            breathing=CALM_BREATH,
            focus="upper_back",
            stroke="slow gliding",
        ),
    ],
}

LOWER_BACK: dict[str, Any] = {
    "description": "The lower back: gentle, warm work beside the spine, about 35 minutes.",
    "check_in_every": "10m",
    "phases": [
        _phase("settle", "rest", "3m", 0.1, "40%", "2400K", 12, focus="lower_back", table_heat="warm"),
        _phase("effleurage", "effleurage", "8m", 0.3, "35%", "2200K", 14, focus="lower_back", stroke="long gliding"),
        _phase(
            "petrissage",
            "petrissage",
            "10m",
            0.5,
            "30%",
            "2200K",
            14,
            ramp="10s",
            focus="lower_back",
            stroke="kneading beside the spine",
        ),
        _phase(
            "friction",
            "friction",
            "8m",
            0.6,
            "30%",
            "2300K",
            12,
            ramp="10s",
            focus="lower_back",
            stroke="small circles around the hips, never on the spine",
        ),
        _phase(
            "calming_effleurage",
            "effleurage",
            "6m",
            0.2,
            "15%",
            "2000K",
            8,
            transition="30s",
            ramp="30s",
            breathing=CALM_BREATH,
            focus="lower_back",
            stroke="slow gliding",
        ),
    ],
}

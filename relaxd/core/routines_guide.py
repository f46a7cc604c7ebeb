"""The built-in routines for the guide's deep breathing and its problem areas (as plain config data)."""

from __future__ import annotations

from typing import Any


def phase_data(
    name: str,
    technique: str,
    duration: str,
    intensity: float,
    bri: str,
    kelvin: str,
    volume: int,
    *,
    transition: str = "20s",
    ramp: str = "20s",
    breathing: dict[str, Any] | None = None,
    **cues: Any,
) -> dict[str, Any]:
    """One built-in phase as config data (every built-in routine is made of these); the rest are its cues."""
    phase: dict[str, Any] = {
        "name": name,
        "technique": technique,
        "duration": duration,
        "intensity": intensity,
        "lights": {"brightness": bri, "color_temp": kelvin, "transition": transition},
        "music": {"volume": volume, "ramp": ramp},
    }
    if breathing is not None:
        phase["breathing"] = breathing
    phase["cues"] = cues
    return phase


# About six breaths a minute: in for 4 s, out for 6 s (the slow breathing the guide pairs with massage).
SLOW_BREATH = {"inhale": "4s", "exhale": "6s", "brightness": ["15%", "35%"], "volume_swell": 2}
# A calmer, shallower breath for the end of a massage.
CALM_BREATH = {"inhale": "4s", "exhale": "6s", "brightness": ["10%", "20%"]}

BREATHE: dict[str, Any] = {
    "description": "Guided slow breathing of about fifteen minutes: settle, six breaths a minute, a calm finish.",
    "phases": [
        phase_data("settle", "rest", "3m", 0.1, "35%", "2200K", 10, ramp="30s", diffuser="on", focus="breath"),
        phase_data(
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
        phase_data(
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
        phase_data("settle", "rest", "3m", 0.1, "40%", "2400K", 12, focus="upper_back", table_heat="warm"),
        phase_data(
            "effleurage", "effleurage", "7m", 0.3, "35%", "2200K", 14, focus="upper_back", stroke="long gliding"
        ),
        phase_data(
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
        phase_data(
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
        phase_data(
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
        phase_data("settle", "rest", "3m", 0.1, "40%", "2400K", 12, focus="lower_back", table_heat="warm"),
        phase_data(
            "effleurage", "effleurage", "8m", 0.3, "35%", "2200K", 14, focus="lower_back", stroke="long gliding"
        ),
        phase_data(
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
        phase_data(
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
        phase_data(
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

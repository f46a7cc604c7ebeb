"""Routines and phases, and the built-in routines from the massage technique guide."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from relaxd.core.breath import PhaseBreathing
from relaxd.core.ports import LightScene
from relaxd.core.routines_guide import BREATHE, LOWER_BACK, SHOULDERS, phase_data
from relaxd.core.units import (
    Duration,
    Kelvin,
    Percent,
    format_duration,
    kelvin_to_mired,
    percent_to_bri_254,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhaseLights(_Strict):
    """The light scene of a phase."""

    brightness: Percent = Field(description="Brightness in percent, e.g. 35%.")
    color_temp: Kelvin | None = Field(default=None, description="Colour temperature in kelvin, e.g. 2200K (warm).")
    xy: tuple[float, float] | None = Field(
        default=None, description="CIE xy colour [x, y] for colour lights; instead of color_temp."
    )
    transition: Duration = Field(default=4.0, le=3600, description="How long the lights take to fade, e.g. 20s.")

    @model_validator(mode="after")
    def _one_colour(self) -> PhaseLights:
        if self.color_temp is not None and self.xy is not None:
            raise ValueError("give either color_temp or xy, not both")
        if self.xy is not None and not all(0 <= v <= 1 for v in self.xy):
            raise ValueError("xy values must be between 0 and 1")
        return self

    def scene(self, speed: float = 1.0) -> LightScene:
        """The device-level scene; transitions shrink with the clock speed (demo, benchmarks)."""
        return LightScene(
            bri_254=percent_to_bri_254(self.brightness),
            ct_mired=kelvin_to_mired(self.color_temp) if self.color_temp is not None else None,
            xy=self.xy,
            transition_s=self.transition / speed,
        )


class PhaseMusic(_Strict):
    """The music of a phase."""

    volume: int = Field(ge=0, le=100, description="Speaker volume 0..100 (capped by the room's max_volume).")
    ramp: Duration = Field(default=10.0, le=3600, description="How long the volume takes to move there, e.g. 30s.")


class Phase(_Strict):
    """One timed phase of a routine."""

    name: str = Field(min_length=1, max_length=64, description="Phase name, published on MQTT.")
    technique: str | None = Field(
        default=None, description="Massage technique (effleurage, petrissage, ...); default: the name."
    )
    duration: Duration = Field(le=86400, description="How long the phase lasts, e.g. 8m (a day at most).")
    intensity: float = Field(default=0.5, ge=0, le=1, description="How vigorous the phase is, 0..1.")
    lights: PhaseLights | None = Field(default=None, description="Light scene; none keeps the lights.")
    music: PhaseMusic | None = Field(default=None, description="Music volume; none keeps the volume.")
    breathing: PhaseBreathing | None = Field(
        default=None,
        description="Pace the lights (and the volume) to a slow breath; the breath sets the lights' brightness, "
        "`lights` give its colour.",
    )
    cues: dict[str, Any] = Field(
        default_factory=dict, description="Free-form hints for other devices (table heat, diffuser...)."
    )

    @model_validator(mode="after")
    def _positive(self) -> Phase:
        if self.duration <= 0:
            raise ValueError("duration must be longer than 0s")
        if self.breathing is not None and self.breathing.volume_swell and self.music is None:
            raise ValueError("breathing.volume_swell needs the phase's music (the volume it swells from)")
        return self

    @property
    def technique_name(self) -> str:
        return self.technique or self.name


class Routine(_Strict):
    """An ordered list of phases."""

    description: str = Field(default="", description="What the routine is for.")
    check_in_every: Duration | None = Field(
        default=None, le=86400, description="Publish a check_in event this often during a session, e.g. 10m."
    )
    phases: list[Phase] = Field(min_length=1, description="The phases, in order.")

    @model_validator(mode="after")
    def _unique_names(self) -> Routine:
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError("phase names must be unique within a routine")
        if self.check_in_every is not None and self.check_in_every <= 0:
            raise ValueError("check_in_every must be longer than 0s")
        return self

    @property
    def duration_s(self) -> float:
        return sum(p.duration for p in self.phases)


# The arc of a classic back massage: settle, warm up with gliding strokes, knead, work tension
# points, wake the muscles with rhythm (a little brighter), then a calm, dim, quiet finish.
_CLASSIC = {
    "description": "A classic back massage of about an hour.",
    "check_in_every": "15m",
    "phases": [
        phase_data(
            "settle",
            "rest",
            "5m",
            0.1,
            "40%",
            "2400K",
            12,
            transition="20s",
            ramp="30s",
            table_heat="warm",
            diffuser="on",
        ),
        phase_data(
            "effleurage",
            "effleurage",
            "10m",
            0.3,
            "35%",
            "2200K",
            14,
            transition="20s",
            ramp="20s",
            table_heat="warm",
            stroke="long gliding",
        ),
        phase_data(
            "petrissage",
            "petrissage",
            "15m",
            0.6,
            "30%",
            "2200K",
            14,
            transition="20s",
            ramp="10s",
            table_heat="warm",
            stroke="kneading",
        ),
        phase_data(
            "friction",
            "friction",
            "12m",
            0.8,
            "30%",
            "2300K",
            12,
            transition="20s",
            ramp="10s",
            table_heat="warm",
            stroke="circular, on tension points",
        ),
        phase_data(
            "tapotement",
            "tapotement",
            "8m",
            0.7,
            "45%",
            "2700K",
            16,
            transition="10s",
            ramp="10s",
            table_heat="warm",
            stroke="rhythmic tapping",
        ),
        phase_data(
            "calming_effleurage",
            "effleurage",
            "10m",
            0.2,
            "15%",
            "2000K",
            8,
            transition="30s",
            ramp="30s",
            table_heat="low",
            diffuser="off",
            stroke="slow gliding",
        ),
    ],
}

_QUICK = {
    "description": "The same arc in about twenty minutes.",
    "check_in_every": "5m",
    "phases": [
        phase_data("settle", "rest", "2m", 0.1, "40%", "2400K", 12, transition="10s", ramp="15s", table_heat="warm"),
        phase_data(
            "effleurage", "effleurage", "4m", 0.3, "35%", "2200K", 14, transition="10s", ramp="10s", table_heat="warm"
        ),
        phase_data(
            "petrissage", "petrissage", "5m", 0.6, "30%", "2200K", 14, transition="10s", ramp="10s", table_heat="warm"
        ),
        phase_data(
            "friction", "friction", "3m", 0.8, "30%", "2300K", 12, transition="10s", ramp="10s", table_heat="warm"
        ),
        phase_data(
            "tapotement", "tapotement", "2m", 0.7, "45%", "2700K", 16, transition="5s", ramp="5s", table_heat="warm"
        ),
        phase_data(
            "calming_effleurage",
            "effleurage",
            "4m",
            0.2,
            "15%",
            "2000K",
            8,
            transition="20s",
            ramp="20s",
            table_heat="low",
        ),
    ],
}


def builtin_routines() -> dict[str, Routine]:
    """The built-in routines, freshly built (routines are immutable, but the dict is the caller's)."""
    data = {"classic": _CLASSIC, "quick": _QUICK, "breathe": BREATHE, "shoulders": SHOULDERS, "lower_back": LOWER_BACK}
    return {name: Routine.model_validate(routine) for name, routine in data.items()}


def describe(routines: dict[str, Routine]) -> str:
    """Human listing of routines with phases, durations and totals (`relaxd routines`)."""
    lines: list[str] = []
    for name, routine in routines.items():
        total = format_duration(routine.duration_s)
        lines.append(f"{name}  ({total}, {len(routine.phases)} phases)  {routine.description}".rstrip())
        for i, phase in enumerate(routine.phases, 1):
            scene = ""
            if phase.lights is not None:
                colour = f" {phase.lights.color_temp}K" if phase.lights.color_temp else ""
                bri = "" if phase.breathing else f" {phase.lights.brightness:g}%"
                scene = f"lights{bri}{colour}"
            if phase.music is not None:
                scene += f"{', ' if scene else ''}volume {phase.music.volume}"
            if phase.breathing is not None:
                scene += f"{', ' if scene else ''}{phase.breathing.describe()}"
            if "focus" in phase.cues:
                scene += f"{', ' if scene else ''}focus {phase.cues['focus']}"
            lines.append(
                f"  {i}. {phase.name:<20} {format_duration(phase.duration):>6}  "
                f"{phase.technique_name:<11} intensity {phase.intensity:.1f}  {scene}".rstrip()
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

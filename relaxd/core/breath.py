"""A phase's breathing: its config model and the plan of its edges on the clock's monotonic scale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from relaxd.core.units import Duration, Percent, format_duration, percent_to_bri_254

Step = Literal["inhale", "hold", "exhale", "rest"]
# The light edges of a breath: the lights rise over the inhale and fall over the exhale.
LIGHT_STEPS: tuple[Step, ...] = ("inhale", "exhale")


class PhaseBreathing(BaseModel):
    """The breath a phase paces the room to: the lights rise over the inhale and fall over the exhale
    (transitions as long as each), held between; repeated until the phase ends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inhale: Duration = Field(ge=1, le=60, description="Breathing in: the lights rise this long, e.g. 4s.")
    hold: Duration = Field(default=0.0, le=60, description="The breath held at the top after the inhale, e.g. 0s.")
    exhale: Duration = Field(ge=1, le=60, description="Breathing out: the lights fall this long, e.g. 6s.")
    rest: Duration = Field(default=0.0, le=60, description="The pause at the bottom after the exhale, e.g. 0s.")
    brightness: tuple[Percent, Percent] = Field(
        description="The lights' brightness at the bottom and at the top of the breath, e.g. [20%, 35%]."
    )
    volume_swell: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Volume steps the music rises with each inhale (never above max_volume); needs the phase's music.",
    )

    @model_validator(mode="after")
    def _rises(self) -> PhaseBreathing:
        low, high = self.brightness
        if low >= high:
            raise ValueError("brightness is [low, high]: the top of the breath must be brighter than its bottom")
        return self

    @property
    def cycle_s(self) -> float:
        return self.inhale + self.hold + self.exhale + self.rest

    @property
    def per_minute(self) -> float:
        return 60.0 / self.cycle_s

    def steps(self) -> list[tuple[Step, float]]:
        """The steps of one breath that take time, in order (a hold or rest of 0 s is none)."""
        steps: list[tuple[Step, float]] = [
            ("inhale", self.inhale),
            ("hold", self.hold),
            ("exhale", self.exhale),
            ("rest", self.rest),
        ]
        return [(step, seconds) for step, seconds in steps if seconds > 0]

    def bri_254(self, step: Step) -> int:
        """Where the lights go in a light step (the top for the inhale, the bottom for the exhale)."""
        low, high = self.brightness
        return percent_to_bri_254(high if step == "inhale" else low)

    def describe(self) -> str:
        timing = f"{format_duration(self.inhale)} in"
        if self.hold:
            timing += f", {format_duration(self.hold)} held"
        timing += f", {format_duration(self.exhale)} out"
        if self.rest:
            timing += f", {format_duration(self.rest)} rest"
        low, high = self.brightness
        swell = f", volume +{self.volume_swell}" if self.volume_swell else ""
        return f"breathing {timing} ({self.per_minute:.3g}/min) {low:g}-{high:g}%{swell}"


@dataclass(frozen=True)
class Edge:
    """One step of the breath as planned: it begins at `at_s` (clock monotonic) and lasts duration_s."""

    step: Step
    cycle: int
    index: int  # the edge's number in the plan (cycle * steps + step)
    at_s: float
    duration_s: float

    @property
    def moves_lights(self) -> bool:
        return self.step in LIGHT_STEPS


class BreathPlan:
    """The edges of a breath from an anchor; a pause moves the anchor, so no edge drifts."""

    def __init__(self, breathing: PhaseBreathing, anchor_s: float) -> None:
        self.breathing = breathing
        self.anchor_s = anchor_s
        self._steps = breathing.steps()
        starts, at = [], 0.0
        for _, seconds in self._steps:
            starts.append(at)
            at += seconds
        self._starts = starts

    @property
    def steps_per_cycle(self) -> int:
        return len(self._steps)

    def edge(self, index: int) -> Edge:
        cycle, k = divmod(index, len(self._steps))
        step, seconds = self._steps[k]
        return Edge(step, cycle, index, self.anchor_s + cycle * self.breathing.cycle_s + self._starts[k], seconds)

    def light_edges(self, cycle: int, from_index: int = 0) -> list[Edge]:
        """The cycle's light edges from edge from_index on."""
        first = cycle * len(self._steps)
        edges = [self.edge(first + k) for k in range(len(self._steps))]
        return [e for e in edges if e.moves_lights and e.index >= from_index]

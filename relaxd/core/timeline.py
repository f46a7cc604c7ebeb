"""A running session's timeline and the payload fields derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from relaxd.core.events import RoomState, iso_utc
from relaxd.core.ports import Clock
from relaxd.core.routines import Phase, Routine


def wall(clock: Clock, mono: float) -> datetime:
    """The wall-clock time of a point on the clock's monotonic scale."""
    return clock.now() + timedelta(seconds=mono - clock.monotonic())


@dataclass
class Session:
    """One session of a routine; deadlines are anchored to start_mono so they never drift."""

    session_id: str
    routine_name: str
    routine: Routine
    start_mono: float
    started_at: datetime
    phase_index: int = 0
    phase_started_mono: float = 0.0  # when the current phase really began (not moved by pauses)
    offset_s: float = 0.0  # pauses, extends and skips move every later deadline at once
    paused_at: float | None = None
    next_check_in: float | None = None
    ended_at: datetime | None = None  # when the session really ended (stopped, finished, crashed)

    def phase_end(self, index: int) -> float:
        return self.start_mono + sum(p.duration for p in self.routine.phases[: index + 1]) + self.offset_s

    @property
    def phase(self) -> Phase:
        return self.routine.phases[self.phase_index]

    @property
    def is_last_phase(self) -> bool:
        return self.phase_index + 1 >= len(self.routine.phases)

    @property
    def end(self) -> float:
        return self.phase_end(len(self.routine.phases) - 1)

    def enter(self, index: int, now_mono: float) -> None:
        self.phase_index = index
        self.phase_started_mono = now_mono

    def pause(self, now_mono: float) -> None:
        self.paused_at = now_mono

    def resume(self, now_mono: float) -> None:
        """Every later deadline moves by the time held; the phase's real start does not."""
        assert self.paused_at is not None
        held = now_mono - self.paused_at
        self.offset_s += held
        if self.next_check_in is not None:
            self.next_check_in += held
        self.paused_at = None

    def skip(self, now_mono: float) -> None:
        """The current phase ends now: what was left of it comes off every later deadline."""
        self.offset_s -= self.phase_end(self.phase_index) - now_mono

    def extend(self, minutes: float) -> None:
        self.offset_s += minutes * 60

    def due_phase(self, now_mono: float) -> int | None:
        """The phase the timeline says it is, when that is past the current one (a late wake-up
        lands there at once); None when the current phase goes on; len(phases) when all are done."""
        if now_mono < self.phase_end(self.phase_index):
            return None
        index = self.phase_index + 1
        while index < len(self.routine.phases) and now_mono >= self.phase_end(index):
            index += 1
        return index

    def check_in_due(self, now_mono: float) -> bool:
        """True (once) when a check-in is due; the next one is then scheduled."""
        if self.next_check_in is None or now_mono < self.next_check_in:
            return False
        every = self.routine.check_in_every or 0.0
        while self.next_check_in <= now_mono:
            self.next_check_in += every
        return True

    def session_fields(
        self, clock: Clock, *, paused: bool, reason: str | None = None, ended: bool = False
    ) -> dict[str, Any]:
        # While paused the end is unknown (it moves on resume); once ended, it is when it ended,
        # also in the events of the restore that follows.
        if ended and self.ended_at is None:
            self.ended_at = clock.now()
        if self.ended_at is not None:
            ends = iso_utc(self.ended_at)
        else:
            ends = None if paused else iso_utc(wall(clock, self.end))
        return {
            "session_id": self.session_id,
            "routine": self.routine_name,
            "phase_count": len(self.routine.phases),
            "session_ends_at": ends,
            "reason": reason,
        }

    def phase_fields(self, clock: Clock, *, paused: bool) -> dict[str, Any]:
        phase = self.phase
        ends = None if paused else iso_utc(wall(clock, self.phase_end(self.phase_index)))
        return {
            **self.session_fields(clock, paused=paused),
            "phase": phase.name,
            "phase_index": self.phase_index,
            "technique": phase.technique_name,
            "intensity": phase.intensity,
            "cues": phase.cues,
            "phase_ends_at": ends,
        }

    def fill_state(self, state: RoomState, clock: Clock, *, running: bool) -> None:
        state.session_id = self.session_id
        state.routine = self.routine_name
        state.phase = self.phase.name
        state.phase_index = self.phase_index
        state.phase_count = len(self.routine.phases)
        state.phase_started_at = iso_utc(wall(clock, self.phase_started_mono))
        state.phase_ends_at = iso_utc(wall(clock, self.phase_end(self.phase_index))) if running else None
        state.session_started_at = iso_utc(self.started_at)
        state.session_ends_at = iso_utc(wall(clock, self.end)) if running else None

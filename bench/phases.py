"""phase_started events against the plan the daemon computed for them (phase_ends_at minus duration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.common import ms, pct
from bench.harness import iso_to_wall

# The daemon's stamps (`at`, `phase_ends_at`) are ISO 8601 with milliseconds, cut (not rounded):
# a plan read from them is up to 1 ms early, so an error is up to 1 ms too large, never too small.
STAMP_RESOLUTION_MS = 1.0


@dataclass(frozen=True)
class PhaseStart:
    """One phase_started event as a subscriber in a process of its own received it."""

    room: str
    session_id: str
    index: int
    received_s: float  # time.monotonic() at the subscriber (the same host clock as ours)
    planned_wall_s: float  # session start + the durations of the phases before, as the daemon planned it
    stamped_wall_s: float  # the event's own `at`
    previous_end_wall_s: float | None  # phase_ends_at of the phase before (the same plan, seen earlier)

    def error_s(self, wall_offset_s: float) -> float:
        """Received minus planned: what a follower of the events sees."""
        return self.received_s + wall_offset_s - self.planned_wall_s

    @property
    def stamped_error_s(self) -> float:
        """The daemon's own stamp minus planned: its scheduling, without the publish and the delivery."""
        return self.stamped_wall_s - self.planned_wall_s


def phase_starts(records: list[tuple[float, str, Any]], durations_s: list[float]) -> list[PhaseStart]:
    """The first phase_started of each (room, session, phase) in the records, with its plan.

    Plan of phase k = its `phase_ends_at` - duration k: the daemon's session start (the instant the
    snapshot was saved and the timeline began) + the durations of phases 0..k-1, converted to the
    wall clock by the daemon when it emitted the event."""
    seen: dict[tuple[str, str, int], PhaseStart] = {}
    ends: dict[tuple[str, str, int], float] = {}
    for at_s, topic, data in sorted(records, key=lambda r: r[0]):
        if not isinstance(data, dict) or data.get("event") != "phase_started" or not data.get("phase_ends_at"):
            continue
        room, session, index = topic.split("/")[1], str(data.get("session_id")), int(data["phase_index"])
        key = (room, session, index)
        if key in seen:
            continue
        end_wall_s = iso_to_wall(str(data["phase_ends_at"]))
        ends[key] = end_wall_s
        seen[key] = PhaseStart(
            room,
            session,
            index,
            at_s,
            end_wall_s - durations_s[index],
            iso_to_wall(str(data["at"])),
            ends.get((room, session, index - 1)),
        )
    return sorted(seen.values(), key=lambda p: (p.room, p.index))


def summary(starts: list[PhaseStart], wall_offset_s: float) -> dict[str, Any]:
    """Worst, p99 and p50 of |error| (received and stamped), per phase, and how the two plans agree."""
    received = [abs(p.error_s(wall_offset_s)) for p in starts]
    stamped = [abs(p.stamped_error_s) for p in starts]
    gaps = [abs(p.planned_wall_s - p.previous_end_wall_s) for p in starts if p.previous_end_wall_s is not None]
    per_phase: dict[int, float] = {}
    for p in starts:
        per_phase[p.index] = max(per_phase.get(p.index, 0.0), abs(p.error_s(wall_offset_s)))
    worst = max(starts, key=lambda p: abs(p.error_s(wall_offset_s)), default=None)
    return {
        "n": len(starts),
        "worst_ms": ms(max(received)) if received else None,
        "p99_ms": ms(pct(received, 99)) if received else None,
        "p50_ms": ms(pct(received, 50)) if received else None,
        "stamped_worst_ms": ms(max(stamped)) if stamped else None,
        "stamped_p50_ms": ms(pct(stamped, 50)) if stamped else None,
        # publish, broker and delivery: arrival minus the event's own stamp
        "after_stamp_worst_ms": ms(max(p.error_s(wall_offset_s) - p.stamped_error_s for p in starts))
        if starts
        else None,
        "worst_ms_by_phase": {k: ms(v) for k, v in sorted(per_phase.items())},
        "worst_at": f"{worst.room} phase {worst.index + 1}" if worst is not None else None,
        # phase_ends_at of phase k-1 and the plan of phase k from phase k's own event: the same instant
        "plans_disagree_by_max_ms": ms(max(gaps)) if gaps else None,
        "over_20ms": sum(e > 0.020 for e in received),
    }

"""Recurring sessions as data: schedules, their ids, the misfire policy and the ports they need."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Literal, Protocol

from relaxd.core.events import iso_utc
from relaxd.core.schedule_config import ScheduleConfig

Origin = Literal["config", "runtime"]
# Counting missed runs stops here: a daemon down for a year with a schedule every minute must not
# spend its start-up enumerating half a million fire times.
MAX_COUNTED_MISSES = 1000


class FireTimes(Protocol):
    """Computes when a schedule fires (APScheduler's triggers in production)."""

    def check(self, spec: ScheduleConfig) -> None:
        """Raise ValueError (one readable line) when the schedule can never be computed or never fires."""
        ...

    def next_after(self, spec: ScheduleConfig, after: datetime) -> datetime | None:
        """The first fire time strictly after `after` (aware), as aware UTC; None when there is none.

        An `every` schedule must have `starting` set (the scheduler resolves the default first).
        """
        ...


@dataclass
class Schedule:
    """One schedule: its id, where it came from, and what it asks for (every's `starting` resolved)."""

    id: str
    origin: Origin
    spec: ScheduleConfig
    created_at: datetime | None = None  # run-time schedules only

    def view(self, tz: tzinfo, next_at: datetime | None, problem: str | None = None) -> dict[str, Any]:
        """The JSON a `schedule/list` or `schedule/add` reply carries for this schedule."""
        data: dict[str, Any] = {"id": self.id, "origin": self.origin, **spec_data(self.spec)}
        if self.created_at is not None:
            data["created_at"] = iso_utc(self.created_at)
        data["next_at"] = iso_utc(next_at)
        data["next_local"] = next_at.astimezone(tz).isoformat(timespec="minutes") if next_at else None
        if problem is not None:
            data["problem"] = problem
        return data


@dataclass
class ScheduleBook:
    """What lives in state_dir: run-time schedules and the bookkeeping of every schedule."""

    runtime: list[Schedule] = field(default_factory=list)
    # Up to when each schedule's fire times have been dealt with (fired or reported missed).
    checked: dict[str, datetime] = field(default_factory=dict)
    # The first date of config `every` schedules without `starting`, fixed when first seen, so that
    # "every 2 weeks" keeps its weeks across restarts instead of restarting from each day of start.
    anchors: dict[str, date] = field(default_factory=dict)
    # Records this version cannot read, written back as they were rather than silently dropped.
    unreadable: list[dict[str, Any]] = field(default_factory=list)


class ScheduleStore(Protocol):
    """Persistent ScheduleBook: written atomically and durably, as data (no pickled callables)."""

    async def load(self) -> ScheduleBook:
        """The saved book, or an empty one when there is none (or it is unreadable: see the log)."""
        ...

    async def save(self, book: ScheduleBook) -> None:
        """Write atomically and durably (fsync); raises OSError when that is impossible."""
        ...


def spec_data(spec: ScheduleConfig) -> dict[str, Any]:
    """The spec as JSON data with weekdays normalised (mon..sun) and unset keys left out."""
    data: dict[str, Any] = spec.model_dump(mode="json", exclude_none=True)
    if spec.on is not None:
        data["on"] = spec.weekdays()
    return data


def spec_key(spec: ScheduleConfig) -> str:
    """A canonical text of what the schedule asks for: equal keys mean duplicate schedules."""
    return json.dumps(spec_data(spec), sort_keys=True, separators=(",", ":"))


def config_ids(specs: list[ScheduleConfig]) -> list[str]:
    """Stable ids of config schedules, from their content: the same entry gets the same id at every
    start (so its bookkeeping survives restarts and reordering); an exact repeat gets a suffix."""
    ids: list[str] = []
    for spec in specs:
        base = "cfg-" + hashlib.sha256(spec_key(spec).encode()).hexdigest()[:10]
        schedule_id, n = base, 1
        while schedule_id in ids:
            n += 1
            schedule_id = f"{base}-{n}"
        ids.append(schedule_id)
    return ids


def new_runtime_id() -> str:
    return "rt-" + uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class Due:
    """What to do about the fire times of one schedule between its last check and now."""

    start_at: datetime | None = None  # the run to start now (at most one)
    late_s: float = 0.0
    coalesced: int = 0  # earlier runs inside the grace time folded into this start
    missed_count: int = 0  # runs older than the grace time: reported, not started
    first_missed: datetime | None = None
    last_missed: datetime | None = None

    @property
    def nothing(self) -> bool:
        return self.start_at is None and self.missed_count == 0


def due_runs(fire_times: FireTimes, spec: ScheduleConfig, checked: datetime, now: datetime, grace_s: float) -> Due:
    """The misfire policy for fire times in (checked, now]: the latest one no older than grace_s starts
    (late); older ones are missed. Only one session starts however many runs fell due."""
    horizon = now - timedelta(seconds=grace_s)
    missed: list[datetime] = []
    in_grace: list[datetime] = []
    moment = fire_times.next_after(spec, checked)
    while moment is not None and moment <= now:
        if moment < horizon:
            if len(missed) >= MAX_COUNTED_MISSES:
                # Stop counting; go straight to the runs that may still start.
                moment = fire_times.next_after(spec, horizon - timedelta(microseconds=1))
                continue
            missed.append(moment)
        else:
            in_grace.append(moment)
        moment = fire_times.next_after(spec, moment)
    start_at = in_grace[-1] if in_grace else None
    return Due(
        start_at=start_at,
        late_s=(now - start_at).total_seconds() if start_at else 0.0,
        coalesced=max(0, len(in_grace) - 1),
        missed_count=len(missed),
        first_missed=missed[0] if missed else None,
        last_missed=missed[-1] if missed else None,
    )


_DAY_NAMES = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun"}


def describe(view: dict[str, Any]) -> str:
    """One human line for a schedule view (what `relaxd schedule list` prints)."""
    if view.get("cron"):
        when = f"cron {view['cron']!r}"
    elif view.get("once"):
        when = f"once {view['once']}"
    else:
        days = ",".join(_DAY_NAMES.get(d, d) for d in view.get("on") or [])
        when = f"every {view.get('every')}" + (f" on {days}" if days else "") + f" at {view.get('at')}"
        if view.get("starting"):
            when += f" from {view['starting']}"
    routine = view.get("routine") or "(room's routine)"
    if view.get("problem"):
        nxt = f"inactive: {view['problem']}"
    else:
        nxt = f"next {view['next_local']}" if view.get("next_local") else "no further runs"

    return f"{view.get('id')}  {view.get('room')}  {routine}  {when}  [{view.get('origin')}]  {nxt}"

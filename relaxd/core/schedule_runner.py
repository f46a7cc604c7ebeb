"""The schedule runner: starts due sessions in the rooms, keeps next_session_at, serves schedule requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from pydantic import ValidationError

from relaxd.core.config import ScheduleConfig
from relaxd.core.configfile import validation_lines
from relaxd.core.events import Command, iso_utc
from relaxd.core.ports import Clock
from relaxd.core.schedules import (
    Due,
    FireTimes,
    Schedule,
    ScheduleBook,
    ScheduleStore,
    config_ids,
    due_runs,
    new_runtime_id,
    spec_key,
)

log = logging.getLogger(__name__)
# Sleep at most this long, so that a wall clock set forward (NTP, suspend) is noticed soon.
MAX_SLEEP_S = 60.0
# A fired or missed run-time `once` stays listed this long, then it is dropped from the store.
ONCE_KEEP_S = 24 * 3600.0


class RoomPort(Protocol):
    """What the runner needs of a room's engine (RoomEngine); each only queues an input."""

    def submit(self, command: Command) -> None: ...

    def set_next_session_at(self, moment: datetime | None) -> None: ...

    def report(self, name: str, fields: dict[str, Any]) -> None: ...


class ScheduleRunner:
    """Config and run-time schedules; fires them through the rooms' engines (which own the events)."""

    def __init__(
        self,
        config_specs: list[ScheduleConfig],
        rooms: Mapping[str, RoomPort],
        routines: Collection[str],
        *,
        fire_times: FireTimes,
        store: ScheduleStore,
        clock: Clock,
        tz: tzinfo,
        grace_s: float,
    ) -> None:
        self.config_specs = list(config_specs)
        self.rooms = rooms
        self.routines = set(routines)
        self.fire_times = fire_times
        self.store = store
        self.clock = clock
        self.tz = tz
        self.grace_s = grace_s
        self.wake = asyncio.Event()
        self._lock = asyncio.Lock()  # book changes and their saves, one at a time
        self._book = ScheduleBook()
        self._schedules: dict[str, Schedule] = {}
        self._problems: dict[str, str] = {}
        self._next: dict[str, datetime | None] = {}
        self._published: dict[str, datetime | None] = {}
        self._loaded = False

    # --- start-up and the loop ----------------------------------------------------------------

    async def load(self) -> None:
        """Read state_dir, rebuild the config schedules, then deal with runs missed while down."""
        async with self._lock:
            now = self.clock.now()
            self._book = await self.store.load()
            today = now.astimezone(self.tz).date()
            self._schedules = {}
            for schedule_id, spec in zip(config_ids(self.config_specs), self.config_specs, strict=True):
                if spec.every is not None and spec.starting is None:
                    anchor = self._book.anchors.setdefault(schedule_id, today)
                    spec = spec.model_copy(update={"starting": anchor})
                self._schedules[schedule_id] = Schedule(schedule_id, "config", spec)
            for schedule in self._book.runtime:
                self._schedules.setdefault(schedule.id, schedule)
            # Bookkeeping of schedules that left the config goes; new ones start counting now.
            self._book.checked = {k: v for k, v in self._book.checked.items() if k in self._schedules}
            self._book.anchors = {k: v for k, v in self._book.anchors.items() if k in self._schedules}
            for schedule_id, schedule in self._schedules.items():
                self._book.checked.setdefault(schedule_id, schedule.created_at or now)
                self._refresh(schedule_id)
            self._loaded = True
            await self._save()
        log.info("%d schedule(s) loaded (%d from the config)", len(self._schedules), len(self.config_specs))
        await self.tick()

    async def run(self) -> None:
        """The runner's task: fire what is due, sleep until the next fire time or a change."""
        while True:
            try:
                wait_s = await self.tick()
            except Exception:  # the runner must outlive a bug in one schedule
                log.exception("schedule runner failed; trying again in %.0f s", MAX_SLEEP_S)
                wait_s = MAX_SLEEP_S
            sleeper = asyncio.ensure_future(self.clock.sleep(wait_s))
            woken = asyncio.ensure_future(self.wake.wait())
            try:
                await asyncio.wait([sleeper, woken], return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()
            self.wake.clear()

    async def tick(self) -> float:
        """Deal with every schedule due by now; the seconds until the next fire time (capped)."""
        async with self._lock:
            now = self.clock.now()
            changed = False
            dues: list[tuple[Schedule, Due]] = []
            for schedule_id, schedule in list(self._schedules.items()):
                moment = self._next.get(schedule_id)
                if moment is None or moment > now:
                    continue
                due = due_runs(self.fire_times, schedule.spec, self._book.checked[schedule_id], now, self.grace_s)
                # Saved before the start is submitted: a crash in between loses this run rather than
                # starting it twice (a surprise second session is worse than a missed one).
                self._book.checked[schedule_id] = now
                self._next[schedule_id] = self.fire_times.next_after(schedule.spec, now)
                changed = True
                dues.append((schedule, due))
            changed = self._prune_once(now) or changed
            if changed:
                await self._save()
            for schedule, due in dues:
                self._dispatch(schedule, due)  # only queues into the room's engine
            self._publish_next()
            upcoming = [m for m in self._next.values() if m is not None]
            if not upcoming:
                return MAX_SLEEP_S
            return min(MAX_SLEEP_S, max(0.0, (min(upcoming) - now).total_seconds()))

    def _dispatch(self, schedule: Schedule, due: Due) -> None:
        spec = schedule.spec
        room = self.rooms[spec.room]
        if due.missed_count:
            log.warning(
                "schedule %s (room %s): %d run(s) missed, the last at %s",
                schedule.id,
                spec.room,
                due.missed_count,
                iso_utc(due.last_missed),
            )
            room.report(
                "schedule_missed",
                {
                    "reason": "too_late",
                    "schedule_id": schedule.id,
                    "routine": spec.routine,
                    "details": {
                        "missed_count": due.missed_count,
                        "first_missed": iso_utc(due.first_missed),
                        "last_missed": iso_utc(due.last_missed),
                        "grace_s": self.grace_s,
                    },
                },
            )
        if due.start_at is not None:
            details: dict[str, Any] = {"scheduled_for": iso_utc(due.start_at), "late_s": round(due.late_s, 3)}
            if due.coalesced:
                details["coalesced"] = due.coalesced
            log.info("schedule %s fires in room %s (%.1f s late)", schedule.id, spec.room, due.late_s)
            room.submit(
                Command(
                    action="start",
                    routine=spec.routine,
                    source="schedule",
                    schedule_id=schedule.id,
                    schedule_details=details,
                )
            )

    # --- requests ------------------------------------------------------------------------------

    async def handle(self, verb: str, request: dict[str, Any]) -> Any:
        """Answer `schedule/add|list|remove`; ValueError with a reason when the request is refused."""
        if not self._loaded:
            raise ValueError("schedules are still loading; try again")
        fields = {k: v for k, v in request.items() if k != "transaction"}
        if verb == "schedule/add":
            return await self.add(fields)
        if verb == "schedule/list":
            room = fields.pop("room", None)
            if fields:
                raise ValueError(f"unknown field(s) {', '.join(sorted(fields))}; list takes room")
            return {"timezone": str(self.tz), "schedules": self.list(room)}
        if verb == "schedule/remove":
            schedule_id = fields.pop("id", None)
            if not isinstance(schedule_id, str) or fields:
                raise ValueError('remove takes {"id": "<schedule id>"} and nothing else')
            return await self.remove(schedule_id)
        raise ValueError(f"unknown request {verb!r}; known: schedule/add, schedule/list, schedule/remove")

    async def add(self, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            spec = ScheduleConfig.model_validate(fields)
        except ValidationError as exc:
            raise ValueError("; ".join(line.removeprefix("(top level): ") for line in validation_lines(exc))) from None
        now = self.clock.now()
        if spec.every is not None and spec.starting is None:
            spec = spec.model_copy(update={"starting": now.astimezone(self.tz).date()})
        problem = self._problem(spec)
        if problem is not None:
            raise ValueError(problem)
        if self.fire_times.next_after(spec, now) is None:
            raise ValueError(f"once: {spec.once} ({self.tz}) is not in the future")
        async with self._lock:
            key = spec_key(spec)
            for other in self._schedules.values():
                if spec_key(other.spec) == key:
                    raise ValueError(f"the same schedule exists already: {other.id}")
            schedule = Schedule(new_runtime_id(), "runtime", spec, created_at=now)
            self._book.runtime.append(schedule)
            self._book.checked[schedule.id] = now
            try:
                await self.store.save(self._book)
            except OSError as exc:
                self._book.runtime.remove(schedule)
                del self._book.checked[schedule.id]
                raise ValueError(f"cannot save the schedule in the state directory: {exc}") from None
            self._schedules[schedule.id] = schedule
            self._refresh(schedule.id)
            self._publish_next()
            view = self._view(schedule.id)
        log.info("schedule %s added: %s", schedule.id, key)
        self.wake.set()
        return view

    def list(self, room: str | None = None) -> list[dict[str, Any]]:
        if room is not None and room not in self.rooms:
            raise ValueError(f"unknown room {room!r}")
        return [self._view(i) for i, s in self._schedules.items() if room is None or s.spec.room == room]

    async def remove(self, schedule_id: str) -> dict[str, Any]:
        async with self._lock:
            schedule = self._schedules.get(schedule_id)
            if schedule is None:
                raise ValueError(f"unknown schedule id {schedule_id!r}")
            if schedule.origin == "config":
                raise ValueError(f"schedule {schedule_id} comes from the config file; remove it there")
            view = self._view(schedule_id)
            self._book.runtime.remove(schedule)
            checked = self._book.checked.pop(schedule_id, None)
            try:
                await self.store.save(self._book)
            except OSError as exc:
                self._book.runtime.append(schedule)
                if checked is not None:
                    self._book.checked[schedule_id] = checked
                raise ValueError(f"cannot save the schedules in the state directory: {exc}") from None
            self._forget(schedule_id)
            self._publish_next()
        log.info("schedule %s removed", schedule_id)
        self.wake.set()
        return view

    # --- helpers (called with the lock held) --------------------------------------------------

    def _problem(self, spec: ScheduleConfig) -> str | None:
        if spec.room not in self.rooms:
            return f"room: unknown room {spec.room!r}; known: {', '.join(sorted(self.rooms))}"
        if spec.routine is not None and spec.routine not in self.routines:
            return f"routine: unknown routine {spec.routine!r}; known: {', '.join(sorted(self.routines))}"
        try:
            self.fire_times.check(spec)
        except ValueError as exc:
            return f"cron: {exc}" if spec.cron is not None else str(exc)
        return None

    def _refresh(self, schedule_id: str) -> None:
        schedule = self._schedules[schedule_id]
        problem = self._problem(schedule.spec)
        if problem is not None:
            log.error("schedule %s is inactive: %s", schedule_id, problem)
            self._problems[schedule_id] = problem
            self._next[schedule_id] = None
        else:
            self._problems.pop(schedule_id, None)
            self._next[schedule_id] = self.fire_times.next_after(schedule.spec, self._book.checked[schedule_id])

    def _forget(self, schedule_id: str) -> None:
        self._schedules.pop(schedule_id, None)
        self._next.pop(schedule_id, None)
        self._problems.pop(schedule_id, None)

    def _prune_once(self, now: datetime) -> bool:
        keep_from = now - timedelta(seconds=ONCE_KEEP_S)
        old = [
            s
            for s in self._book.runtime
            if s.spec.once is not None and self.fire_times.next_after(s.spec, keep_from) is None
        ]
        for schedule in old:
            log.info("run-time schedule %s (once %s) is past and dropped", schedule.id, schedule.spec.once)
            self._book.runtime.remove(schedule)
            self._book.checked.pop(schedule.id, None)
            self._forget(schedule.id)
        return bool(old)

    async def _save(self) -> None:
        try:
            await self.store.save(self._book)
        except OSError as exc:
            # Keep running: schedules still fire; only what was missed after a restart is less exact.
            log.error("cannot save the schedule bookkeeping in the state directory: %s", exc)

    def _view(self, schedule_id: str) -> dict[str, Any]:
        return self._schedules[schedule_id].view(self.tz, self._next.get(schedule_id), self._problems.get(schedule_id))

    def _publish_next(self) -> None:
        soonest: dict[str, datetime | None] = dict.fromkeys(self.rooms)
        for schedule_id, moment in self._next.items():
            room = self._schedules[schedule_id].spec.room
            if moment is not None and room in soonest:
                current = soonest[room]
                soonest[room] = moment if current is None else min(current, moment)
        for room, moment in soonest.items():
            if room not in self._published or self._published[room] != moment:
                self._published[room] = moment
                self.rooms[room].set_next_session_at(moment)

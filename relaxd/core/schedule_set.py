"""The schedules a daemon has (config and run-time), their next times and problems, and the requests on them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from pydantic import ValidationError

from relaxd.core.configfile import validation_lines
from relaxd.core.events import Command, excerpt
from relaxd.core.ports import Clock
from relaxd.core.schedule_config import ScheduleConfig
from relaxd.core.schedules import FireTimes, Schedule, ScheduleBook, ScheduleStore, new_runtime_id, spec_key

log = logging.getLogger(__name__)
# A fired or missed run-time `once` stays listed this long, then it is dropped from the store.
ONCE_KEEP_S = 24 * 3600.0
# Run-time schedules a daemon keeps (added over MQTT): a burst of adds must not grow the file for ever.
MAX_RUNTIME_SCHEDULES = 100


class RoomPort(Protocol):
    """What the runner needs of a room's engine (RoomEngine); each only queues an input."""

    def submit(self, command: Command) -> None: ...

    def set_next_session_at(self, moment: datetime | None) -> None: ...

    def report(self, name: str, fields: dict[str, Any]) -> None: ...


class ScheduleSet:
    """Every schedule with its bookkeeping; `schedule/add|list|remove` change it (ScheduleRunner fires it)."""

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
                raise ValueError(f"unknown field(s) {excerpt(', '.join(sorted(map(str, fields))))}; list takes room")
            return {"timezone": str(self.tz), "schedules": self.list(room)}
        if verb == "schedule/remove":
            schedule_id = fields.pop("id", None)
            if not isinstance(schedule_id, str) or fields:
                raise ValueError('remove takes {"id": "<schedule id>"} and nothing else')
            return await self.remove(schedule_id[:64])
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
        try:
            next_at = self.fire_times.next_after(spec, now)
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"its next time cannot be computed ({exc})") from None
        if next_at is None:
            raise ValueError(f"once: {spec.once} ({self.tz}) is not in the future")
        async with self._lock:
            if len(self._book.runtime) >= MAX_RUNTIME_SCHEDULES:
                raise ValueError(
                    f"there are {len(self._book.runtime)} run-time schedules already, the most relaxd keeps; "
                    "remove one first (schedule/remove)"
                )
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

    def list(self, room: Any = None) -> list[dict[str, Any]]:
        if room is not None and (not isinstance(room, str) or room not in self.rooms):
            raise ValueError(f"room: unknown room {excerpt(room)}")
        return [self._view(i) for i, s in self._schedules.items() if room is None or s.spec.room == room]

    async def remove(self, schedule_id: str) -> dict[str, Any]:
        async with self._lock:
            schedule = self._schedules.get(schedule_id)
            if schedule is None:
                raise ValueError(f"unknown schedule id {excerpt(schedule_id)}")
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
            return
        try:
            self._next[schedule_id] = self.fire_times.next_after(schedule.spec, self._book.checked[schedule_id])
        except Exception as exc:
            self._disable(schedule_id, exc)
            return
        self._problems.pop(schedule_id, None)

    def _disable(self, schedule_id: str, exc: BaseException) -> None:
        """A schedule whose next time cannot be computed stops; it says so once, the others go on."""
        problem = f"its next time cannot be computed ({type(exc).__name__}: {excerpt(str(exc), 120)}); disabled"
        log.error("schedule %s: %s", schedule_id, problem)
        self._problems[schedule_id] = problem
        self._next[schedule_id] = None
        spec = self._schedules[schedule_id].spec
        if spec.room in self.rooms:
            self.rooms[spec.room].report(
                "schedule_missed",
                {
                    "reason": "disabled",
                    "schedule_id": schedule_id,
                    "routine": spec.routine,
                    "details": {"error": problem},
                },
            )

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

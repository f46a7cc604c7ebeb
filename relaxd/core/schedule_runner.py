"""The schedule runner: starts due sessions in the rooms and keeps next_session_at (ScheduleSet holds them)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from relaxd.core.events import Command, iso_utc
from relaxd.core.schedule_set import ScheduleSet
from relaxd.core.schedules import Due, Schedule, config_ids, due_runs

log = logging.getLogger(__name__)
# Sleep at most this long, so that a wall clock set forward (NTP, suspend) is noticed soon.
MAX_SLEEP_S = 60.0


class ScheduleRunner(ScheduleSet):
    """Config and run-time schedules; fires them through the rooms' engines (which own the events)."""

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
                try:
                    due = due_runs(self.fire_times, schedule.spec, self._book.checked[schedule_id], now, self.grace_s)
                    next_at = self.fire_times.next_after(schedule.spec, now)
                except Exception as exc:  # one schedule's arithmetic must never stop the others
                    self._disable(schedule_id, exc)
                    continue
                # Saved before the start is submitted: a crash in between loses this run rather than
                # starting it twice (a surprise second session is worse than a missed one).
                self._book.checked[schedule_id] = now
                self._next[schedule_id] = next_at
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

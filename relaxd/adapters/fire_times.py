"""Fire times of schedules from APScheduler's triggers, used as pure calculators (no scheduler)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.calendarinterval import CalendarIntervalTrigger
from apscheduler.triggers.cron import CronTrigger

from relaxd.core.schedule_config import WEEKDAYS, ScheduleConfig

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 (and 7) = Sunday
_NUMERIC_DOW = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


def zone(name: str | None) -> tzinfo:
    """The configured IANA zone, or the system's own (via tzlocal, which APScheduler brings)."""
    if name:
        return ZoneInfo(name)
    from tzlocal import get_localzone

    local: tzinfo = get_localzone()
    return local


def crontab_weekdays(line: str) -> str:
    """The cron line with numeric weekdays spelled as names.

    APScheduler 3 counts weekday numbers from Monday = 0, crontab from Sunday = 0 (7 too): without
    this, "0 20 * * 5" would fire on Saturdays. Names and name ranges pass through unchanged.
    """
    fields = line.split()
    if len(fields) != 5:
        raise ValueError("cron needs five fields: minute hour day month weekday")
    days: list[str] = []
    for token in fields[4].split(","):
        match = _NUMERIC_DOW.match(token)
        if token == "*" or match is None or (match.group(1) == "*" and match.group(2)):
            days.append(token)
            continue
        first_text, last_text, step_text = match.groups()
        if first_text == "*":
            first, last = 0, 6
        else:
            first = int(first_text)
            last = int(last_text) if last_text is not None else (6 if step_text else first)
        step = int(step_text) if step_text else 1
        if not (0 <= first <= 7 and 0 <= last <= 7) or step < 1:
            raise ValueError(f"weekday {token!r} is out of range; use 0-7 (0 and 7 are Sunday) or mon..sun")
        if first > last:
            raise ValueError(f"weekday range {token!r} goes backwards")
        days.extend(_CRON_DAYS[n % 7] for n in range(first, last + 1, step))
    fields[4] = ",".join(dict.fromkeys(days))
    return " ".join(fields)


def check_cron(line: str) -> None:
    """ValueError with a readable reason when line is no usable five-field cron line."""
    cron_trigger(line, UTC)


def cron_trigger(line: str, tz: tzinfo) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(crontab_weekdays(line), timezone=tz)
    except ValueError as exc:
        raise ValueError(str(exc).replace("Error validating expression", "bad field")) from None
    except Exception as exc:  # APScheduler raises other types for some malformed fields
        raise ValueError(f"not a valid cron line: {exc}") from None


def _ambiguous_repeat(moment: datetime) -> bool:
    """The second occurrence of a local time the autumn change repeats (fold=1 with two offsets)."""
    return moment.fold == 1 and moment.replace(fold=0).utcoffset() != moment.utcoffset()


class ApsFireTimes:
    """FireTimes for one time zone: cron, every N weeks/days and once, in local wall-clock time.

    DST rules, the same for every kind of schedule:
    - a local time that does not exist that day (spring forward, e.g. 02:30 in the skipped hour)
      fires when the clocks show that much later (02:30 -> 03:30): the run is not dropped;
    - a local time that happens twice (fall back) fires once, at its first occurrence.
    """

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz

    def check(self, spec: ScheduleConfig) -> None:
        if spec.cron is not None:
            trigger = cron_trigger(spec.cron, self.tz)
            if trigger.get_next_fire_time(None, datetime.now(self.tz)) is None:
                raise ValueError(f"cron line {spec.cron!r} never fires")

    def next_after(self, spec: ScheduleConfig, after: datetime) -> datetime | None:
        after = after.astimezone(UTC)
        if spec.cron is not None:
            moment = self._cron_next(spec.cron, after)
        elif spec.once is not None:
            moment = self.once_at(spec.once)
            moment = moment if moment > after else None
        else:
            moment = self._every_next(spec, after)
        return moment.astimezone(UTC) if moment is not None else None

    def once_at(self, once: datetime) -> datetime:
        """A booked local time as an instant (an explicit UTC offset in the value is honoured)."""
        if once.tzinfo is not None:
            return once
        # fold=0: a repeated time means its first occurrence; a skipped one lands after the gap.
        return once.replace(tzinfo=self.tz).astimezone(UTC)

    def _cron_next(self, line: str, after: datetime) -> datetime | None:
        trigger = cron_trigger(line, self.tz)
        # CronTrigger returns the first fire time at or after `now`; we want strictly after. Step in
        # UTC: local wall-clock arithmetic would drop fold=1 and step back into the repeated hour.
        step = timedelta(microseconds=1)
        moment: datetime | None = trigger.get_next_fire_time(None, after.astimezone(UTC) + step)
        while moment is not None and _ambiguous_repeat(moment):
            moment = trigger.get_next_fire_time(None, moment.astimezone(UTC) + step)
        return moment

    def _every_next(self, spec: ScheduleConfig, after: datetime) -> datetime | None:
        if spec.starting is None:
            raise ValueError("an every schedule needs its starting date resolved")
        count, unit = spec.interval()
        period_days = count * 7 if unit == "weeks" else count
        hour, minute = spec.at_time()
        days = spec.weekdays()
        if days:
            # Each weekday is its own series, counted from its first date on or after `starting`.
            firsts = [spec.starting + timedelta(days=(WEEKDAYS.index(d) - spec.starting.weekday()) % 7) for d in days]
        else:
            firsts = [spec.starting]
        moments = [
            self._series_next(first, period_days, count if unit == "weeks" else 0, hour, minute, after)
            for first in firsts
        ]
        return min(moments)

    def _series_next(
        self, first: date, period_days: int, weeks: int, hour: int, minute: int, after: datetime
    ) -> datetime:
        after_day = after.astimezone(self.tz).date()
        # Jump close to `after` (a schedule may have started years ago): a series date before its day.
        skip = max(0, ((after_day - first).days - 1) // period_days)
        nominal = first + timedelta(days=skip * period_days)
        trigger = CalendarIntervalTrigger(
            weeks=weeks,
            days=0 if weeks else period_days,
            hour=hour,
            minute=minute,
            start_date=nominal,
            timezone=self.tz,
        )
        previous: datetime | None = None
        while True:
            found: datetime = trigger.get_next_fire_time(previous, after)
            if found.date() != nominal:
                # The trigger drops a date whose time falls in the spring-forward gap; we keep the
                # run and let it fire as the clocks jump (02:30 is read as 03:30 summer time).
                found = datetime.combine(nominal, time(hour, minute), tzinfo=self.tz).astimezone(UTC)
            if found > after:
                return found
            previous = datetime.combine(nominal, time(hour, minute), tzinfo=self.tz)
            nominal += timedelta(days=period_days)

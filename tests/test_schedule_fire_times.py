"""Fire times from APScheduler's triggers across DST changes (Europe/Berlin, America/New_York), frozen times."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.calendarinterval import CalendarIntervalTrigger

from relaxd.adapters.fire_times import ApsFireTimes, check_cron, crontab_weekdays
from relaxd.core.schedule_config import ScheduleConfig

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
# 2026: Berlin springs forward on Mar 29 (02:00 -> 03:00) and falls back on Oct 25 (03:00 -> 02:00);
# New York springs forward on Mar 8 (02:00 -> 03:00) and falls back on Nov 1 (02:00 -> 01:00).


def spec(**kw: object) -> ScheduleConfig:
    return ScheduleConfig.model_validate({"room": "bedroom", **kw})


def fires(tz: ZoneInfo, schedule: ScheduleConfig, after: datetime, count: int) -> list[datetime]:
    times, moment = [], after
    for _ in range(count):
        found = ApsFireTimes(tz).next_after(schedule, moment)
        assert found is not None
        assert found.tzinfo is not None and found.utcoffset() == timedelta(0)
        times.append(found)
        moment = found
    return times


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "first", "expected_utc"),
    [
        # 20:00 local stays 20:00 local: the UTC time moves an hour earlier in spring, later in autumn.
        (BERLIN, date(2026, 3, 15), [utc(2026, 3, 15, 19), utc(2026, 3, 29, 18), utc(2026, 4, 12, 18)]),
        (BERLIN, date(2026, 10, 18), [utc(2026, 10, 18, 18), utc(2026, 11, 1, 19), utc(2026, 11, 15, 19)]),
        (NEW_YORK, date(2026, 3, 1), [utc(2026, 3, 2, 1), utc(2026, 3, 16, 0), utc(2026, 3, 30, 0)]),
        (NEW_YORK, date(2026, 10, 25), [utc(2026, 10, 26, 0), utc(2026, 11, 9, 1), utc(2026, 11, 23, 1)]),
    ],
)
def test_biweekly_at_20_stays_20_local_across_dst(tz: ZoneInfo, first: date, expected_utc: list[datetime]) -> None:
    schedule = spec(every="2 weeks", on="sun", at="20:00", starting=first)
    times = fires(tz, schedule, datetime.combine(first, datetime.min.time(), tzinfo=tz), 3)
    assert times == expected_utc
    assert all(t.astimezone(tz).strftime("%a %H:%M") == "Sun 20:00" for t in times)
    # Not a fixed interval (IntervalTrigger(weeks=2) would give exactly 14 days in UTC).
    assert {b - a for a, b in itertools.pairwise(times)} != {timedelta(weeks=2)}


@pytest.mark.parametrize(
    ("tz", "after", "expected_utc"),
    [
        (BERLIN, utc(2026, 3, 20), [utc(2026, 3, 20, 19), utc(2026, 3, 27, 19), utc(2026, 4, 3, 18)]),
        (BERLIN, utc(2026, 10, 20), [utc(2026, 10, 23, 18), utc(2026, 10, 30, 19)]),
        (NEW_YORK, utc(2026, 3, 1), [utc(2026, 3, 7, 1), utc(2026, 3, 14, 0)]),
        (NEW_YORK, utc(2026, 10, 28), [utc(2026, 10, 31, 0), utc(2026, 11, 7, 1)]),
    ],
)
def test_cron_friday_20_follows_local_time(tz: ZoneInfo, after: datetime, expected_utc: list[datetime]) -> None:
    times = fires(tz, spec(cron="0 20 * * fri"), after, len(expected_utc))
    assert times == expected_utc
    assert all(t.astimezone(tz).strftime("%a %H:%M") == "Fri 20:00" for t in times)


def test_a_time_in_the_spring_gap_fires_as_the_clocks_jump_not_never() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29. APScheduler's CalendarIntervalTrigger alone drops
    # that date and waits two more weeks; relaxd fires at 03:30 summer time (= 02:30 winter time).
    raw = CalendarIntervalTrigger(weeks=2, hour=2, minute=30, start_date=date(2026, 3, 15), timezone=BERLIN)
    first = raw.get_next_fire_time(None, utc(2026, 3, 1))
    assert raw.get_next_fire_time(first, first).date() == date(2026, 4, 12)  # the trap

    schedule = spec(every="2 weeks", on="sun", at="02:30", starting=date(2026, 3, 15))
    times = fires(BERLIN, schedule, utc(2026, 3, 1), 3)
    assert times == [utc(2026, 3, 15, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 4, 12, 0, 30)]
    assert times[1].astimezone(BERLIN).strftime("%m-%d %H:%M %Z") == "03-29 03:30 CEST"
    cron = fires(BERLIN, spec(cron="30 2 * * sun"), utc(2026, 3, 28), 2)
    assert cron == [utc(2026, 3, 29, 1, 30), utc(2026, 4, 5, 0, 30)]
    assert fires(
        NEW_YORK, spec(every="1 week", on="sun", at="02:30", starting=date(2026, 3, 1)), utc(2026, 3, 5), 2
    ) == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 15, 6, 30)]
    booked = ApsFireTimes(BERLIN).next_after(spec(once="2026-03-29T02:30"), utc(2026, 1, 1))
    assert booked == utc(2026, 3, 29, 1, 30)


@pytest.mark.parametrize(
    ("tz", "schedule", "after", "expected_utc"),
    [
        # 02:30 happens twice in Berlin on 2026-10-25, 01:30 twice in New York on 2026-11-01: one run each.
        (BERLIN, {"cron": "30 2 * * *"}, utc(2026, 10, 24, 12), [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]),
        (
            BERLIN,
            {"every": "1 week", "on": "sun", "at": "02:30", "starting": "2026-10-18"},
            utc(2026, 10, 20),
            [utc(2026, 10, 25, 0, 30), utc(2026, 11, 1, 1, 30)],
        ),
        (NEW_YORK, {"cron": "30 1 * * sun"}, utc(2026, 10, 28), [utc(2026, 11, 1, 5, 30), utc(2026, 11, 8, 6, 30)]),
        (
            NEW_YORK,
            {"every": "2 weeks", "on": "sun", "at": "01:30", "starting": "2026-10-18"},
            utc(2026, 10, 20),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 15, 6, 30)],
        ),
    ],
)
def test_a_repeated_autumn_time_fires_once_at_its_first_occurrence(
    tz: ZoneInfo, schedule: dict[str, str], after: datetime, expected_utc: list[datetime]
) -> None:
    assert fires(tz, spec(**schedule), after, 2) == expected_utc


def test_every_n_weeks_from_years_ago_matches_stepping_one_by_one() -> None:
    schedule = spec(every="3 weeks", on=["mon", "thu"], at="07:15", starting=date(2019, 5, 2))
    stepped = fires(BERLIN, schedule, utc(2019, 5, 1), 600)
    ft = ApsFireTimes(BERLIN)
    for moment in stepped[100::37]:  # jumping straight in gives the same next run as stepping there
        index = stepped.index(moment)
        assert ft.next_after(schedule, moment - timedelta(seconds=1)) == moment
        assert ft.next_after(schedule, moment) == stepped[index + 1]
    local = [t.astimezone(BERLIN) for t in stepped]
    assert {t.strftime("%a %H:%M") for t in local} == {"Mon 07:15", "Thu 07:15"}
    assert local[0].date() == date(2019, 5, 2) and local[1].date() == date(2019, 5, 6)
    assert (local[2].date() - local[0].date()).days == 21


def test_crontab_weekday_numbers_count_from_sunday() -> None:
    # APScheduler 3 reads 5 as Saturday; crontab and relaxd users mean Friday.
    assert crontab_weekdays("0 20 * * 5") == "0 20 * * fri"
    assert crontab_weekdays("0 20 * * 0,7") == "0 20 * * sun"
    assert crontab_weekdays("0 20 * * 1-5") == "0 20 * * mon,tue,wed,thu,fri"
    assert crontab_weekdays("0 20 * * */2") == "0 20 * * sun,tue,thu,sat"
    assert crontab_weekdays("0 20 * * mon-fri") == "0 20 * * mon-fri"
    friday = ApsFireTimes(BERLIN).next_after(spec(cron="0 20 * * 5"), utc(2026, 11, 23))
    assert friday is not None and friday.astimezone(BERLIN).strftime("%a %Y-%m-%d %H:%M") == "Fri 2026-11-27 20:00"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("61 * * * *", "61"),
        ("0 25 * * *", "25"),
        ("* * * * funday", "funday"),
        ("0 20 * * 8", "out of range"),
        ("0 20 * * 5-1", "backwards"),
        ("0 20 * *", "five fields"),
        ("0 20 * * fri extra", "five fields"),
    ],
)
def test_bad_cron_lines_are_refused_with_a_reason(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_cron(line)


def test_a_cron_line_that_never_fires_is_refused() -> None:
    with pytest.raises(ValueError, match="never fires"):
        ApsFireTimes(BERLIN).check(spec(cron="0 0 31 2 *"))


def test_once_is_local_time_and_only_in_the_future() -> None:
    ft = ApsFireTimes(NEW_YORK)
    booked = spec(once="2026-12-24T18:30")
    assert ft.next_after(booked, utc(2026, 12, 1)) == utc(2026, 12, 24, 23, 30)
    assert ft.next_after(booked, utc(2026, 12, 24, 23, 30)) is None
    assert ft.next_after(spec(once="2026-12-24T18:30:00+01:00"), utc(2026, 12, 1)) == utc(2026, 12, 24, 17, 30)


def test_every_day_and_multiple_weekdays() -> None:
    daily = fires(BERLIN, spec(every="1 day", at="06:45", starting=date(2026, 3, 27)), utc(2026, 3, 1), 4)
    assert [t.astimezone(BERLIN).strftime("%d %H:%M") for t in daily] == [
        "27 06:45",
        "28 06:45",
        "29 06:45",
        "30 06:45",
    ]
    assert daily[2] - daily[1] == timedelta(hours=23)
    with pytest.raises(ValueError, match="on goes with every N weeks"):
        spec(every="2 days", on="sun", at="10:00")
    with pytest.raises(ValueError, match=r"every\n.*must look like"):
        spec(every="0 weeks", at="10:00")

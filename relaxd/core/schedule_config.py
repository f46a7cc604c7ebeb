"""A schedule as the config and run-time requests give it: cron, every N weeks or days, or once, in range."""

from __future__ import annotations

import re
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EVERY_RE = re.compile(r"^\s*(\d{1,9})\s*(week|weeks|day|days)\s*$")
# Far beyond any real schedule, far inside what date arithmetic copes with (an "every 999999 weeks"
# or a booking in year 9999 overflowed and stopped every schedule).
MAX_EVERY_WEEKS = 520
MAX_EVERY_DAYS = 3660
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2099, 12, 31)
_AT_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleConfig(Strict):
    """A recurring or booked session: cron, every N weeks (or days), or once."""

    room: str = Field(description="The room.")
    routine: str | None = Field(default=None, description="The routine; default: the room's.")
    cron: str | None = Field(default=None, description="Five-field cron line, e.g. '0 20 * * fri'.")
    every: str | None = Field(default=None, description="Interval such as '2 weeks' or '1 day'.")
    on: list[str] | str | None = Field(
        default=None, validate_default=True, description="Weekday(s), required with every N weeks, e.g. sun."
    )
    at: str | None = Field(default=None, description="Local time with every, e.g. '10:00'.")
    starting: date | None = Field(default=None, description="First date with every; default: the day it is added.")
    once: datetime | None = Field(default=None, description="A single booked session, local time.")

    @field_validator("every")
    @classmethod
    def _every_in_range(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _EVERY_RE.match(value)
        if match is None or int(match.group(1)) < 1:
            raise ValueError("must look like '2 weeks' or '1 day' with a count of 1 or more")
        count, weeks = int(match.group(1)), match.group(2).startswith("week")
        if weeks and count > MAX_EVERY_WEEKS:
            raise ValueError(f"at most {MAX_EVERY_WEEKS} weeks (ten years)")
        if not weeks and count > MAX_EVERY_DAYS:
            raise ValueError(f"at most {MAX_EVERY_DAYS} days (ten years)")
        return value

    @field_validator("on")
    @classmethod
    def _on_with_weeks(cls, value: list[str] | str | None, info: ValidationInfo) -> list[str] | str | None:
        # Which weekday a bare "every 2 weeks" means is a guess (the day it was added?): ask for it.
        match = _EVERY_RE.match(info.data.get("every") or "")
        if value is None and match is not None and match.group(2).startswith("week"):
            raise ValueError("required with every N weeks")
        return value

    @field_validator("starting")
    @classmethod
    def _starting_in_range(cls, value: date | None) -> date | None:
        if value is not None and not FIRST_DATE <= value <= LAST_DATE:
            raise ValueError(f"must be between {FIRST_DATE} and {LAST_DATE}")
        return value

    @field_validator("once")
    @classmethod
    def _once_in_range(cls, value: datetime | None) -> datetime | None:
        if value is not None and not FIRST_DATE <= value.date() <= LAST_DATE:
            raise ValueError(f"must be between {FIRST_DATE} and {LAST_DATE}")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleConfig:
        kinds = [k for k in ("cron", "every", "once") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of cron, every or once")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError("cron needs five fields: minute hour day month weekday")
        if self.every is not None:
            if self.at is None:
                raise ValueError("every needs at, e.g. at: '20:00'")
            if self.on is not None and self.interval()[1] == "days":
                raise ValueError("on goes with every N weeks, not with days")
        elif self.on is not None or self.at is not None or self.starting is not None:
            raise ValueError("on, at and starting go with every")
        if self.at is not None and _AT_RE.match(self.at) is None:
            raise ValueError("at must be a time like 20:00")
        for day in self.weekdays():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
        if self.on is not None and not self.weekdays():
            raise ValueError("on needs at least one weekday")
        return self

    def weekdays(self) -> list[str]:
        """The `on` days as mon..sun, in the order given; `on: "mon, thu"` works like a list."""
        if self.on is None:
            return []
        given = [self.on] if isinstance(self.on, str) else self.on
        days = [part for item in given for part in item.split(",") if part.strip()]
        full = {
            "monday": "mon",
            "tuesday": "tue",
            "wednesday": "wed",
            "thursday": "thu",
            "friday": "fri",
            "saturday": "sat",
            "sunday": "sun",
        }
        return [full.get(d.strip().lower(), d.strip().lower()) for d in days]

    def interval(self) -> tuple[int, str]:
        """`every` as (count, "weeks" or "days"); only for every schedules."""
        match = _EVERY_RE.match(self.every or "")
        if match is None:
            raise ValueError("not an every schedule")
        unit = match.group(2)
        return int(match.group(1)), "weeks" if unit.startswith("week") else "days"

    def at_time(self) -> tuple[int, int]:
        """`at` as (hour, minute); only for every schedules."""
        match = _AT_RE.match(self.at or "")
        if match is None:
            raise ValueError("not an every schedule")
        return int(match.group(1)), int(match.group(2))

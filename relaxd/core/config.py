"""Typed, validated settings: a YAML file plus RELAXD_ environment overrides."""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from relaxd.core.ports import MusicSource
from relaxd.core.routines import Routine
from relaxd.core.units import Duration

DEFAULT_CONFIG_PATH = Path("/etc/relaxd/relaxd.yaml")
ROOM_ID_RE = re.compile(r"^[a-z0-9_]{1,32}$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EVERY_RE = re.compile(r"^\s*(\d+)\s*(week|weeks|day|days)\s*$")
_AT_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsConfig(Strict):
    """TLS for the MQTT connection."""

    ca_certs: Path | None = Field(default=None, description="CA bundle that signed the broker's certificate.")
    certfile: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    keyfile: Path | None = Field(default=None, description="Client certificate key (mutual TLS).")
    insecure: bool = Field(default=False, description="Skip the broker hostname check (labs only).")


class MqttConfig(Strict):
    """The MQTT broker relaxd publishes to and listens on."""

    host: str = Field(default="localhost", description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is usual for TLS).")
    username: str | None = Field(default=None, description="User name, if the broker wants one.")
    password: SecretStr | None = Field(default=None, description="Password (secret; never logged).")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; none means plain TCP.")
    client_id: str | None = Field(default=None, description="MQTT client id; default relaxd-<base_topic>.")
    keepalive: Duration = Field(default=60.0, description="Keep-alive interval, e.g. 60s.")
    base_topic: str = Field(default="relaxd", min_length=1, description="Prefix of every relaxd topic.")
    discovery_prefix: str | None = Field(
        default="homeassistant", description="Home Assistant discovery prefix; null turns discovery off."
    )

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic_safe(cls, value: str | None) -> str | None:
        if value is not None and (any(c in value for c in "#+\0") or value.startswith("/") or value.endswith("/")):
            raise ValueError("must not contain # + or NUL, nor start or end with /")
        return value


class HueConfig(Strict):
    """The Philips Hue bridge."""

    host: str = Field(description="Bridge address, host or host:port.")
    username: SecretStr = Field(description="Bridge username from `relaxd hue pair` (secret).")
    https: Literal["auto"] | bool = Field(
        default="auto", description="true for HTTPS-only bridges, false for HTTP, auto to find out."
    )
    timeout: Duration = Field(default=5.0, description="Timeout of one bridge request, e.g. 5s.")


class LightsConfig(Strict):
    """Which lights belong to the room: a bridge group, or light names."""

    group: str | None = Field(default=None, description="Name of a Hue room or zone.")
    names: list[str] | None = Field(default=None, min_length=1, description="Names of Hue lights.")

    @model_validator(mode="after")
    def _exactly_one(self) -> LightsConfig:
        if (self.group is None) == (self.names is None):
            raise ValueError("give exactly one of group or names")
        return self


class SpeakerConfig(Strict):
    """Which Sonos speaker plays in the room."""

    name: str | None = Field(default=None, description="Sonos room name (found by discovery).")
    host: str | None = Field(default=None, description="Speaker address, host or host:port.")

    @model_validator(mode="after")
    def _exactly_one(self) -> SpeakerConfig:
        if (self.name is None) == (self.host is None):
            raise ValueError("give exactly one of name or host")
        return self


class MusicConfig(Strict):
    """What the speaker plays during a session."""

    favorite: str | None = Field(default=None, description="Title of a Sonos favorite.")
    uri: str | None = Field(default=None, description="A URI the speaker can play.")
    playlist: str | None = Field(default=None, description="Title of a Sonos playlist.")

    @model_validator(mode="after")
    def _exactly_one(self) -> MusicConfig:
        if sum(v is not None for v in (self.favorite, self.uri, self.playlist)) != 1:
            raise ValueError("give exactly one of favorite, uri or playlist")
        return self

    def source(self) -> MusicSource:
        return MusicSource(favorite=self.favorite, uri=self.uri, playlist=self.playlist)


class RoomConfig(Strict):
    """One room relaxd can turn into a massage room."""

    lights: LightsConfig | None = Field(default=None, description="The room's Hue lights.")
    speaker: SpeakerConfig | None = Field(default=None, description="The room's Sonos speaker.")
    music: MusicConfig | None = Field(default=None, description="What to play; none keeps the source.")
    max_volume: int = Field(default=30, ge=0, le=100, description="Volume never goes above this.")
    routine: str = Field(default="classic", description="Routine used when a start names none.")
    restore_fade: Duration = Field(default=5.0, description="How long the music fades back in on restore.")

    @model_validator(mode="after")
    def _has_device(self) -> RoomConfig:
        if self.lights is None and self.speaker is None:
            raise ValueError("a room needs lights, a speaker, or both")
        if self.music is not None and self.speaker is None:
            raise ValueError("music needs a speaker")
        return self


class TriggerConfig(Strict):
    """An MQTT message (a button) that starts, stops or toggles a room's session."""

    topic: str = Field(min_length=1, description="Topic to listen on, e.g. zigbee2mqtt/Massage Button.")
    match: dict[str, Any] | str = Field(
        description="JSON fields the payload must have (e.g. {action: single}) or its exact text."
    )
    room: str = Field(description="The room to act on.")
    do: Literal["start", "stop", "toggle"] = Field(default="toggle", description="What to do.")
    routine: str | None = Field(default=None, description="Routine to start; default: the room's.")


class ScheduleConfig(Strict):
    """A recurring or booked session: cron, every N weeks (or days), or once."""

    room: str = Field(description="The room.")
    routine: str | None = Field(default=None, description="The routine; default: the room's.")
    cron: str | None = Field(default=None, description="Five-field cron line, e.g. '0 20 * * fri'.")
    every: str | None = Field(default=None, description="Interval such as '2 weeks' or '1 day'.")
    on: list[str] | str | None = Field(default=None, description="Weekday(s) with every N weeks, e.g. sun.")
    at: str | None = Field(default=None, description="Local time with every, e.g. '10:00'.")
    starting: date | None = Field(default=None, description="First date with every; default: the day it is added.")
    once: datetime | None = Field(default=None, description="A single booked session, local time.")

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleConfig:
        kinds = [k for k in ("cron", "every", "once") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of cron, every or once")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError("cron needs five fields: minute hour day month weekday")
        if self.every is not None:
            match = _EVERY_RE.match(self.every)
            if match is None or int(match.group(1)) < 1:
                raise ValueError("every must look like '2 weeks' or '1 day' with a count of 1 or more")
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


class Settings(BaseSettings):
    """The whole relaxd configuration: init values, then RELAXD_ environment, then the YAML file."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix="RELAXD_", env_nested_delimiter="__", case_sensitive=False
    )

    timezone: str | None = Field(default=None, description="IANA time zone; default: the system's.")
    state_dir: Path = Field(default=Path("/var/lib/relaxd"), description="Snapshots, schedules.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    misfire_grace: Duration = Field(default=900.0, description="A missed schedule still starts this late.")
    retry_every: Duration = Field(default=10.0, description="How often an unreachable device is retried.")
    health_check_every: Duration = Field(
        default=30.0,
        description="How often every device is checked, idle or in a session; a device lost or back is "
        "reported within two of these.",
    )
    shutdown_timeout: Duration = Field(
        default=60.0,
        description="On SIGTERM, how long the rooms may take to be restored (below systemd's TimeoutStopSec); "
        "a room not restored by then keeps its snapshot for the next start.",
    )
    io_threads: int = Field(
        default=8, ge=2, le=64, description="Threads for the blocking device libraries, shared by every room."
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="The MQTT broker.")
    hue: HueConfig | None = Field(default=None, description="The Hue bridge (needed by rooms with lights).")
    rooms: dict[str, RoomConfig] = Field(min_length=1, description="Rooms by id.")
    routines: dict[str, Routine] = Field(default_factory=dict, description="Routines beyond the built-ins.")
    triggers: list[TriggerConfig] = Field(default_factory=list, description="Buttons and other triggers.")
    schedules: list[ScheduleConfig] = Field(default_factory=list, description="Recurring sessions.")

    @field_validator("health_check_every", "shutdown_timeout")
    @classmethod
    def _at_least_a_second(cls, value: float) -> float:
        if value < 1.0:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}; use e.g. Europe/Berlin") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The loader passes the YAML file's content as init values; the environment beats it.
        return (env_settings, init_settings)


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """-c FILE, then $RELAXD_CONFIG, then /etc/relaxd/relaxd.yaml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("RELAXD_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH

"""Typed, validated settings: a YAML file plus RELAXD_ environment overrides."""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from relaxd.core.hue_config import HueConfig, LightsConfig
from relaxd.core.ports import MusicSource
from relaxd.core.routines import Routine
from relaxd.core.schedule_config import ScheduleConfig
from relaxd.core.topics import filter_problem, text_problem
from relaxd.core.units import Duration

DEFAULT_CONFIG_PATH = Path("/etc/relaxd/relaxd.yaml")
ROOM_ID_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsConfig(Strict):
    """TLS for the MQTT connection."""

    ca_certs: Path | None = Field(default=None, description="CA bundle that signed the broker's certificate.")
    certfile: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    keyfile: Path | None = Field(default=None, description="Client certificate key (mutual TLS).")
    insecure: bool = Field(default=False, description="Skip the broker hostname check (labs only).")

    @field_validator("ca_certs", "certfile", "keyfile")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        # Checked here, not when the daemon connects: check-config must refuse what run cannot use.
        if value is not None and not (value.is_file() and os.access(value, os.R_OK)):
            raise ValueError(f"no readable file at {value}")
        return value

    @model_validator(mode="after")
    def _loadable(self) -> TlsConfig:
        """The files load as the MQTT client will load them (certificates, key, their pairing)."""
        context = ssl.create_default_context()
        try:
            if self.ca_certs is not None:
                context.load_verify_locations(cafile=str(self.ca_certs))
            if self.certfile is not None:
                context.load_cert_chain(str(self.certfile), str(self.keyfile) if self.keyfile else None)
            elif self.keyfile is not None:
                raise ValueError("keyfile needs certfile")
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"the TLS files cannot be used: {exc.__class__.__name__}: {exc}") from None
        return self


class MqttConfig(Strict):
    """The MQTT broker relaxd publishes to and listens on."""

    host: str = Field(default="localhost", description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is usual for TLS).")
    username: str | None = Field(default=None, description="User name, if the broker wants one.")
    password: SecretStr | None = Field(default=None, description="Password (secret; never logged).")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; none means plain TCP.")
    client_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="MQTT client id; default relaxd-<base_topic>."
    )
    keepalive: Duration = Field(
        default=60.0, le=65535, description="Keep-alive interval, e.g. 60s (MQTT: 18h at most)."
    )
    base_topic: str = Field(default="relaxd", min_length=1, max_length=256, description="Prefix of every relaxd topic.")
    discovery_prefix: str | None = Field(
        default="homeassistant",
        min_length=1,
        max_length=256,
        description="Home Assistant discovery prefix; null turns discovery off.",
    )
    protocol: Literal["auto", "5", "3.1.1"] = Field(
        default="auto",
        description="MQTT version: 5, 3.1.1, or auto (5, falling back to 3.1.1 if the broker refuses 5).",
    )

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: object) -> object:
        # YAML reads `protocol: 5` as a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic_safe(cls, value: str | None) -> str | None:
        if value is None:
            return value
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        if any(c in value for c in "#+") or value.startswith("/") or value.endswith("/"):
            raise ValueError("must not contain # or +, nor start or end with /")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id_safe(cls, value: str | None) -> str | None:
        problem = None if value is None else text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


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
    speakers: list[SpeakerConfig] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Several Sonos speakers instead of one: grouped under the first for a session.",
    )
    music: MusicConfig | None = Field(default=None, description="What to play; none keeps the source.")
    max_volume: int = Field(default=30, ge=0, le=100, description="Volume never goes above this.")
    routine: str = Field(default="classic", description="Routine used when a start names none.")
    restore_fade: Duration = Field(
        default=5.0, le=600, description="How long the music fades back in on restore (10m at most)."
    )

    @model_validator(mode="after")
    def _has_device(self) -> RoomConfig:
        if self.speaker is not None and self.speakers is not None:
            raise ValueError("give speaker or speakers, not both")
        if self.lights is None and not self.speaker_list():
            raise ValueError("a room needs lights, a speaker, or both")
        if self.music is not None and not self.speaker_list():
            raise ValueError("music needs a speaker")
        seen = [(s.host or "", s.name or "") for s in self.speaker_list()]
        if len(set(seen)) != len(seen):
            raise ValueError("speakers: a speaker is named twice")
        return self

    def speaker_list(self) -> list[SpeakerConfig]:
        """The room's speakers: the one of speaker, or those of speakers (the first leads the group)."""
        return [self.speaker] if self.speaker is not None else list(self.speakers or [])


class TriggerConfig(Strict):
    """An MQTT message (a button) that starts, stops or toggles a room's session."""

    topic: str = Field(
        min_length=1, max_length=1024, description="Topic to listen on, e.g. zigbee2mqtt/Massage Button."
    )
    match: dict[str, Any] | str = Field(
        description="JSON fields the payload must have (e.g. {action: single}) or its exact text."
    )
    room: str = Field(description="The room to act on.")
    do: Literal["start", "stop", "toggle"] = Field(default="toggle", description="What to do.")
    routine: str | None = Field(default=None, description="Routine to start; default: the room's.")

    @field_validator("topic")
    @classmethod
    def _subscribable(cls, value: str) -> str:
        problem = filter_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class Settings(BaseSettings):
    """The whole relaxd configuration: init values, then RELAXD_ environment, then the YAML file."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix="RELAXD_", env_nested_delimiter="__", case_sensitive=False
    )

    timezone: str | None = Field(default=None, description="IANA time zone; default: the system's.")
    state_dir: Path = Field(default=Path("/var/lib/relaxd"), description="Snapshots, schedules.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    misfire_grace: Duration = Field(
        default=900.0, le=7 * 86400, description="A missed schedule still starts this late (7 days at most)."
    )
    retry_every: Duration = Field(
        default=10.0, ge=1, le=3600, description="How often an unreachable device is retried (1s to 1h)."
    )
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
        if not 1.0 <= value <= 3600.0:
            raise ValueError("must be between 1s and 1h")
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

"""The `hue` section (one bridge, or several by name, each with its HTTPS identity) and a room's lights."""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from relaxd.core.units import Duration

# The bridge of the single-bridge form, as rooms may name it.
DEFAULT_BRIDGE = "main"
BRIDGE_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_BRIDGE_ID_RE = re.compile(r"^[0-9A-Fa-f]{16}$")
_FINGERPRINT_RE = re.compile(r"^[0-9A-F]{64}$")
HttpsSetting = Literal["auto"] | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def normalise_fingerprint(text: str) -> str:
    """`ab:cd:...`, `ABCD...` or `sha256:AB:CD...` -> `AB:CD:...` (64 hex digits); ValueError otherwise."""
    digits = text.strip().upper().removeprefix("SHA256:").replace(":", "").replace(" ", "")
    if not _FINGERPRINT_RE.match(digits):
        raise ValueError("a SHA-256 fingerprint is 64 hex digits (pairs may be separated by colons)")
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


class _Identity(_Strict):
    """Who the bridge is: checked on every HTTPS connection before the username is sent."""

    bridge_id: str | None = Field(
        default=None, description="The bridge id (16 hex digits, the certificate's CN), from `relaxd hue pair`."
    )
    fingerprint: str | None = Field(
        default=None, description="SHA-256 fingerprint of the bridge's certificate, from `relaxd hue pair`."
    )
    ca_file: Path | None = Field(
        default=None, description="CA certificates that sign the bridge's certificate (default: Signify's)."
    )

    @field_validator("bridge_id")
    @classmethod
    def _bridge_id(cls, value: str | None) -> str | None:
        if value is not None and not _BRIDGE_ID_RE.match(value):
            raise ValueError("a bridge id is 16 hex digits, e.g. 001788FFFEAE1B58")
        return value.upper() if value is not None else None

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return normalise_fingerprint(value) if value is not None else None

    @field_validator("ca_file")
    @classmethod
    def _ca_loads(cls, value: Path | None) -> Path | None:
        # Checked here, not at the first connection: check-config must refuse what run cannot use.
        if value is None:
            return value
        if not (value.is_file() and os.access(value, os.R_OK)):
            raise ValueError(f"no readable file at {value}")
        try:
            ssl.create_default_context().load_verify_locations(cafile=str(value))
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"no CA certificates in {value}: {exc}") from None
        return value


class HueBridgeConfig(_Identity):
    """One bridge of `hue.bridges`; https, timeout and verify default to the hue section's."""

    host: str = Field(description="Bridge address, host or host:port.")
    username: SecretStr = Field(description="Bridge username from `relaxd hue pair` (secret).")
    https: HttpsSetting | None = Field(default=None, description="As hue.https, for this bridge.")
    timeout: Duration | None = Field(default=None, ge=0.1, le=120, description="As hue.timeout, for this bridge.")
    verify: bool | None = Field(default=None, description="As hue.verify, for this bridge.")


@dataclass(frozen=True)
class BridgeSettings:
    """One bridge with every default filled in (what the adapter builds a bridge from)."""

    name: str
    host: str
    username: str
    https: HttpsSetting
    timeout: float
    verify: bool
    bridge_id: str | None
    fingerprint: str | None
    ca_file: Path | None


class HueConfig(_Identity):
    """The Philips Hue bridge (host, username, ...) or several bridges by name (`bridges`)."""

    host: str | None = Field(default=None, description="Bridge address, host or host:port.")
    # Typed as in the one-bridge form, which every reader of hue.username uses; None with bridges.
    username: SecretStr = Field(
        default=cast(SecretStr, None), description="Bridge username from `relaxd hue pair` (secret)."
    )
    https: HttpsSetting = Field(
        default="auto",
        description="auto: HTTPS first (plain HTTP only for a bridge without HTTPS and no identity in the config); "
        "true: HTTPS only; false: plain HTTP.",
    )
    timeout: Duration = Field(default=5.0, ge=0.1, le=120, description="Timeout of one bridge request, e.g. 5s.")
    verify: bool = Field(
        default=True, description="Check the bridge's certificate (false: labs only, logged at WARNING)."
    )
    bridges: dict[str, HueBridgeConfig] | None = Field(
        default=None, min_length=1, description="Several bridges by name (instead of host and username)."
    )

    @model_validator(mode="after")
    def _one_form(self) -> HueConfig:
        single = [k for k in ("host", "username", "bridge_id", "fingerprint", "ca_file") if getattr(self, k)]
        if self.bridges is None:
            if self.host is None or self.username is None:
                raise ValueError("give host and username (one bridge), or bridges (several by name)")
            return self
        if single:
            raise ValueError(f"with bridges, {', '.join(single)} belong to each bridge, not to the hue section")
        bad = [name for name in self.bridges if not BRIDGE_NAME_RE.match(name)]
        if bad:
            raise ValueError(f"bridge names are 1-32 lowercase letters, digits or _: {', '.join(map(repr, bad))}")
        return self

    def bridge_settings(self) -> dict[str, BridgeSettings]:
        """Every bridge by name (the single-bridge form is named "main"), defaults filled in."""
        if self.bridges is None:
            assert self.host is not None and self.username is not None
            return {DEFAULT_BRIDGE: self._settings(DEFAULT_BRIDGE, self)}
        return {name: self._settings(name, bridge) for name, bridge in self.bridges.items()}

    def _settings(self, name: str, bridge: HueConfig | HueBridgeConfig) -> BridgeSettings:
        assert bridge.host is not None and bridge.username is not None
        return BridgeSettings(
            name=name,
            host=bridge.host,
            username=bridge.username.get_secret_value(),
            https=bridge.https if bridge.https is not None else self.https,
            timeout=bridge.timeout if bridge.timeout is not None else self.timeout,
            verify=bridge.verify if bridge.verify is not None else self.verify,
            bridge_id=bridge.bridge_id,
            fingerprint=bridge.fingerprint,
            ca_file=bridge.ca_file,
        )


class LightsPart(_Strict):
    """Lights of one bridge: a bridge group, or light names."""

    bridge: str | None = Field(
        default=None, description="The bridge (a name under hue.bridges); default: the only one."
    )
    group: str | None = Field(default=None, description="Name of a Hue room or zone.")
    names: list[str] | None = Field(default=None, min_length=1, description="Names of Hue lights.")

    @model_validator(mode="after")
    def _exactly_one(self) -> LightsPart:
        if (self.group is None) == (self.names is None):
            raise ValueError("give exactly one of group or names")
        return self


class LightsConfig(_Strict):
    """Which lights belong to the room: a bridge group or light names (`bridge` names the bridge), or
    `parts` (a list of those) for a room with lights on several bridges; a YAML list is taken as parts."""

    bridge: str | None = Field(
        default=None, description="The bridge (a name under hue.bridges); default: the only one."
    )
    group: str | None = Field(default=None, description="Name of a Hue room or zone.")
    names: list[str] | None = Field(default=None, min_length=1, description="Names of Hue lights.")
    parts: list[LightsPart] | None = Field(
        default=None, min_length=1, description="Lights of several bridges: [{bridge: ..., group: ...}, ...]."
    )

    @model_validator(mode="before")
    @classmethod
    def _list_is_parts(cls, data: Any) -> Any:
        return {"parts": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> LightsConfig:
        if self.parts is not None:
            if self.bridge is not None or self.group is not None or self.names is not None:
                raise ValueError("give either parts, or bridge with group or names")
            return self
        if (self.group is None) == (self.names is None):
            raise ValueError("give exactly one of group or names")
        return self

    def all_parts(self) -> list[LightsPart]:
        """The room's lights, bridge by bridge."""
        if self.parts is not None:
            return list(self.parts)
        return [LightsPart(bridge=self.bridge, group=self.group, names=self.names)]


def lights_problems(hue: HueConfig | None, rooms: dict[str, Any]) -> list[str]:
    """Rooms whose lights name a bridge that is not configured, or none where there are several.

    rooms: room id -> anything with a `lights` attribute (LightsConfig or None)."""
    if hue is None:
        return []
    names = list(hue.bridge_settings())
    problems: list[str] = []
    for room_id, room in rooms.items():
        lights: LightsConfig | None = room.lights
        if lights is None:
            continue
        for part in lights.all_parts():
            if part.bridge is None and len(names) > 1:
                problems.append(f"rooms.{room_id}.lights: name the bridge (one of {', '.join(names)})")
            elif part.bridge is not None and part.bridge not in names:
                problems.append(
                    f"rooms.{room_id}.lights.bridge: unknown bridge {part.bridge!r} (bridges: {', '.join(names)})"
                )
        bridges = [p.bridge or names[0] for p in lights.all_parts()]
        if len(set(bridges)) != len(bridges):
            problems.append(f"rooms.{room_id}.lights: one part per bridge (use names for several lights of one bridge)")
    return problems

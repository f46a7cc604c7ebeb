"""The JSON payloads of room state, events and commands, as in docs/mqtt.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

EventName = Literal[
    "session_started",
    "phase_started",
    "check_in",
    "session_paused",
    "session_resumed",
    "session_extended",
    "session_finished",
    "session_stopped",
    "room_restored",
    "restore_failed",
    "device_unavailable",
    "device_available",
    "command_rejected",
    "schedule_fired",
    "schedule_missed",
    "internal_error",
]
EVENT_NAMES: tuple[str, ...] = get_args(EventName)
RoomStateName = Literal["idle", "running", "paused", "restoring"]
Action = Literal["start", "stop", "toggle", "pause", "resume", "skip", "extend"]
ACTIONS: tuple[str, ...] = ("start", "stop", "toggle", "pause", "resume", "skip", "extend")
MAX_COMMAND_BYTES = 64 * 1024
DEFAULT_EXTEND_MINUTES = 5.0
MAX_TRANSACTION_CHARS = 256
Transaction = str | int | float | None


def excerpt(value: Any, limit: int = 40) -> str:
    """repr(value) cut to about limit characters: what a message may echo of what someone sent."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def echoed_transaction(value: Any) -> Transaction:
    """What a reply echoes of the request's transaction: a string (cut) or a number, with its JSON type."""
    if isinstance(value, str):
        return value[:MAX_TRANSACTION_CHARS]
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value and abs(value) != float("inf"):
        return value
    return None


def iso_utc(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with milliseconds and a Z, e.g. 2026-11-23T20:00:00.123Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Event(BaseModel):
    """One event on `<base>/<room>/event`; fields that do not apply are left out."""

    model_config = ConfigDict(extra="forbid")

    event: EventName
    room: str
    at: str
    seq: int
    session_id: str | None = None
    routine: str | None = None
    phase: str | None = None
    phase_index: int | None = None
    phase_count: int | None = None
    technique: str | None = None
    intensity: float | None = None
    cues: dict[str, Any] | None = None
    phase_ends_at: str | None = None
    session_ends_at: str | None = None
    reason: str | None = None
    transaction: str | int | float | None = None  # as the command sent it: a string or a number
    device: str | None = None
    schedule_id: str | None = None  # schedule_fired, schedule_missed, and a scheduled session_started
    details: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class RoomState(BaseModel):
    """The retained `<base>/<room>/state` payload; every key is always present."""

    model_config = ConfigDict(extra="forbid")

    room: str
    state: RoomStateName
    session_id: str | None = None
    routine: str | None = None
    phase: str | None = None
    phase_index: int | None = None
    phase_count: int | None = None
    phase_started_at: str | None = None
    phase_ends_at: str | None = None
    session_started_at: str | None = None
    session_ends_at: str | None = None
    next_session_at: str | None = None
    next_routine: str | None = None  # the routine the next start uses (during a session too)
    devices: dict[str, Literal["online", "offline"]] = Field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Command(BaseModel):
    """A parsed command for one room."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    routine: str | None = Field(default=None, min_length=1, max_length=64)
    minutes: float | None = Field(default=None, gt=0, le=240)
    transaction: str | int | float | None = None  # echoed with its JSON type (strings cut at 256)
    source: str = "mqtt"  # who asked: mqtt, trigger, schedule, ha, shutdown
    # Set only by the scheduler (never parsed from a payload): which schedule asked, and the
    # details (scheduled_for, late_s) its schedule_fired or schedule_missed event carries.
    schedule_id: str | None = None
    schedule_details: dict[str, Any] | None = None


class CommandRejected(Exception):
    """A command that cannot be parsed; `reason` is for the command_rejected event."""

    def __init__(self, reason: str, transaction: Transaction = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transaction = transaction


def parse_command(payload: bytes, source: str = "mqtt") -> Command:
    """A command from plain text (`start`) or JSON (`{"action": "start", ...}`)."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRejected(f"payload too large ({len(payload)} bytes, at most {MAX_COMMAND_BYTES})")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandRejected("payload is not UTF-8 text") from None
    if not text.startswith("{"):
        action = text.lower()
        if action not in ACTIONS:
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise CommandRejected(f"unknown command {shown!r}; expected one of {', '.join(ACTIONS)}")
        return Command(action=action, source=source)  # type: ignore[arg-type]
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise CommandRejected("payload is not valid JSON") from None
    if not isinstance(data, dict):
        raise CommandRejected("JSON command must be an object with an action")
    transaction = echoed_transaction(data.get("transaction"))
    if isinstance(data.get("action"), str):
        data["action"] = data["action"].lower()
    for internal in ("schedule_id", "schedule_details"):
        if internal in data:  # only the scheduler may say a start comes from a schedule
            raise CommandRejected(f"{internal}: unknown field", transaction)
    try:
        return Command.model_validate({**data, "transaction": transaction, "source": source})
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "command"
        msg = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise CommandRejected(f"{field}: {msg}", transaction) from None

"""How the remote commands show the daemon's answers: one readable line per command, the status table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any

COLUMNS = ("ROOM", "STATE", "ROUTINE", "PHASE", "PHASE ENDS", "SESSION ENDS", "NEXT SESSION", "DEVICES")
NONE = "-"


def local_time(iso: str | None, tz: tzinfo, now: datetime) -> str:
    """An ISO 8601 time as local HH:MM when it is today in tz, else as YYYY-MM-DD HH:MM; `-` for none."""
    if not iso:
        return NONE
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso  # shown as it came rather than hidden: the daemon is newer than this CLI
    if moment.tzinfo is None:
        return iso
    local = moment.astimezone(tz)
    return local.strftime("%H:%M" if local.date() == now.astimezone(tz).date() else "%Y-%m-%d %H:%M")


def phase_text(message: Mapping[str, Any], word: str = "") -> str:
    """`petrissage (3/6)` (or with word `phase`: `petrissage (phase 3/6)`) from the phase fields of a
    state or an event; `-` without a phase."""
    name, index, count = message.get("phase"), message.get("phase_index"), message.get("phase_count")
    if not name:
        return NONE
    if isinstance(index, int) and isinstance(count, int):
        return f"{name} ({word + ' ' if word else ''}{index + 1}/{count})"
    return str(name)


def devices_text(devices: Any) -> str:
    if not isinstance(devices, Mapping) or not devices:
        return NONE
    return ", ".join(f"{name} {devices[name]}" for name in sorted(devices))


def state_row(state: Mapping[str, Any], tz: tzinfo, now: datetime) -> tuple[str, ...]:
    """One room's retained state (or status answer) as the cells of a table row, in COLUMNS order."""
    return (
        str(state.get("room") or NONE),
        str(state.get("state") or NONE),
        str(state.get("routine") or NONE),
        phase_text(state) if state.get("state") != "idle" else NONE,
        local_time(state.get("phase_ends_at"), tz, now),
        local_time(state.get("session_ends_at"), tz, now),
        local_time(state.get("next_session_at"), tz, now),
        devices_text(state.get("devices")),
    )


def status_table(states: Iterable[Mapping[str, Any]], tz: tzinfo, now: datetime) -> str:
    """Rooms sorted by id as an aligned text table under a header row (no trailing spaces)."""
    rows = [COLUMNS, *sorted((state_row(s, tz, now) for s in states), key=lambda row: row[0])]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def _ends(event: Mapping[str, Any], key: str, label: str, tz: tzinfo, now: datetime) -> str:
    shown = local_time(event.get(key), tz, now)
    return "" if shown == NONE else f", {label} {shown}"


def _minutes(value: float) -> str:
    return f"{value:g} min"


def answer_line(command: str, event: Mapping[str, Any], tz: tzinfo, now: datetime, *, minutes: float = 0.0) -> str:
    """The line `relaxd <command> ROOM` prints for the event that answered it (not a rejection)."""
    room, name = event.get("room", "?"), event.get("event")
    phase = phase_text(event, "phase")
    session_ends = _ends(event, "session_ends_at", "session ends", tz, now)
    if name == "session_started":
        count = event.get("phase_count")
        phases = f"{count} phase{'s' if count != 1 else ''}" if isinstance(count, int) else "started"
        return f"{room}: started {event.get('routine', '?')} ({phases}{session_ends})"
    if name == "session_stopped":
        return f"{room}: stopped; the room is being restored"
    if name == "session_paused":
        return f"{room}: paused in {phase}"
    if name == "session_resumed":
        return f"{room}: resumed {phase}{session_ends}"
    if name == "phase_started":
        return f"{room}: skipped to {phase}{_ends(event, 'phase_ends_at', 'phase ends', tz, now)}"
    if name == "session_finished":
        return f"{room}: skipped the last phase; the session finished and the room is being restored"
    if name == "session_extended":
        if not session_ends:
            return f"{room}: extended by {_minutes(minutes)} (paused: the session ends {_minutes(minutes)} later)"
        return f"{room}: extended by {_minutes(minutes)}{session_ends}"
    return f"{room}: {command}: {name}"

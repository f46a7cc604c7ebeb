"""The room lifecycle as one explicit table: for every state, what every command does (or why not)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from relaxd.core.events import Action, RoomStateName

LifeState = Literal["idle", "starting", "running", "paused", "restoring", "restore_pending"]
LIFE_STATES: tuple[LifeState, ...] = ("idle", "starting", "running", "paused", "restoring", "restore_pending")
# What the engine does for an accepted command.
Step = Literal["start", "stop", "stop_when_started", "pause", "resume", "skip", "extend", "retry_restore"]

# The published `state`: `starting` is not announced (session_started comes once the room's snapshot
# is saved), and a restore waiting for its next try is still `restoring` (the room is not given back).
PUBLIC: dict[LifeState, RoomStateName] = {
    "idle": "idle",
    "starting": "idle",
    "running": "running",
    "paused": "paused",
    "restoring": "restoring",
    "restore_pending": "restoring",
}

_ALL_REJECTED: dict[Action, Step | None] = dict.fromkeys(
    ("start", "stop", "toggle", "pause", "resume", "skip", "extend"), None
)
# None: rejected with `cannot <action> while <state>` (never queued into a later session).
TABLE: dict[LifeState, dict[Action, Step | None]] = {
    "idle": {**_ALL_REJECTED, "start": "start", "toggle": "start"},
    # A stop while the snapshot is being taken ends the session as soon as it exists, before any change.
    "starting": {**_ALL_REJECTED, "stop": "stop_when_started", "toggle": "stop_when_started"},
    "running": {
        **_ALL_REJECTED,
        "stop": "stop",
        "toggle": "stop",
        "pause": "pause",
        "skip": "skip",
        "extend": "extend",
    },
    "paused": {**_ALL_REJECTED, "stop": "stop", "toggle": "stop", "resume": "resume", "extend": "extend"},
    # A double tap during the restore fade must not start the next session, nor pause or stop anything.
    "restoring": dict(_ALL_REJECTED),
    # The last restore failed: stop (or the button) tries again now instead of at the next back-off.
    "restore_pending": {**_ALL_REJECTED, "stop": "retry_restore", "toggle": "retry_restore"},
}

# What the docs say each step does (docs/lifecycle.md is checked against this table by a test).
STEP_MEANING: dict[Step, str] = {
    "start": "snapshot the room, save it, then session_started and the first phase",
    "stop": "session_stopped, then restore",
    "stop_when_started": "session_started, session_stopped and room_restored as soon as the snapshot is saved "
    "(nothing in the room changed)",
    "pause": "session_paused; the timeline holds",
    "resume": "session_resumed; the timeline goes on",
    "skip": "the next phase now (or session_finished and restore after the last)",
    "extend": "session_extended by minutes (default 5)",
    "retry_restore": "restore again now",
}


@dataclass(frozen=True)
class Decision:
    """An accepted command's step, or the reason it is rejected."""

    step: Step | None
    reason: str | None = None


def decide(state: LifeState, action: Action) -> Decision:
    step = TABLE[state][action]
    if step is not None:
        return Decision(step)
    shown = "starting" if state == "starting" else PUBLIC[state]
    return Decision(None, f"cannot {action} while {shown}")

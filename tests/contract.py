"""The contract's names, written out independently of the code, for tests that hold the code to them."""

from __future__ import annotations

# Every key of `<base>/<room>/state`, always present.
STATE_FIELDS = {
    "room",
    "state",
    "session_id",
    "routine",
    "phase",
    "phase_index",
    "phase_count",
    "phase_started_at",
    "phase_ends_at",
    "session_started_at",
    "session_ends_at",
    "next_session_at",
    "next_routine",
    "devices",
}

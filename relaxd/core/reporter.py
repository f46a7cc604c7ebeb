"""What a room says: its events (numbered per room) and its retained state, built from the lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from relaxd.core.events import Event, RoomState, iso_utc
from relaxd.core.lifecycle import PUBLIC, LifeState
from relaxd.core.ports import Clock, EventBus
from relaxd.core.timeline import Session


class Reporter:
    """Publishes one room's events and state on the bus; keeps the last state for `status`."""

    def __init__(self, room_id: str, bus: EventBus, clock: Clock) -> None:
        self.room_id = room_id
        self.bus = bus
        self.clock = clock
        self.seq = 0
        self.last_state: dict[str, Any] = RoomState(room=room_id, state="idle").payload()

    def emit(self, name: str, fields: dict[str, Any]) -> None:
        self.seq += 1
        at = iso_utc(self.clock.now()) or ""
        kept = {k: v for k, v in fields.items() if v is not None}
        event = Event(event=name, room=self.room_id, at=at, seq=self.seq, **kept)  # type: ignore[arg-type]
        self.bus.publish_event(self.room_id, event.payload())

    def publish_state(
        self,
        life: LifeState,
        session: Session | None,
        routine: str,
        next_session_at: datetime | None,
        online: dict[str, bool],
    ) -> None:
        state = RoomState(
            room=self.room_id,
            state=PUBLIC[life],
            routine=routine,
            next_session_at=iso_utc(next_session_at),
            devices={n: "online" if up else "offline" for n, up in online.items()},
        )
        if session is not None and life in ("running", "paused", "restoring", "restore_pending"):
            session.fill_state(state, self.clock, running=life == "running")
        self.last_state = state.payload()
        self.bus.publish_state(self.room_id, self.last_state, state.phase or "idle")


def session_fields(
    session: Session | None, clock: Clock, life: LifeState, reason: str | None = None, *, ended: bool = False
) -> dict[str, Any]:
    if session is None:
        return {"reason": reason}
    return session.session_fields(clock, paused=life == "paused", reason=reason, ended=ended)


def phase_fields(session: Session, clock: Clock, life: LifeState) -> dict[str, Any]:
    return session.phase_fields(clock, paused=life == "paused")

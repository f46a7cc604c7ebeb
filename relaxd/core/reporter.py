"""What a room says: its events (numbered per room) and its retained state, built from the lifecycle."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any

from relaxd.core.events import Event, RoomState, iso_utc
from relaxd.core.lifecycle import PUBLIC, LifeState
from relaxd.core.ports import Clock, EventBus, SeqStore
from relaxd.core.routines import Routine
from relaxd.core.timeline import Session

log = logging.getLogger(__name__)
# Event numbers are reserved on disk this many at a time, topped up half-way: one small write per
# thousands of events rather than one per event, and a crash skips at most this many numbers.
SEQ_BLOCK = 10_000
Spawn = Callable[[Coroutine[Any, Any, None]], Any]


class Reporter:
    """Publishes one room's events and state on the bus; keeps the last state for `status`."""

    def __init__(
        self, room_id: str, bus: EventBus, clock: Clock, seq_store: SeqStore | None = None, spawn: Spawn | None = None
    ) -> None:
        self.room_id = room_id
        self.bus = bus
        self.clock = clock
        self.seq = 0
        self.seq_store = seq_store
        self.spawn = spawn
        self._reserved: int | None = None  # seq numbers up to this one are on disk; None: not kept
        self._reserving = False
        self.last_state: dict[str, Any] = RoomState(room=room_id, state="idle").payload()

    async def resume_seq(self) -> None:
        """At start-up, before any event: go on above every seq a former run may have used."""
        if self.seq_store is None:
            return
        try:
            last = await self.seq_store.load(self.room_id)
        except OSError as exc:
            log.error("room %s: cannot read the event numbers: %s", self.room_id, exc)
            last = None
        if last is None:
            # Seconds since 1970 are above any count a former run can have reached.
            last = int(self.clock.now().timestamp())
            log.warning("room %s: event numbers unknown; seq goes on from %d", self.room_id, last)
        self.seq = max(self.seq, last)
        self._reserving = True
        await self._reserve(self.seq + SEQ_BLOCK)

    async def _reserve(self, upto: int) -> None:
        assert self.seq_store is not None
        try:
            await self.seq_store.save(self.room_id, upto)
            self._reserved = upto
        except OSError as exc:
            log.error("room %s: cannot save the event numbers (%s); after a crash seq may repeat", self.room_id, exc)
            self._reserved = self._reserved or upto  # tried again at the next top-up
        finally:
            self._reserving = False

    async def save_seq(self) -> None:
        """At shutdown, after the last event: the exact number, so the next run goes on from it."""
        if self.seq_store is None or self._reserved is None:
            return
        try:
            await self.seq_store.save(self.room_id, self.seq)
        except OSError as exc:
            log.error("room %s: cannot save the event numbers: %s", self.room_id, exc)

    def emit(self, name: str, fields: dict[str, Any]) -> None:
        self.seq += 1
        at = iso_utc(self.clock.now()) or ""
        kept = {k: v for k, v in fields.items() if v is not None}
        event = Event(event=name, room=self.room_id, at=at, seq=self.seq, **kept)  # type: ignore[arg-type]
        self.bus.publish_event(self.room_id, event.payload())
        reserved = self._reserved
        low = reserved is not None and self.seq >= reserved - SEQ_BLOCK // 2
        if low and reserved is not None and self.spawn is not None and not self._reserving:
            self._reserving = True
            self.spawn(self._reserve(max(reserved, self.seq) + SEQ_BLOCK))

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
            next_routine=routine,
            devices={n: "online" if up else "offline" for n, up in online.items()},
        )
        if session is not None and life in ("running", "paused", "restoring", "restore_pending"):
            session.fill_state(state, self.clock, running=life == "running")
        self.last_state = state.payload()
        # The phase topic: the phase while a session runs, `restoring` while the room is given back
        # (a crash's restore included), else `idle`.
        if state.state == "restoring":
            phase = "restoring"
        elif state.state in ("running", "paused") and state.phase:
            phase = state.phase
        else:
            phase = "idle"
        self.bus.publish_state(self.room_id, self.last_state, phase)


def session_fields(
    session: Session | None, clock: Clock, life: LifeState, reason: str | None = None, *, ended: bool = False
) -> dict[str, Any]:
    if session is None:
        return {"reason": reason}
    return session.session_fields(clock, paused=life == "paused", reason=reason, ended=ended)


def phase_fields(session: Session, clock: Clock, life: LifeState) -> dict[str, Any]:
    return session.phase_fields(clock, paused=life == "paused")


def crashed_fields(meta: dict[str, Any], routines: Mapping[str, Routine]) -> dict[str, Any]:
    """The `session_stopped` of a session that a crash ended, from what its snapshot file kept."""
    routine = routines.get(str(meta.get("routine")))
    fields: dict[str, Any] = {
        "reason": "crashed",
        "session_id": meta.get("session_id"),
        "routine": meta.get("routine"),
        "phase": meta.get("phase"),
        "phase_index": meta.get("phase_index"),
        "phase_count": len(routine.phases) if routine is not None else None,
    }
    kinds = {"session_id": str, "routine": str, "phase": str, "phase_index": int, "phase_count": int}
    # The file is the former run's word: a field of the wrong kind is left out, not trusted.
    return {k: v for k, v in fields.items() if k == "reason" or (isinstance(v, kinds[k]) and not isinstance(v, bool))}

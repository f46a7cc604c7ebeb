"""One room's session state machine: start, phases, pause/resume/skip/extend, stop, restore."""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from relaxd.core.events import DEFAULT_EXTEND_MINUTES, Command, Event, RoomState, RoomStateName, iso_utc
from relaxd.core.ports import Clock, EventBus
from relaxd.core.room import Room, SnapshotNotSaved
from relaxd.core.routines import Routine
from relaxd.core.timeline import Session

log = logging.getLogger(__name__)
MAX_RESTORE_BACKOFF_S = 300.0


class RoomEngine:
    """Drives one room. Commands arrive from any thread; all work happens in process()."""

    def __init__(
        self,
        room: Room,
        bus: EventBus,
        clock: Clock,
        routines: Mapping[str, Routine],
        *,
        default_routine: str = "classic",
        retry_every_s: float = 10.0,
    ) -> None:
        self.room = room
        self.room_id = room.room_id
        self.bus = bus
        self.clock = clock
        self.routines = dict(routines)
        self.selected_routine = default_routine
        self.retry_every_s = retry_every_s
        self.state: RoomStateName = "idle"
        self.session: Session | None = None
        self.next_session_at: datetime | None = None
        self._seq = 0
        self._inbox: queue.SimpleQueue[Command | tuple[str, Any]] = queue.SimpleQueue()
        self.wake = threading.Event()
        self._next_retry: float | None = None
        self._restore_backoff_s = retry_every_s
        self._next_restore: float | None = None
        self._state_lock = threading.Lock()
        self._last_state: dict[str, Any] = RoomState(room=self.room_id, state="idle").payload()
        room.on_event = self._device_event

    # --- inputs (any thread) ------------------------------------------------------------------

    def submit(self, command: Command) -> None:
        self._inbox.put(command)
        self.wake.set()

    def select_routine(self, name: str) -> None:
        self._inbox.put(("select", name))
        self.wake.set()

    def set_next_session_at(self, moment: datetime | None) -> None:
        self._inbox.put(("next_session_at", moment))
        self.wake.set()

    def report(self, name: str, fields: dict[str, Any]) -> None:
        """Emit an event for another part of the daemon (the scheduler) in this room's seq; thread-safe."""
        self._inbox.put(("emit", (name, fields)))
        self.wake.set()

    def status(self) -> dict[str, Any]:
        with self._state_lock:
            return dict(self._last_state)

    # --- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """The room's thread: process, sleep until the next deadline or command, until stop."""
        while not stop.is_set():
            self.process()
            self.clock.wait(self.wake, self.seconds_until_due())
            self.wake.clear()

    def seconds_until_due(self) -> float | None:
        due = [t for t in (self._next_retry, self._next_restore) if t is not None]
        s = self.session
        if s is not None and self.state == "running":
            due.append(s.phase_end(s.phase_index))
            if s.next_check_in is not None:
                due.append(s.next_check_in)
        return max(0.0, min(due) - self.clock.monotonic()) if due else None

    def process(self) -> None:
        """Handle queued commands, then whatever is due by now."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Command):
                self._handle(item)
            elif item[0] == "reject":
                reason, transaction = item[1]
                self._emit("command_rejected", {"reason": reason, "transaction": transaction})
            elif item[0] == "select":
                self._select(item[1])
            elif item[0] == "next_session_at":
                if item[1] != self.next_session_at:
                    self.next_session_at = item[1]
                    self._publish_state()
            elif item[0] == "emit":
                self._emit(*item[1])
        self._advance()

    def _advance(self) -> None:
        now = self.clock.monotonic()
        s = self.session
        if s is not None and self.state == "running":
            while self.session is s and now >= s.phase_end(s.phase_index):
                if s.phase_index + 1 < len(s.routine.phases):
                    self._enter_phase(s.phase_index + 1)
                else:
                    self._emit("session_finished", self._session_fields(reason="completed"))
                    self._restore()
            if self.session is s and s.next_check_in is not None and now >= s.next_check_in:
                every = s.routine.check_in_every or 0.0
                while s.next_check_in <= now:
                    s.next_check_in += every
                self._emit("check_in", self._phase_fields())
        if self._next_retry is not None and now >= self._next_retry:
            self._next_retry = None
            self.room.retry()
            self._schedule_retry()
        if self._next_restore is not None and now >= self._next_restore:
            self._next_restore = None
            self._restore()

    # --- commands -----------------------------------------------------------------------------

    def _handle(self, cmd: Command) -> None:
        action = cmd.action
        if action == "toggle":
            action = "start" if self.state == "idle" else "stop"
        allowed = {
            "start": ("idle",),
            "stop": ("running", "paused"),
            "pause": ("running",),
            "resume": ("paused",),
            "skip": ("running",),
            "extend": ("running", "paused"),
        }[action]
        if self.state not in allowed:
            if cmd.schedule_id is not None:
                # A schedule never interrupts a running session; it reports the run it skipped.
                busy = {"state": self.state, "session_id": self.session.session_id if self.session else None}
                self._schedule_missed(cmd, "room_busy", busy)
                return
            self._reject(cmd, f"cannot {action} while {self.state}")
            return
        getattr(self, f"_do_{action}")(cmd)

    def _reject(self, cmd: Command | None, reason: str) -> None:
        if cmd is not None and cmd.schedule_id is not None:
            self._schedule_missed(cmd, "start_failed", {"error": reason})
            return
        log.info("room %s: command rejected: %s", self.room_id, reason)
        self._emit("command_rejected", {"reason": reason, "transaction": cmd.transaction if cmd else None})

    def _schedule_missed(self, cmd: Command, reason: str, details: dict[str, Any]) -> None:
        log.warning("room %s: schedule %s missed: %s", self.room_id, cmd.schedule_id, reason)
        self._emit(
            "schedule_missed",
            {
                "reason": reason,
                "schedule_id": cmd.schedule_id,
                "routine": cmd.routine,
                "details": {**(cmd.schedule_details or {}), **details},
            },
        )

    def reject(self, reason: str, transaction: str | None = None) -> None:
        """Report a command that never became a Command (malformed payload); thread-safe."""
        self._inbox.put(("reject", (reason, transaction)))
        self.wake.set()

    def _do_start(self, cmd: Command) -> None:
        name = cmd.routine or self.selected_routine
        routine = self.routines.get(name)
        if routine is None:
            self._reject(cmd, f"unknown routine {name!r}; known: {', '.join(sorted(self.routines))}")
            return
        session = Session(
            session_id=uuid.uuid4().hex[:12],
            routine_name=name,
            routine=routine,
            start_mono=self.clock.monotonic(),
            started_at=self.clock.now(),
        )
        meta = {"session_id": session.session_id, "routine": name, "started_at": iso_utc(session.started_at)}
        try:
            self.room.begin(meta)
        except SnapshotNotSaved as exc:
            log.error("room %s: %s", self.room_id, exc)
            self._reject(cmd, f"{exc}; nothing was changed")
            return
        if routine.check_in_every:
            session.next_check_in = session.start_mono + routine.check_in_every
        self.session = session
        self.state = "running"
        self._emit(
            "session_started",
            {**self._session_fields(cmd.source), "transaction": cmd.transaction, "schedule_id": cmd.schedule_id},
        )
        if cmd.schedule_id is not None:
            self._emit(
                "schedule_fired",
                {**self._session_fields(), "schedule_id": cmd.schedule_id, "details": cmd.schedule_details},
            )
        self._enter_phase(0)
        self._schedule_retry()

    def _do_stop(self, cmd: Command) -> None:
        self._emit("session_stopped", {**self._session_fields(cmd.source), "transaction": cmd.transaction})
        self._restore()

    def _do_pause(self, cmd: Command) -> None:
        assert self.session is not None
        self.session.paused_at = self.clock.monotonic()
        self.state = "paused"
        self._emit("session_paused", {**self._phase_fields(), "transaction": cmd.transaction})
        self._publish_state()

    def _do_resume(self, cmd: Command) -> None:
        s = self.session
        assert s is not None and s.paused_at is not None
        held = self.clock.monotonic() - s.paused_at
        s.offset_s += held
        if s.next_check_in is not None:
            s.next_check_in += held
        s.paused_at = None
        self.state = "running"
        self._emit("session_resumed", {**self._phase_fields(), "transaction": cmd.transaction})
        self._publish_state()

    def _do_skip(self, cmd: Command) -> None:
        s = self.session
        assert s is not None
        s.offset_s -= s.phase_end(s.phase_index) - self.clock.monotonic()
        if s.phase_index + 1 < len(s.routine.phases):
            self._enter_phase(s.phase_index + 1, cmd.transaction)
        else:
            self._emit("session_finished", {**self._session_fields(reason="skipped"), "transaction": cmd.transaction})
            self._restore()

    def _do_extend(self, cmd: Command) -> None:
        s = self.session
        assert s is not None
        s.offset_s += (cmd.minutes or DEFAULT_EXTEND_MINUTES) * 60
        self._emit("session_extended", {**self._phase_fields(), "transaction": cmd.transaction})
        self._publish_state()

    def _select(self, name: str) -> None:
        if name not in self.routines:
            self._reject(None, f"unknown routine {name!r}")
            return
        self.selected_routine = name
        self._publish_state()

    # --- phases and restore -------------------------------------------------------------------

    def _enter_phase(self, index: int, transaction: str | None = None) -> None:
        s = self.session
        assert s is not None
        s.phase_index = index
        self._emit("phase_started", {**self._phase_fields(), "transaction": transaction})
        self._publish_state()
        self.room.apply(s.phase)
        self._publish_state()  # device availability may have changed

    def _restore(self) -> None:
        self.state = "restoring"
        self._next_retry = None  # restore retries have their own backoff
        self._publish_state()
        base = self._session_fields() if self.session else {"session_id": self.room.session_id}
        outcome = self.room.restore()
        if outcome.ok:
            self._emit("room_restored", {**base, "details": outcome.details})
            self.session = None
            self.state = "idle"
            self._next_restore = None
            self._next_retry = None
            self._restore_backoff_s = self.retry_every_s
        else:
            reason = "; ".join(f"{d}: {e}" for d, e in sorted(outcome.errors.items()))
            self._emit("restore_failed", {**base, "reason": reason, "details": outcome.details})
            self._next_restore = self.clock.monotonic() + self._restore_backoff_s
            self._restore_backoff_s = min(self._restore_backoff_s * 2, MAX_RESTORE_BACKOFF_S)
        self._publish_state()

    def recover(self) -> None:
        """At start-up: restore a room left changed by a daemon that died mid-session."""
        if self.room.load_leftover():
            log.warning("room %s: restoring after an unfinished session", self.room_id)
            self._restore()
        else:
            if self.room.leftover_problem:
                # Nothing to retry: the room may still be as a crashed session left it, so say so.
                self._emit(
                    "restore_failed",
                    {"reason": f"{self.room.leftover_problem}; the room could not be restored automatically"},
                )
            self.room.probe()
            self._publish_state()

    def shutdown(self) -> None:
        """Stop any session and restore the room now (daemon shutdown); leftovers stay on disk."""
        self.process()
        if self.state in ("running", "paused"):
            self._emit("session_stopped", self._session_fields(reason="shutdown"))
        if self.state != "idle" or self.room.has_pending_restore:
            self._restore()

    def _schedule_retry(self) -> None:
        if self.session is not None and self.room.needs_retry:
            self._next_retry = self.clock.monotonic() + self.retry_every_s

    def _device_event(self, name: str, fields: dict[str, Any]) -> None:
        self._emit(name, {**self._session_fields(), **fields} if self.session else fields)
        self._publish_state()
        if name == "device_unavailable" and self.state in ("running", "paused") and self._next_retry is None:
            self._next_retry = self.clock.monotonic() + self.retry_every_s

    # --- payloads -----------------------------------------------------------------------------

    def _session_fields(self, reason: str | None = None) -> dict[str, Any]:
        if self.session is None:
            return {"reason": reason}
        return self.session.session_fields(self.clock, paused=self.state == "paused", reason=reason)

    def _phase_fields(self) -> dict[str, Any]:
        assert self.session is not None
        return self.session.phase_fields(self.clock, paused=self.state == "paused")

    def _emit(self, name: str, fields: dict[str, Any]) -> None:
        self._seq += 1
        event = Event(
            event=name,
            room=self.room_id,
            at=iso_utc(self.clock.now()) or "",  # type: ignore[arg-type]
            seq=self._seq,
            **{k: v for k, v in fields.items() if v is not None},
        )
        self.bus.publish_event(self.room_id, event.payload())

    def _publish_state(self) -> None:
        s = self.session
        state = RoomState(
            room=self.room_id,
            state=self.state,
            routine=self.selected_routine,
            next_session_at=iso_utc(self.next_session_at),
            devices={n: "online" if up else "offline" for n, up in self.room.online.items()},
        )
        if s is not None:
            s.fill_state(state, self.clock, running=self.state == "running")
        payload = state.payload()
        with self._state_lock:
            self._last_state = payload
        self.bus.publish_state(self.room_id, payload, state.phase or "idle")

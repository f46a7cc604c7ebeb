"""The commands a room takes during a session, as the lifecycle table decides them (a mixin of the engine)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from relaxd.core.breath_pacer import BreathPacer
from relaxd.core.events import DEFAULT_EXTEND_MINUTES, Command, Transaction, excerpt, iso_utc
from relaxd.core.lifecycle import PUBLIC, LifeState, decide
from relaxd.core.ports import Clock, SeqStore
from relaxd.core.room import RestoreOutcome, Room, SnapshotNotSaved
from relaxd.core.room_loop import RoomLoop
from relaxd.core.timeline import Session

log = logging.getLogger(__name__)


class SessionCommands(RoomLoop):
    """Every accepted command is a `_do_<step>` here (or in the engine for start); the rest is rejected."""

    room_id: str
    clock: Clock
    life: LifeState
    session: Session | None
    routines: dict[str, Any]
    selected_routine: str
    room: Room
    breath: BreathPacer
    _work: Any
    _stopping: bool
    _next_restore: float | None
    _stop_when_started: Command | None
    records: SeqStore | None
    _restore_answers: Transaction

    def _emit(self, name: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def _publish_state(self) -> None:
        raise NotImplementedError

    def _begin_restore(self) -> None:
        raise NotImplementedError

    def _enter_phase(self, index: int, transaction: Transaction = None) -> None:
        raise NotImplementedError

    def _session_fields(self, reason: str | None = None, *, ended: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def _phase_fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def _schedule_retry(self) -> None:
        raise NotImplementedError

    def _command(self, cmd: Command) -> None:
        decision = decide(self.life, cmd.action)
        if self._stopping and decision.step is not None:
            decision = decide("restoring", cmd.action)  # shutting down: nothing new starts
        if decision.step is None:
            if cmd.schedule_id is not None:
                # A schedule never interrupts a running session; it reports the run it skipped.
                busy = {"state": PUBLIC[self.life], "session_id": self.session.session_id if self.session else None}
                self._schedule_missed(cmd, "room_busy", busy)
                return
            reason = decision.reason or "rejected"
            if self.life == "restore_pending" and self._next_restore is not None:
                left_s = self._next_restore - self.clock.monotonic()
                reason += f" (the last restore failed; next try in {left_s:.0f} s)"
            self._reject(cmd, reason)
            return
        getattr(self, f"_do_{decision.step}")(cmd)

    def _reject(self, cmd: Command | None, reason: str) -> None:
        if cmd is not None and cmd.schedule_id is not None:
            self._schedule_missed(cmd, "start_failed", {"error": reason})
            return
        log.info("room %s: command rejected: %s", self.room_id, reason)
        self._emit("command_rejected", {"reason": reason, "transaction": cmd.transaction if cmd else None})

    def _schedule_missed(self, cmd: Command, reason: str, details: dict[str, Any]) -> None:
        log.warning("room %s: schedule %s missed: %s", self.room_id, cmd.schedule_id, reason)
        fields = {"reason": reason, "schedule_id": cmd.schedule_id, "routine": cmd.routine}
        self._emit("schedule_missed", {**fields, "details": {**(cmd.schedule_details or {}), **details}})

    def _do_stop_when_started(self, cmd: Command) -> None:
        if self._stop_when_started is not None:  # one answer per command: the later one is refused
            self._reject(cmd, f"cannot {cmd.action} while starting (a stop waits for the snapshot already)")
            return
        self._stop_when_started = cmd

    def _do_stop(self, cmd: Command) -> None:
        s = self.session
        session_id, routine = (s.session_id, s.routine_name) if s else (None, None)
        log.info("room %s: session %s stopped (%s, by %s)", self.room_id, session_id, routine, cmd.source)
        self._emit("session_stopped", {**self._session_fields(cmd.source, ended=True), "transaction": cmd.transaction})
        self._begin_restore()

    def _do_retry_restore(self, cmd: Command) -> None:
        # Answered by the outcome of this restore (room_restored or restore_failed), which echoes it.
        self._restore_answers = cmd.transaction
        self._begin_restore()

    def _do_pause(self, cmd: Command) -> None:
        assert self.session is not None
        self.session.pause(self.clock.monotonic())
        self.breath.pause(self.clock.monotonic())  # the breath is held where it is
        self.life = "paused"
        self._emit("session_paused", {**self._phase_fields(), "transaction": cmd.transaction})
        self._publish_state()

    def _do_resume(self, cmd: Command) -> None:
        assert self.session is not None
        self.session.resume(self.clock.monotonic())
        self.breath.resume(self.clock.monotonic())
        self.life = "running"
        self._emit("session_resumed", {**self._phase_fields(), "transaction": cmd.transaction})
        self._publish_state()

    def _do_skip(self, cmd: Command) -> None:
        s = self.session
        assert s is not None
        s.skip(self.clock.monotonic())
        if not s.is_last_phase:
            self._enter_phase(s.phase_index + 1, cmd.transaction)
            return
        log.info("room %s: session %s finished (%s, last phase skipped)", self.room_id, s.session_id, s.routine_name)
        self._emit("session_finished", {**self._session_fields("skipped", ended=True), "transaction": cmd.transaction})
        self._begin_restore()

    def _do_extend(self, cmd: Command) -> None:
        assert self.session is not None
        self.session.extend(cmd.minutes or DEFAULT_EXTEND_MINUTES)
        self._emit("session_extended", {**self._phase_fields(), "transaction": cmd.transaction})
        self._publish_state()

    def _select(self, name: str) -> None:
        if name not in self.routines:
            self._reject(None, f"unknown routine {excerpt(name)}; known: {', '.join(sorted(self.routines))}")
            return
        if name != self.selected_routine and self.records is not None:
            self._spawn(self._save_choice(self.records, name))
        self.selected_routine = name
        self._publish_state()

    async def _save_choice(self, records: SeqStore, name: str) -> None:
        try:
            await records.save_choice(self.room_id, name)
        except OSError as exc:  # the choice holds until relaxd restarts
            log.error("room %s: cannot keep the routine choice in the state directory: %s", self.room_id, exc)

    # --- starting: the snapshot first, then the session -----------------------------------------

    def _do_start(self, cmd: Command) -> None:
        name = cmd.routine or self.selected_routine
        routine = self.routines.get(name)
        if routine is None:
            self._reject(cmd, f"unknown routine {name!r}; known: {', '.join(sorted(self.routines))}")
            return
        now = self.clock.monotonic()
        session = Session(uuid.uuid4().hex[:12], name, routine, start_mono=now, started_at=self.clock.now())
        self.life = "starting"
        self._stop_when_started = None
        meta = {
            "session_id": session.session_id,
            "routine": name,
            "started_at": iso_utc(session.started_at),
            "phase": routine.phases[0].name,
            "phase_index": 0,
        }
        self._work = self._spawn(self._start(session, cmd, meta))

    async def _start(self, session: Session, cmd: Command, meta: dict[str, Any]) -> None:
        error: SnapshotNotSaved | None = None
        try:
            await self.room.begin(meta)
        except SnapshotNotSaved as exc:
            error = exc
        except Exception as exc:  # a bug while snapshotting: nothing was changed yet, so say so and go on
            self._internal_error(exc)
            await self.room.discard()
            error = SnapshotNotSaved(f"internal error while taking the snapshot ({type(exc).__name__})")
        self._put("started", (session, cmd, error))

    def _started(self, session: Session, cmd: Command, error: SnapshotNotSaved | None) -> None:
        self._work = None
        if error is not None:
            log.error("room %s: %s", self.room_id, error)
            self.life = "idle"
            self._reject(cmd, f"{error}; nothing was changed")
            self._publish_state()
            return
        # The timeline starts when the room is ours: a slow snapshot does not eat the first phase.
        now = self.clock.monotonic()
        session.start_mono, session.started_at = now, self.clock.now()
        if session.routine.check_in_every:
            session.next_check_in = now + session.routine.check_in_every
        session.enter(0, now)
        self.session, self.life = session, "running"
        log.info(
            "room %s: session %s started (%s, by %s)",
            self.room_id,
            session.session_id,
            session.routine_name,
            cmd.source,
        )
        started = {**self._session_fields(cmd.source), "transaction": cmd.transaction, "schedule_id": cmd.schedule_id}
        self._emit("session_started", started)
        if cmd.schedule_id is not None:
            fired = {**self._session_fields(), "schedule_id": cmd.schedule_id, "details": cmd.schedule_details}
            self._emit("schedule_fired", fired)
        stop, self._stop_when_started = self._stop_when_started, None
        if stop is not None or self._stopping:
            # Stopped while the snapshot was taken: nothing in the room changed, nothing to restore.
            reason = "shutdown" if self._stopping or stop is None else stop.source
            log.info("room %s: session %s stopped while starting (by %s)", self.room_id, session.session_id, reason)
            transaction = stop.transaction if stop is not None else None
            self._emit("session_stopped", {**self._session_fields(reason, ended=True), "transaction": transaction})
            self.life = "restoring"
            self._work = self._spawn(self._discard())
            return
        self._enter_phase(0)
        self._schedule_retry()

    async def _discard(self) -> None:
        await self.room.discard()
        self._put("restored", RestoreOutcome(ok=True, details={}))

"""One room's engine: the lifecycle table (core/lifecycle.py) carried out, device work as owned tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from datetime import datetime
from typing import Any

from relaxd.core.breath_budget import BreathBudget
from relaxd.core.breath_pacer import BreathPacer
from relaxd.core.commands import SessionCommands
from relaxd.core.events import Command, Transaction
from relaxd.core.lifecycle import PUBLIC, LifeState
from relaxd.core.ports import Clock, EventBus, SeqStore
from relaxd.core.reporter import Reporter, crashed_fields, phase_fields, session_fields
from relaxd.core.room import RestoreOutcome, Room
from relaxd.core.routines import Routine
from relaxd.core.timeline import Session

log = logging.getLogger(__name__)
MAX_RESTORE_BACKOFF_S = 300.0


class RoomEngine(SessionCommands):
    """Drives one room: commands decided by the lifecycle table, phases on time, restore retried with
    back-off from every path. Inputs are queued (RoomLoop); nothing here waits for a device."""

    def __init__(
        self,
        room: Room,
        bus: EventBus,
        clock: Clock,
        routines: Mapping[str, Routine],
        *,
        default_routine: str = "classic",
        retry_every_s: float = 10.0,
        seq_store: SeqStore | None = None,
        breath_budget: BreathBudget | None = None,
        breath_topic: str | None = None,
    ) -> None:
        super().__init__(f"room {room.room_id}", clock)
        self.room = room
        self.room_id = room.room_id
        self.routines = dict(routines)
        self.selected_routine = default_routine
        self.retry_every_s = retry_every_s
        self.records = seq_store
        self.report_to = Reporter(room.room_id, bus, clock, seq_store, self._spawn)
        self.breath = BreathPacer(room, bus, clock, breath_budget or BreathBudget(clock), breath_topic)
        self.life: LifeState = "idle"
        self.session: Session | None = None
        self.next_session_at: datetime | None = None
        self.pong = 0  # the last liveness ping handled (the watchdog's proof that run() is alive)
        self._work: Any = None  # the start or restore task in progress
        self._checking: Any = None  # a device retry or health check task
        self._stop_when_started: Command | None = None
        self._next_retry: float | None = None
        self._next_restore: float | None = None
        self._restore_backoff_s = retry_every_s
        self._stopping = False
        self._restoring_id: str | None = None  # the session whose room is being given back
        self._restore_answers: Transaction = None  # a stop that asked for this restore attempt
        room.on_event = self._device_event

    # --- inputs (on the event loop, from anywhere) -----------------------------------------------

    def submit(self, command: Command) -> None:
        self._put("command", command)

    def reject(self, reason: str, transaction: Transaction = None) -> None:
        """Report a command that never became a Command (malformed payload)."""
        self._put("reject", (reason, transaction))

    def select_routine(self, name: str) -> None:
        self._put("select", name)

    def set_next_session_at(self, moment: datetime | None) -> None:
        self._put("next_session_at", moment)

    def report(self, name: str, fields: dict[str, Any]) -> None:
        """Emit an event for another part of the daemon (the scheduler) in this room's seq."""
        self._put("emit", (name, fields))

    def check_devices(self) -> None:
        """A health check of every device, unless the room is busy with them anyway."""
        self._put("check")

    def ping(self, token: int) -> None:
        self._put("ping", token)

    def status(self) -> dict[str, Any]:
        return dict(self.report_to.last_state)

    @property
    def public_state(self) -> str:
        return PUBLIC[self.life]

    def pending_work(self) -> list[Any]:
        """The room's tasks still running (a start, a restore, a check, scene work)."""
        return [*self.owned_tasks(), *(t for t in self.room.work_tasks() if not t.done())]

    # --- the handlers (never awaiting) -------------------------------------------------------------

    def _handle(self, kind: str, value: Any) -> None:
        if kind == "command":
            self._command(value)
        elif kind == "reject":
            self._emit("command_rejected", dict(zip(("reason", "transaction"), value, strict=True)))
        elif kind == "select":
            self._select(value)
        elif kind == "next_session_at":
            if value != self.next_session_at:
                self.next_session_at = value
                self._publish_state()
        elif kind == "emit":
            self._emit(*value)
        elif kind == "ping":
            self.pong = value
        elif kind == "check":
            self._health_check()
        elif kind == "started":
            self._started(*value)
        elif kind == "restored":
            self._restored(value)
        elif kind == "retried":
            self._schedule_retry()
        elif kind == "due":
            self._advance()

    def _internal_error(self, exc: Exception) -> None:
        """A bug: said with its traceback and as an event; the room is given back and goes on serving."""
        log.error("room %s: internal error", self.room_id, exc_info=exc)
        try:
            self._emit("internal_error", {**self._session_fields(), "reason": f"{type(exc).__name__}: {exc}"[:300]})
            if self.life in ("running", "paused"):
                self._emit("session_stopped", self._session_fields(reason="internal_error", ended=True))
                self._begin_restore()
        except Exception:
            log.exception("room %s: cannot even report the internal error", self.room_id)

    def seconds_until_due(self) -> float | None:
        due = [t for t in (self._next_retry, self._next_restore) if t is not None]
        s = self.session
        if s is not None and self.life == "running" and not self._stopping:
            due += [t for t in (s.phase_end(s.phase_index), s.next_check_in, self.breath.due_at()) if t is not None]
        return max(0.0, min(due) - self.clock.monotonic()) if due else None

    def _advance(self) -> None:
        now = self.clock.monotonic()
        s = self.session
        if s is not None and self.life == "running" and not self._stopping:
            index = s.due_phase(now)
            if index is not None and index >= len(s.routine.phases):
                log.info("room %s: session %s finished (%s, completed)", self.room_id, s.session_id, s.routine_name)
                self._emit("session_finished", self._session_fields(reason="completed", ended=True))
                self._begin_restore()
                return
            if index is not None:
                self._enter_phase(index)
            if s.check_in_due(now):
                self._emit("check_in", self._phase_fields())
            self.breath.fire(now)
        if self._next_retry is not None and now >= self._next_retry:
            self._next_retry = None
            self._spawn_check(self.room.retry(), then_retry=True)
        if self._next_restore is not None and now >= self._next_restore and self.life == "restore_pending":
            self._next_restore = None
            self._begin_restore()

    # --- phases and restore -------------------------------------------------------------------

    def _enter_phase(self, index: int, transaction: Transaction = None) -> None:
        s = self.session
        assert s is not None
        s.enter(index, self.clock.monotonic())
        log.info("room %s: phase %s (%d/%d)", self.room_id, s.phase.name, index + 1, len(s.routine.phases))
        # The event and the state first: followers never wait for a bridge busy with other rooms.
        self._emit("phase_started", {**self._phase_fields(), "transaction": transaction})
        self._publish_state()
        self.room.apply(s.phase, index)
        self.breath.begin(s.phase, s.phase_end(index - 1) if index else s.start_mono)  # edges on the plan

    def _begin_restore(self) -> None:
        if self._checking is not None:
            self._checking.cancel()  # a retry must not bring a scene back while the room is given back
        self._restoring_id = self.session.session_id if self.session else self.room.session_id
        self.breath.end()
        self.life = "restoring"
        self._next_retry = None  # restore retries have their own back-off
        self._next_restore = None
        self._publish_state()
        self._work = self._spawn(self._restore())

    async def _restore(self) -> None:
        try:
            outcome = await self.room.restore()
        except Exception as exc:  # a bug while restoring (e.g. saving the snapshot): retried like any failure
            self._internal_error(exc)
            outcome = RestoreOutcome(ok=False, errors={"relaxd": f"internal error: {type(exc).__name__}: {exc}"})
        self._put("restored", outcome)

    def _restored(self, outcome: RestoreOutcome) -> None:
        self._work = None
        base: dict[str, Any] = self._session_fields() if self.session else {"session_id": self._restoring_id}
        base["transaction"], self._restore_answers = self._restore_answers, None
        if outcome.ok and outcome.unusable:
            reason = "; ".join(f"{d}: {e}" for d, e in sorted(outcome.unusable.items()))
            where = f" (kept in {outcome.set_aside})" if outcome.set_aside else ""
            log.error("room %s: cannot be restored automatically: %s", self.room_id, reason)
            reason += f"; the snapshot was set aside{where}, the room cannot be restored automatically"
            details = {**outcome.details, "given_up": outcome.unusable}
            self._emit("restore_failed", {**base, "reason": reason, "details": details})
            self.session, self.life = None, "idle"
            self._restore_backoff_s = self.retry_every_s
        elif outcome.ok:
            log.info("room %s: room restored (session %s)", self.room_id, base.get("session_id"))
            self._emit("room_restored", {**base, "details": outcome.details})
            self.session, self.life = None, "idle"
            self._restore_backoff_s = self.retry_every_s
        else:
            reason = "; ".join(f"{d}: {e}" for d, e in sorted(outcome.errors.items()))
            retry_in_s = self._restore_backoff_s
            log.warning("room %s: restore failed (%s); trying again in %.0f s", self.room_id, reason, retry_in_s)
            details = {**outcome.details, "retry_in_s": retry_in_s}
            self._emit("restore_failed", {**base, "reason": reason, "details": details})
            self.life = "restore_pending"
            self._next_restore = self.clock.monotonic() + retry_in_s
            self._restore_backoff_s = min(self._restore_backoff_s * 2, MAX_RESTORE_BACKOFF_S)
        self._publish_state()

    # --- start-up and shutdown (awaited by the daemon) ------------------------------------------

    async def recover(self) -> None:
        """At start-up: restore a room left changed by a daemon that died mid-session."""
        await self.report_to.resume_seq()
        await self._load_choice()
        if await self.room.load_leftover():
            meta = self.room.meta
            what = (meta.get("session_id"), meta.get("routine"), meta.get("phase"))
            log.warning(
                "room %s: session %s (%s) ended by a crash in phase %s; restoring the room", self.room_id, *what
            )
            self._emit("session_stopped", crashed_fields(meta, self.routines))
            self._begin_restore()
            return
        if self.room.leftover_problem:
            # Nothing to retry: the room may still be as a crashed session left it, so say so.
            reason = f"{self.room.leftover_problem}; the room could not be restored automatically"
            self._emit("restore_failed", {"reason": reason})
        self._publish_state()

    async def _load_choice(self) -> None:
        """The routine chosen over MQTT before a restart is the next start's again (if it still exists)."""
        if self.records is None:
            return
        try:
            name = await self.records.load_choice(self.room_id)
        except OSError as exc:
            log.error("room %s: cannot read the routine choice: %s", self.room_id, exc)
            return
        if name in self.routines:
            self.selected_routine = name

    async def shutdown(self, retry_every_s: float = 1.0) -> bool:
        """No phase starts any more; the session is stopped and the room restored, retried every
        retry_every_s until the caller's deadline cancels this. True when the room is given back (or
        nothing had to be); a room that cannot be restored keeps its snapshot for the next start."""
        self._stopping = True
        self._next_retry = None
        self._disarm()
        if self._checking is not None:
            self._checking.cancel()
        self._drain()
        if self.life == "starting" and self._work is not None:
            self._work.cancel()  # nothing was changed yet; begin() drops its snapshot
            await asyncio.gather(self._work, return_exceptions=True)
            self._work = None
            self._drain()
            if self.life == "starting":
                self.life = "idle"
                self._publish_state()
        if self.life in ("running", "paused"):
            log.info("room %s: session stopped (by shutdown)", self.room_id)
            self._emit("session_stopped", self._session_fields(reason="shutdown", ended=True))
            self._begin_restore()
        while self.life in ("restoring", "restore_pending"):
            if self.life == "restore_pending":
                await self.clock.sleep(retry_every_s * self.clock.speed)
                if self.life == "restore_pending":
                    self._begin_restore()
            if self._work is not None:
                await asyncio.gather(self._work, return_exceptions=True)
            await asyncio.sleep(0)
            self._drain()
        await self.report_to.save_seq()
        return self.life == "idle" and not self.room.has_pending_restore

    # --- device checks ------------------------------------------------------------------------

    def _health_check(self) -> None:
        if self.life in ("starting", "restoring") or (self._checking is not None and not self._checking.done()):
            return  # the devices are being used right now: failures show there
        self._spawn_check(self.room.check())

    def _spawn_check(self, work: Coroutine[Any, Any, None], *, then_retry: bool = False) -> None:
        async def checked() -> None:
            await work
            if then_retry:
                self._put("retried")

        self._checking = self._spawn(checked())

    def _schedule_retry(self) -> None:
        if self.session is not None and self.life in ("running", "paused") and self.room.needs_retry:
            self._next_retry = self.clock.monotonic() + self.retry_every_s

    def _device_event(self, name: str, fields: dict[str, Any]) -> None:
        self._emit(name, {**self._session_fields(), **fields} if self.session else fields)
        self._publish_state()
        if name == "device_unavailable" and self.life in ("running", "paused") and self._next_retry is None:
            self._next_retry = self.clock.monotonic() + self.retry_every_s
            self._wake.set()

    # --- payloads -----------------------------------------------------------------------------

    def _session_fields(self, reason: str | None = None, *, ended: bool = False) -> dict[str, Any]:
        return session_fields(self.session, self.clock, self.life, reason, ended=ended)

    def _phase_fields(self) -> dict[str, Any]:
        assert self.session is not None
        return phase_fields(self.session, self.clock, self.life)

    def _emit(self, name: str, fields: dict[str, Any]) -> None:
        self.report_to.emit(name, fields)

    def _publish_state(self) -> None:
        online = self.room.online
        self.report_to.publish_state(self.life, self.session, self.selected_routine, self.next_session_at, online)
